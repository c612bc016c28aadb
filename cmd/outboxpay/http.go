package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
)

// readHeaderTimeout bounds the request line and headers; a shorter
// HTTP_READ_TIMEOUT bounds them instead.
const readHeaderTimeout = 10 * time.Second

// timeouts are the limits of one HTTP server of this process: read
// (HTTP_READ_TIMEOUT: request line, headers and body), idle
// (HTTP_IDLE_TIMEOUT: a keep-alive connection between requests),
// maxHeaderBytes (HTTP_MAX_HEADER_BYTES), write (from the end of the request
// headers to the end of the response; it must exceed the longest request the
// server lets a handler work on) and shutdown (SHUTDOWN_TIMEOUT: how long a
// shutdown waits for in-flight requests).
type timeouts struct {
	read, idle, write, shutdown time.Duration
	maxHeaderBytes              int
}

// timeouts are cfg's HTTP limits with the write timeout write.
func (c config) timeouts(write time.Duration) timeouts {
	return timeouts{read: c.HTTPReadTimeout, idle: c.HTTPIdleTimeout, write: write,
		shutdown: c.ShutdownTimeout, maxHeaderBytes: c.HTTPMaxHeaderBytes}
}

// newHTTPServer returns the http.Server of every HTTP listener of this
// process, serving h with the limits t.
func newHTTPServer(h http.Handler, t timeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(readHeaderTimeout, t.read),
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    t.maxHeaderBytes,
	}
}

// listen binds addr for the server named what, and logs its address.
func listen(logger *slog.Logger, what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", what, addr, err)
	}
	logger.Info(what+" listening", "addr", ln.Addr().String())
	return ln, nil
}

// serve serves h on ln (which it closes) with the limits t until ctx is
// done, then shuts down: it stops accepting, waits up to t.shutdown for
// in-flight requests, then cancels their contexts and closes their
// connections. If Serve fails first, serve returns its error at once, so
// that its caller can stop what it started with the server.
func serve(ctx context.Context, ln net.Listener, h http.Handler, t timeouts) error {
	// Requests outlive ctx for the drain, and no longer.
	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	srv := newHTTPServer(h, t)
	srv.BaseContext = func(net.Listener) context.Context { return reqCtx }
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.shutdown)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		// The drain is over: what still runs is cut off.
		cancelRequests()
		err = srv.Close()
	}
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// newRegistry returns the process's metrics registry, with Go runtime and
// process metrics.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// metricsHandler serves reg at /metrics, and /healthz (the process is up)
// for container health checks.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// serveMetrics serves metricsHandler on METRICS_ADDR until ctx is done.
func serveMetrics(ctx context.Context, d deps) error {
	return listenAndServe(ctx, d, "metrics", d.cfg.MetricsAddr, metricsHandler(d.reg), d.cfg.HTTPWriteTimeout)
}

// listenAndServe serves h on addr (see listen and serve) with the write
// timeout write, as the server named what.
func listenAndServe(ctx context.Context, d deps, what, addr string, h http.Handler, write time.Duration) error {
	ln, err := listen(d.logger, what, addr)
	if err != nil {
		return err
	}
	return serveAs(ctx, what, ln, h, d.cfg.timeouts(write))
}

// serveAs is serve, its error naming the server what.
func serveAs(ctx context.Context, what string, ln net.Listener, h http.Handler, t timeouts) error {
	if err := serve(ctx, ln, h, t); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// localAddr turns a listener's address into one a client on this machine can dial.
func localAddr(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp == nil {
		return addr.String()
	}
	if tcp.IP.IsUnspecified() {
		return fmt.Sprintf("localhost:%d", tcp.Port)
	}
	return tcp.String()
}

// runWorker runs a worker subcommand: it needs KAFKA_BOOTSTRAP_SERVERS,
// opens DATABASE_URL, and runs run with it and serveMetrics until ctx is
// done or either fails.
func runWorker(ctx context.Context, d deps, run func(context.Context, deps) error) error {
	if err := needKafka(d.cfg); err != nil {
		return err
	}
	d, closeDB, err := d.withDB(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveMetrics(ctx, d) })
	g.Go(func() error { return run(ctx, d) })
	return g.Wait()
}
