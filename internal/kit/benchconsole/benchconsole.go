// Package benchconsole keeps the operator console open during a benchmark,
// as an operator would: its summary view in headless chromium (kit/browser),
// which polls GET /ops/summary every 2 s while it is shown. It tells whether
// the page stayed live and counts the console's answered polls from its
// request log, so that a benchmark can show what it ran beside.
package benchconsole

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/outboxpay/outboxpay/internal/kit/browser"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
)

const (
	// liveWait bounds each wait for a new summary on the page.
	liveWait = 30 * time.Second
	// settleSummaries is how many summaries Open waits for (the page polls
	// every 2 s once one is shown).
	settleSummaries = 3
)

// Page is the console's summary view open in a browser.
type Page struct {
	b      *browser.Browser
	first  string // the live indicator's text when Open returned
	opened time.Time
}

// Live is the page's state after Open and at Finish.
type Live struct {
	// First and Last are the page's live indicator ("live · 12:00:01", the
	// time of the summary it shows) when Open returned and at Finish.
	First, Last string
	// Open is how long the page was open.
	Open time.Duration
}

// Open starts chromium (its profile under dataDir), signs in to the console
// at base (e.g. http://127.0.0.1:8088) as user and opens its summary view,
// and waits until the page has shown settleSummaries summaries: by then
// chromium's start-up work (about two CPU-seconds after the first one) is
// over, and what follows costs what an open page costs. On error nothing
// is left running.
func Open(ctx context.Context, base, user, password, dataDir string) (*Page, error) {
	b, err := browser.Launch(browser.Config{Username: user, Password: password}, dataDir)
	if err != nil {
		return nil, err
	}
	nav, cancel := context.WithTimeout(b.Context(), liveWait)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	if _, err := chromedp.Run(nav, chromedp.Navigate(base+"/console#/summary")); err != nil {
		b.Close()
		return nil, fmt.Errorf("console: open %s/console: %w", base, err)
	}
	p := &Page{b: b, opened: time.Now()}
	for range settleSummaries {
		if p.first, err = p.waitLive(p.first); err != nil {
			b.Close()
			return nil, err
		}
	}
	return p, nil
}

// Close stops the browser; Finish does too. It may be called more than once.
func (p *Page) Close() { p.b.Close() }

// waitLive waits until the live indicator says the page shows a summary
// other than not, and returns its text.
func (p *Page) waitLive(not string) (string, error) {
	type state struct{ Kind, Text string }
	var last state
	err := eventually.WaitEvery(liveWait, 100*time.Millisecond, func() (bool, error) {
		s, err := browser.Eval[state](p.b, `(() => { const e = document.querySelector('#live'); return e ? {Kind: e.dataset.kind || '', Text: e.textContent} : {Kind: '', Text: ''} })()`)
		if err != nil {
			return false, err
		}
		last = s
		return s.Kind == "ok" && s.Text != not, nil
	})
	if err != nil {
		return "", fmt.Errorf("console: the page shows no new summary within %v (indicator %q, %q): %w", liveWait, last.Kind, last.Text, err)
	}
	return last.Text, nil
}

// Polls are the console's GET /ops/summary requests in its log.
type Polls struct {
	OK, Failed int // answered 200, and anything else
}

// summaryLine is the console's request log line (api/operator's
// requestLogger) of a GET /ops/summary, in LOG_FORMAT text or json.
var summaryLine = regexp.MustCompile(`operator request.*"?uri"?[=:]"?/ops/summary[?"\s].*"?status"?[=:](\d+)`)

// CountPolls counts the summary requests in the console's log at path.
func CountPolls(path string) (Polls, error) {
	f, err := os.Open(path)
	if err != nil {
		return Polls{}, fmt.Errorf("console: count summary polls: %w", err)
	}
	defer f.Close()
	var n Polls
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		m := summaryLine.FindSubmatch(sc.Bytes())
		switch {
		case m == nil:
		case string(m[1]) == "200":
			n.OK++
		default:
			n.Failed++
		}
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("console: count summary polls in %s: %w", path, err)
	}
	if n.OK == 0 {
		return n, errors.New("console: its log shows no answered GET /ops/summary: the page did not poll")
	}
	return n, nil
}

// Result is what a benchmark reports of its console; nil: none was open.
type Result struct {
	Live  Live
	Polls Polls
}

// Finish waits until the page shows a summary newer than the first one (it
// kept polling), closes it, and counts the polls in the console's log at
// logPath (CountPolls).
func (p *Page) Finish(logPath string) (*Result, error) {
	defer p.Close()
	last, err := p.waitLive(p.first)
	if err != nil {
		return nil, err
	}
	p.Close()
	live := Live{First: p.first, Last: last, Open: time.Since(p.opened)}
	polls, err := CountPolls(logPath)
	if err != nil {
		return nil, err
	}
	return &Result{Live: live, Polls: polls}, nil
}

// String is the report's line: whether a console was open and how it polled.
func (r *Result) String() string {
	if r == nil {
		return "none open (-console opens one)"
	}
	return fmt.Sprintf("open in headless chromium on its summary view for %v: %d GET /ops/summary answered 200, %d not (the page polls every 2 s); its live indicator went from %q to %q",
		r.Live.Open.Round(time.Second), r.Polls.OK, r.Polls.Failed, r.Live.First, r.Live.Last)
}
