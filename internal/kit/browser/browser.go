// Package browser drives Debian's chromium, headless, for the tests of the
// operator console: it starts the browser (chromedp's exec allocator), signs
// in through the real HTTP Basic challenge (the DevTools fetch domain
// answers the browser's auth prompt), and gives waits with a deadline,
// clicks, form filling, reading text and full-page screenshots. For tests
// only (the product does not import the kit).
package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/outboxpay/outboxpay/internal/kit/eventually"
)

// DefaultExecPath is Debian's chromium; $CHROMIUM overrides it.
const DefaultExecPath = "/usr/bin/chromium"

// Config is how the browser is started.
type Config struct {
	// ExecPath is the browser's binary; default $CHROMIUM, else DefaultExecPath.
	ExecPath string
	// Width and Height are the window's size; default 1366x900 (a laptop).
	Width, Height int
	// Username and Password answer the first HTTP Basic challenge of each
	// request; a challenge repeated for the same request (wrong
	// credentials) is cancelled, so the page shows the server's 401.
	Username, Password string
	// Timeout bounds each wait and action; default 15s.
	Timeout time.Duration
}

// Browser is one headless chromium with one tab. Its methods fail the test
// they were started with on error; Context gives the raw chromedp context
// for anything else.
type Browser struct {
	t       testing.TB
	ctx     context.Context
	timeout time.Duration
	stop    func()
	// stopOnce makes Close idempotent.
	stopOnce sync.Once
}

// Start starts chromium headless and stops it when the test ends.
func Start(t testing.TB, cfg Config) *Browser {
	t.Helper()
	b, err := Launch(cfg, t.TempDir())
	if err != nil {
		t.Fatalf("%v", err)
	}
	b.t = t
	t.Cleanup(b.Close)
	return b
}

// Launch starts chromium headless with its profile in dataDir, for programs
// (the benchmarks) rather than tests: its owner calls Close. Of its methods,
// such a Browser has Context and Eval; the others are for tests (Start).
func Launch(cfg Config, dataDir string) (*Browser, error) {
	if cfg.ExecPath == "" {
		cfg.ExecPath = os.Getenv("CHROMIUM")
	}
	if cfg.ExecPath == "" {
		cfg.ExecPath = DefaultExecPath
	}
	if cfg.Width == 0 || cfg.Height == 0 {
		cfg.Width, cfg.Height = 1366, 900
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 15 * time.Second
	}
	if _, err := os.Stat(cfg.ExecPath); err != nil {
		return nil, fmt.Errorf("browser: no chromium at %s (apt-get install chromium, or set CHROMIUM): %w", cfg.ExecPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(cfg.ExecPath),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(dataDir),
		chromedp.WindowSize(cfg.Width, cfg.Height),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)

	// The first command starts the browser: under no timeout, as chromedp
	// asks (a timeout there would stop the whole browser).
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: ptr(true)}); err != nil {
		cancelTab()
		cancelAlloc()
		return nil, fmt.Errorf("browser: start %s: %w", cfg.ExecPath, err)
	}
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	auths := chromedp.Events(ctx, fetch.AuthRequired)
	var wg sync.WaitGroup
	wg.Go(func() { continueRequests(ctx, paused) })
	wg.Go(func() { answerAuth(ctx, auths, cfg.Username, cfg.Password) })

	b := &Browser{ctx: ctx, timeout: cfg.Timeout}
	b.stop = func() {
		cancelTab()
		cancelAlloc()
		wg.Wait()
	}
	return b, nil
}

// Close stops the browser and waits for it to exit; Start's test does it
// when it ends.
func (b *Browser) Close() { b.stopOnce.Do(b.stop) }

// continueRequests lets every request the fetch domain paused go on.
func continueRequests(ctx context.Context, paused iter.Seq2[fetch.EventRequestPaused, error]) {
	for ev, err := range paused {
		if err != nil {
			return
		}
		_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
	}
}

// answerAuth gives the credentials to each request's first challenge and
// cancels a repeated one (the server refused them).
func answerAuth(ctx context.Context, auths iter.Seq2[fetch.EventAuthRequired, error], user, password string) {
	answered := map[fetch.RequestID]bool{}
	for ev, err := range auths {
		if err != nil {
			return
		}
		resp := &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth}
		if !answered[ev.RequestID] && user != "" {
			answered[ev.RequestID] = true
			resp = &fetch.AuthChallengeResponse{
				Response: fetch.AuthChallengeResponseResponseProvideCredentials,
				Username: user,
				Password: password,
			}
		}
		_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID, AuthChallengeResponse: resp})
	}
}

