package benchconsole_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/api/operator"
	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/kit/benchconsole"
	"github.com/outboxpay/outboxpay/internal/ops"
)

// summaries answers the page's summaries and series with empty ones, each
// summary a second later than the one before (so the page's live indicator
// moves on every poll); the rest is not found.
type summaries struct{ n atomic.Int64 }

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func (s *summaries) Summary(context.Context, time.Duration) (ops.Summary, error) {
	return ops.Summary{At: start.Add(time.Duration(s.n.Add(1)) * time.Second)}, nil
}
func (*summaries) Series(context.Context, time.Duration, time.Duration) (ops.Series, error) {
	return ops.Series{StepSeconds: 5}, nil
}
func (*summaries) Search(context.Context, ops.Query) ([]ops.Event, error) { return nil, nil }
func (*summaries) Life(context.Context, uuid.UUID) (ops.EventLife, error) {
	return ops.EventLife{}, ops.ErrNotFound
}
func (*summaries) Retry(context.Context, ops.Actor, uuid.UUID) (ops.Result, error) {
	return ops.Result{}, ops.ErrNotFound
}
func (*summaries) Park(context.Context, ops.Actor, uuid.UUID) (ops.Result, error) {
	return ops.Result{}, ops.ErrNotFound
}
func (*summaries) Discard(context.Context, ops.Actor, uuid.UUID) (ops.Result, error) {
	return ops.Result{}, ops.ErrNotFound
}
func (*summaries) DLQ(context.Context, ops.DLQQuery) ([]ops.DLQRecord, error) { return nil, nil }
func (*summaries) Redrive(context.Context, ops.Actor, ops.Redrive) (ops.Result, error) {
	return ops.Result{}, ops.ErrNotFound
}
func (*summaries) Connector(context.Context, ops.Actor, string) (ops.Result, error) {
	return ops.Result{}, ops.ErrNotFound
}
func (*summaries) Audit(context.Context, ops.AuditQuery) ([]ops.AuditEntry, error) { return nil, nil }

// console serves the real operator API and page on s, logging its requests
// as LOG_FORMAT says into the returned file.
func console(t *testing.T, s *summaries, format string) (string, string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "console.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var h slog.Handler = slog.NewTextHandler(f, nil)
	if format == "json" {
		h = slog.NewJSONHandler(f, nil)
	}
	e, err := operator.New(s, operator.Config{
		Credentials: basicauth.New(basicauth.User{Name: "op", Password: "pw"}),
		Logger:      slog.New(h),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv.URL, logPath
}

func TestPageStaysLiveAndItsPollsAreCounted(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			s := &summaries{}
			base, logPath := console(t, s, format)
			p, err := benchconsole.Open(context.Background(), base, "op", "pw", t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Finish(logPath)
			if err != nil {
				t.Fatal(err)
			}
			if live := res.Live; !strings.HasPrefix(live.First, "live") || live.Last == live.First {
				t.Errorf("live indicator %q, then %q: want it to move on", live.First, live.Last)
			}
			if want := int(s.n.Load()); res.Polls.OK != want || res.Polls.Failed != 0 || want < 2 {
				t.Errorf("polls %+v; the console answered %d summaries", res.Polls, want)
			}
			if line := res.String(); !strings.Contains(line, fmt.Sprintf("%d GET /ops/summary answered 200, 0 not", res.Polls.OK)) {
				t.Errorf("report line %q", line)
			}
		})
	}
}

func TestCountPolls(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  benchconsole.Polls
	}{
		{"text", []string{
			`time=2026-01-02T03:04:05Z level=INFO msg="operator request" component=console method=GET uri="/ops/summary?window=10s" status=200 user=admin latency=3ms request_id=""`,
			`time=2026-01-02T03:04:07Z level=INFO msg="operator request" component=console method=GET uri="/ops/summary?window=10s" status=502 user=admin latency=3ms request_id=""`,
			`time=2026-01-02T03:04:07Z level=INFO msg="operator request" component=console method=GET uri=/ops/series status=200 user=admin latency=3ms request_id=""`,
			`time=2026-01-02T03:04:07Z level=INFO msg="operator request" component=console method=GET uri=/ops/summary status=200 user=admin latency=3ms request_id=""`,
			`time=2026-01-02T03:04:07Z level=INFO msg="api request" uri=/ops/summary status=200`,
		}, benchconsole.Polls{OK: 2, Failed: 1}},
		{"json", []string{
			`{"time":"2026-01-02T03:04:05Z","level":"INFO","msg":"operator request","method":"GET","uri":"/ops/summary?window=10s","status":200}`,
			`{"time":"2026-01-02T03:04:05Z","level":"INFO","msg":"operator request","method":"GET","uri":"/ops/summaryx","status":200}`,
			`{"time":"2026-01-02T03:04:05Z","level":"INFO","msg":"operator request","method":"GET","uri":"/ops/summary","status":401}`,
		}, benchconsole.Polls{OK: 1, Failed: 1}},
		{"no answered poll", []string{
			`time=2026-01-02T03:04:07Z level=INFO msg="operator request" component=console method=GET uri=/ops/summary status=401 user="" latency=3ms request_id=""`,
		}, benchconsole.Polls{Failed: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log")
			if err := os.WriteFile(path, []byte(strings.Join(tc.lines, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := benchconsole.CountPolls(path)
			if (err != nil) != (tc.want.OK == 0) || got != tc.want {
				t.Errorf("CountPolls = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	var none *benchconsole.Result
	if !strings.HasPrefix(none.String(), "none open") {
		t.Errorf("no console: %q", none.String())
	}
	if _, err := benchconsole.CountPolls(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("CountPolls of a missing file: no error")
	}
}
