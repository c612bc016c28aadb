package runtest_test

import (
	"context"
	"errors"
	"testing"

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