// Context is the tab's chromedp context, for chromedp.Run and friends; bound
// it with context.WithTimeout per call.
func (b *Browser) Context() context.Context { return b.ctx }

// do runs steps under the browser's timeout, failing the test with what on error.
func (b *Browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
}

// Open navigates to url and waits for its load.
func (b *Browser) Open(url string) {
	b.t.Helper()
	b.do("open "+url, chromedp.Navigate(url))
}

// Eval evaluates a JavaScript expression in the page and decodes its JSON
// value into T.
func Eval[T any](b *Browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr))
	var v T
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("decode %s: %w", raw, err)
	}
	return v, nil
}

// Text is the visible text (innerText) of the first element matching the CSS
// selector, and whether there is one.
func (b *Browser) Text(sel string) (string, bool) {
	b.t.Helper()
	txt, ok, err := b.text(sel)
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v", sel, err)
	}
	return txt, ok
}

func (b *Browser) text(sel string) (string, bool, error) {
	v, err := Eval[*string](b, fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.innerText : null })()`, jsString(sel)))
	if err != nil || v == nil {
		return "", false, err
	}
	return *v, true, nil
}

// Count is how many elements match the CSS selector.
func (b *Browser) Count(sel string) int {
	b.t.Helper()
	n, err := Eval[int](b, fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(sel)))
	if err != nil {
		b.t.Fatalf("browser: count %s: %v", sel, err)
	}
	return n
}

// WaitVisible waits until an element matching the CSS selector is shown.
func (b *Browser) WaitVisible(sel string) {
	b.t.Helper()
	b.do("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
}

// WaitText waits until the text of the first element matching the CSS
// selector contains substr, and returns that text.
func (b *Browser) WaitText(sel, substr string) string {
	b.t.Helper()
	var last string
	err := eventually.WaitEvery(b.timeout, 100*time.Millisecond, func() (bool, error) {
		txt, ok, err := b.text(sel) // an error (a page loading) is retried
		last = txt
		if err != nil {
			return false, err
		}
		if !ok {
			return false, fmt.Errorf("no element %s", sel)
		}
		return strings.Contains(txt, substr), nil
	})
	if err != nil {
		b.t.Fatalf("browser: %s does not show %q within %v (%v; text %q)", sel, substr, b.timeout, err, last)
	}
	return last
}

// WaitFor waits until the JavaScript expression is truthy.
func (b *Browser) WaitFor(what, expr string) {
	b.t.Helper()
	err := eventually.WaitEvery(b.timeout, 100*time.Millisecond, func() (bool, error) {
		return Eval[bool](b, "!!("+expr+")")
	})
	if err != nil {
		b.t.Fatalf("browser: %s: not within %v: %v", what, b.timeout, err)
	}
}

// Click clicks the first element matching the CSS selector, once it is shown.
func (b *Browser) Click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// Fill replaces the value of the input or textarea matching the CSS selector:
// it empties it, then types value into it (so the page sees key and input
// events).
func (b *Browser) Fill(sel, value string) {
	b.t.Helper()
	b.WaitVisible(sel)
	ok, err := Eval[bool](b, fmt.Sprintf(`(() => {
		const e = document.querySelector(%s);
		if (!e || !('value' in e)) return false;
		e.value = '';
		e.dispatchEvent(new Event('input', {bubbles: true}));
		return true;
	})()`, jsString(sel)))
	if err != nil || !ok {
		b.t.Fatalf("browser: fill %s: no such field (%v)", sel, err)
	}
	if value != "" {
		b.do("fill "+sel, chromedp.SendKeys(chromedp.CSS(sel), value))
	}
}

// Select chooses the option with value of the select element matching the
// CSS selector, as a user would (the page sees input and change events).
func (b *Browser) Select(sel, value string) {
	b.t.Helper()
	ok, err := Eval[bool](b, fmt.Sprintf(`(() => {
		const e = document.querySelector(%s);
		if (!e) return false;
		e.value = %s;
		e.dispatchEvent(new Event('input', {bubbles: true}));
		e.dispatchEvent(new Event('change', {bubbles: true}));
		return e.value === %[2]s;
	})()`, jsString(sel), jsString(value)))
	if err != nil || !ok {
		b.t.Fatalf("browser: select %q in %s: no such element or option (%v)", value, sel, err)
	}
}

// Screenshot writes a PNG of the whole page (beyond the window) to path.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("browser: screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatalf("browser: screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("browser: screenshot: %v", err)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func ptr[T any](v T) *T { return &v }
