package logtest_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/logtest"
)

// Lines logged from many goroutines all arrive, whole, while the test reads.
func TestConcurrentLogging(t *testing.T) {
	logger, logs := logtest.New()
	const writers, lines = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				logger.Debug("line", "writer", w, "i", i, "err", errors.New("boom"))
				_ = logs.String()
			}
		}()
	}
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	for _, want := range []string{"level=DEBUG", "msg=line", "writer=3", "i=49", "err=boom"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q", want)
		}
	}
	var b logtest.Buffer
	fmt.Fprint(&b, "zero value")
	if b.String() != "zero value" {
		t.Errorf("zero Buffer holds %q", b.String())
	}
}

// recorder is a testing.TB that keeps what is logged to it.
type recorder struct {
	testing.TB
	lines []string
}

func (r *recorder) Log(args ...any) { r.lines = append(r.lines, fmt.Sprint(args...)) }

// T writes each record as one line to the test's log, at and above its level.
func TestT(t *testing.T) {
	tests := []struct {
		name  string
		level slog.Level
		want  []string
	}{
		{"debug", slog.LevelDebug, []string{"level=DEBUG msg=first", "level=INFO msg=second"}},
		{"info", slog.LevelInfo, []string{"level=INFO msg=second"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			logger := logtest.T(r, tc.level)
			logger.Debug("first")
			logger.Info("second")
			if len(r.lines) != len(tc.want) {
				t.Fatalf("logged %q, want %d lines", r.lines, len(tc.want))
			}
			for i, want := range tc.want {
				if !strings.Contains(r.lines[i], want) || strings.HasSuffix(r.lines[i], "\n") {
					t.Errorf("line %d is %q, want it to hold %q and no newline", i, r.lines[i], want)
				}
			}
		})
	}
}
