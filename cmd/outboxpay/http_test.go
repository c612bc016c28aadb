package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startHTTPServer serves h with newHTTPServer(cfg) on a loopback port and
// returns its address; the server is closed when the test ends.
func startHTTPServer(t *testing.T, cfg config, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(h, cfg.timeouts(5*time.Second))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// waitClosed reads conn until the server closes it, failing the test if
// that takes longer than within.
func waitClosed(t *testing.T, r io.Reader, conn net.Conn, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := conn.SetReadDeadline(start.Add(within)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, r) // nil at EOF; a reset is an error too
	if netErr, ok := err.(net.Error); ok && netErr.Timeout() {
		t.Fatalf("connection still open after %v", within)
	}
	return time.Since(start)
}

func TestHTTPServerCutsOffSlowBody(t *testing.T) {
	const readTimeout = time.Second
	cfg := config{HTTPReadTimeout: readTimeout, HTTPIdleTimeout: time.Minute, HTTPMaxHeaderBytes: 1 << 16}
	bodyErr := make(chan error, 1)
	addr := startHTTPServer(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		bodyErr <- err
	}))

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The client: one byte of the body per second, until the server hangs up.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			if _, err := conn.Write([]byte{'x'}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	waitClosed(t, conn, conn, readTimeout+5*time.Second)
	if elapsed := time.Since(start); elapsed > readTimeout+2*time.Second {
		t.Errorf("slow body cut off after %v, want within the read timeout %v (+2s)", elapsed, readTimeout)
	}
	select {
	case err := <-bodyErr:
		if err == nil {
			t.Error("the handler read the whole slow body")
		}
	default:
		t.Error("the handler did not see the body cut off")
	}
}

func TestHTTPServerClosesIdleConnection(t *testing.T) {
	const idleTimeout = time.Second
	cfg := config{HTTPReadTimeout: 5 * time.Second, HTTPIdleTimeout: idleTimeout, HTTPMaxHeaderBytes: 1 << 16}
	addr := startHTTPServer(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("got %d, close %v; want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}

	// The connection is now idle: the server closes it within the idle timeout.
	elapsed := waitClosed(t, br, conn, idleTimeout+5*time.Second)
	if elapsed > idleTimeout+2*time.Second {
		t.Errorf("idle connection closed after %v, want within the idle timeout %v (+2s)", elapsed, idleTimeout)
	}
}

func TestHTTPServerRefusesLargeHeaders(t *testing.T) {
	cfg := config{HTTPReadTimeout: 5 * time.Second, HTTPIdleTimeout: time.Minute, HTTPMaxHeaderBytes: 1024}
	addr := startHTTPServer(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("got %d, want 431", resp.StatusCode)
	}
}

// The HTTP_* settings default as documented and refuse what would leave a
// server unbounded or cut off the API's own requests.
func TestHTTPServerConfig(t *testing.T) {
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(http.NotFoundHandler(), cfg.timeouts(cfg.HTTPWriteTimeout))
	if srv.ReadTimeout != 30*time.Second || srv.WriteTimeout != 60*time.Second || srv.IdleTimeout != 120*time.Second ||
		srv.MaxHeaderBytes != 65536 || srv.ReadHeaderTimeout != 10*time.Second || cfg.ConnectHTTPWriteTimeout != 120*time.Second {
		t.Errorf("defaults: read %v, write %v, idle %v, header bytes %d, header %v, connect write %v",
			srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes, srv.ReadHeaderTimeout, cfg.ConnectHTTPWriteTimeout)
	}

	cases := []struct {
		env   map[string]string
		wrong string // "" if valid
	}{
		{map[string]string{"HTTP_READ_TIMEOUT": "2s"}, ""},
		{map[string]string{"HTTP_READ_TIMEOUT": "0s"}, "HTTP_READ_TIMEOUT"},
		{map[string]string{"HTTP_IDLE_TIMEOUT": "-1s"}, "HTTP_IDLE_TIMEOUT"},
		{map[string]string{"HTTP_MAX_HEADER_BYTES": "0"}, "HTTP_MAX_HEADER_BYTES"},
		{map[string]string{"HTTP_WRITE_TIMEOUT": "10s"}, "HTTP_WRITE_TIMEOUT"},
		{map[string]string{"HTTP_WRITE_TIMEOUT": "20s", "API_REQUEST_TIMEOUT": "30s"}, "API_REQUEST_TIMEOUT"},
		{map[string]string{"CONNECT_HTTP_WRITE_TIMEOUT": "0s"}, "CONNECT_HTTP_WRITE_TIMEOUT"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.env), func(t *testing.T) {
			cfg, err := loadConfigWith(t, c.env)
			switch {
			case c.wrong == "" && err != nil:
				t.Fatal(err)
			case c.wrong != "" && (err == nil || !strings.Contains(err.Error(), c.wrong)):
				t.Fatalf("got %v, want an error naming %s", err, c.wrong)
			case c.wrong == "" && newHTTPServer(nil, cfg.timeouts(0)).ReadHeaderTimeout != cfg.HTTPReadTimeout:
				t.Errorf("read header timeout is not bounded by HTTP_READ_TIMEOUT %v", cfg.HTTPReadTimeout)
			}
		})
	}
}

// Every http.Server of this command comes from newHTTPServer, so none goes
// without its limits.
func TestEveryHTTPServerHasLimits(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "http.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && x.Name == "http" &&
					(n.Sel.Name == "Server" || n.Sel.Name == "ListenAndServe" || n.Sel.Name == "Serve" || n.Sel.Name == "ListenAndServeTLS") {
					t.Errorf("%s: http.%s outside newHTTPServer", fset.Position(n.Pos()), n.Sel.Name)
				}
			}
			return true
		})
	}
}

