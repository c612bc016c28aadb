package browser_test

import (
	"bytes"
	"crypto/subtle"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/browser"
)

const page = `<!doctype html><title>kit</title>
<p id="hello">signed in</p>
<p id="data">loading</p>
<form id="f"><input id="name"><button id="go" type="button">go</button></form>
<p id="out"></p>
<script>
fetch('/data', {credentials: 'same-origin'}).then(r => r.text()).then(t => { document.getElementById('data').textContent = t })
document.getElementById('go').addEventListener('click', () => {
  document.getElementById('out').textContent = 'hi ' + document.getElementById('name').value
})
</script>`

// server serves a page and the data it fetches behind HTTP Basic auth (user
// op, password pw), counting the requests it let through.
func server(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var ok atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, has := r.BasicAuth()
		if !has || u != "op" || subtle.ConstantTimeCompare([]byte(p), []byte("pw")) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="kit"`)
			http.Error(w, "unauthorized here", http.StatusUnauthorized)
			return
		}
		ok.Add(1)
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(page))
		case "/data":
			w.Write([]byte("data for op"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &ok
}

func TestLogInThroughBasicAuth(t *testing.T) {
	srv, ok := server(t)
	b := browser.Start(t, browser.Config{Username: "op", Password: "pw"})
	b.Open(srv.URL + "/")
	b.WaitVisible("#hello")
	// The page's own fetch() carries the credentials the prompt was given.
	b.WaitText("#data", "data for op")
	b.Fill("#name", "someone")
	b.Fill("#name", "Ada") // replaces, does not append
	b.Click("#go")
	if got := b.WaitText("#out", "hi Ada"); got != "hi Ada" {
		t.Errorf("#out = %q", got)
	}
	if n := b.Count("p"); n != 3 {
		t.Errorf("%d paragraphs, want 3", n)
	}
	if ok.Load() < 2 {
		t.Errorf("the server let %d requests through, want the page and its data", ok.Load())
	}
	shot := filepath.Join(t.TempDir(), "page.png")
	b.Screenshot(shot)
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 1000 {
		t.Fatalf("screenshot: %v, %d bytes", err, len(png))
	}
}

func TestWrongPasswordIsNotLoggedIn(t *testing.T) {
	srv, ok := server(t)
	b := browser.Start(t, browser.Config{Username: "op", Password: "wrong"})
	b.Open(srv.URL + "/")
	b.WaitText("body", "unauthorized here")
	if _, found := b.Text("#hello"); found {
		t.Error("the page was shown with a wrong password")
	}
	if ok.Load() != 0 {
		t.Errorf("the server let %d requests through", ok.Load())
	}
}
