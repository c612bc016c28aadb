package runtest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/runtest"
)

// stop cancels the context run got, waits for run and returns its error,
// the same on every call; the test's end stops a run nobody stopped.
func TestBackground(t *testing.T) {
	boom := errors.New("boom")
	runs := make(chan context.Context, 1)
	stop := runtest.Background(t, func(ctx context.Context) error {
		runs <- ctx
		<-ctx.Done()
		return boom
	})
	ctx := <-runs
	if ctx.Err() != nil {
		t.Fatal("run's context ended before stop")
	}
	if err := stop(); !errors.Is(err, boom) {
		t.Fatalf("stop: %v, want run's error", err)
	}
	if ctx.Err() == nil {
		t.Error("run's context still live after stop")
	}
	if err := stop(); !errors.Is(err, boom) {
		t.Errorf("second stop: %v, want run's error again", err)
	}

	var left context.Context
	t.Run("not stopped", func(t *testing.T) {
		runtest.Background(t, func(ctx context.Context) error {
			left = ctx
			<-ctx.Done()
			return nil
		})
	})
	if left == nil || left.Err() == nil {
		t.Error("a run the subtest did not stop was still live after it ended")
	}
}

// recorder is a testing.TB that keeps the errors reported to it and runs
// its cleanups when told.
type recorder struct {
	testing.TB
	errs     []string
	cleanups []func()
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func (r *recorder) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// Checked reports a run that fails or does not end, and nothing else, once
// stopped by the test or by the test's end.
func TestChecked(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	for _, tc := range []struct {
		name    string
		run     func(context.Context) error
		stopped bool // the test calls stop itself
		want    string
	}{
		{"clean, stopped", func(ctx context.Context) error { <-ctx.Done(); return nil }, true, ""},
		{"clean, left running", func(ctx context.Context) error { <-ctx.Done(); return nil }, false, ""},
		{"fails", func(ctx context.Context) error { <-ctx.Done(); return errors.New("boom") }, true, "run: boom"},
		{"fails, left running", func(ctx context.Context) error { <-ctx.Done(); return errors.New("boom") }, false, "run: boom"},
		{"does not end", func(context.Context) error { <-hang; return nil }, true, "run did not return within 50ms of its context's end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			stop := runtest.Checked(r, 50*time.Millisecond, tc.run)
			if tc.stopped {
				stop()
			}
			r.end()
			var want []string
			if tc.want != "" {
				want = []string{tc.want}
			}
			if fmt.Sprint(r.errs) != fmt.Sprint(want) {
				t.Errorf("reported %q, want %q", r.errs, want)
			}
		})
	}
}