// serveOn runs serve on a loopback listener with shutdown as the drain,
// sending its result to done, and returns the server's URL.
func serveOn(t *testing.T, ctx context.Context, h http.Handler, shutdown time.Duration, done chan<- error) string {
	t.Helper()
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tm := cfg.timeouts(cfg.HTTPWriteTimeout)
	tm.shutdown = shutdown
	go func() { done <- serve(ctx, ln, h, tm) }()
	return "http://" + ln.Addr().String()
}

// A request still running when the drain ends has its context canceled,
// and serve returns: for every server, the API's included (whose requests
// ran on after its shutdown timed out before).
func TestServeCancelsRequestsWhenTheDrainEnds(t *testing.T) {
	entered, canceled := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
		close(canceled)
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	url := serveOn(t, ctx, h, 200*time.Millisecond, done)
	go func() {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the handler")
	}
	cancel()
	select {
	case <-canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the request's context still not canceled 10s after the drain of 200ms")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve still runs 10s after the drain of 200ms")
	}
}

// A request that ends within the drain ends normally, and serve returns.
func TestServeDrainsInFlightRequests(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		if r.Context().Err() != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	url := serveOn(t, ctx, h, time.Minute, done)
	status := make(chan int, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			status <- 0
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	<-entered
	cancel()
	close(release)
	select {
	case s := <-status:
		if s != http.StatusOK {
			t.Errorf("in-flight request: %d, want 200", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to the in-flight request")
	}
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// brokenListener's Accept fails at once, as a listener closed under the
// server does.
type brokenListener struct{ net.Listener }

func (brokenListener) Accept() (net.Conn, error) { return nil, errors.New("listener broken") }

// When Serve fails, the server returns its error at once, without waiting
// for ctx, so that its caller stops what it started; serveConnect stops its
// worker too (it waited for a signal before).
func TestServersReturnServeFailure(t *testing.T) {
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		serve func(net.Listener) error
	}{
		{"serve", func(ln net.Listener) error {
			return serve(context.Background(), ln, http.NotFoundHandler(), cfg.timeouts(time.Second))
		}},
		{"serveConnect", func(ln net.Listener) error {
			d := testDeps(cfg, openEmptyDB(t))
			d.kafkaAs, d.lookup = plainKafka("127.0.0.1:1"), func(string) (string, bool) { return "", false }
			return serveConnect(context.Background(), d, ln, connectAuth{})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			done := make(chan error, 1)
			go func() { done <- c.serve(brokenListener{ln}) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "listener broken") {
					t.Errorf("%s: %v, want the Serve error", c.name, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s still runs 10s after Serve failed", c.name)
			}
		})
	}
}

// localAddr dials what a listener bound, whatever the address.
func TestLocalAddr(t *testing.T) {
	for _, c := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8083}, "127.0.0.1:8083"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8083}, "localhost:8083"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 9100}, "localhost:9100"},
		{&net.UnixAddr{Name: "/tmp/sock", Net: "unix"}, "/tmp/sock"},
		{(*net.TCPAddr)(nil), "<nil>"}, // a panic before
	} {
		if got := localAddr(c.addr); got != c.want {
			t.Errorf("localAddr(%#v) = %q, want %q", c.addr, got, c.want)
		}
	}
}
