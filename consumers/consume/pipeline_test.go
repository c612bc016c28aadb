package consume

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v5"
)

func TestExhausted(t *testing.T) {
	cause := errors.New("row not visible")
	other := errors.New("database down")
	for _, tc := range []struct {
		name      string
		err       error
		seen      time.Duration // since the group first saw the record
		attempt   int
		permanent string // "" = retried
	}{
		{"just seen", RetryWhileRecent(cause), time.Second, 1, ""},
		{"inside the window", RetryWhileRecent(cause), 59 * time.Second, 5, ""},
		{"window over", RetryWhileRecent(cause), time.Minute, 5, "still failing 1m0s after the group first saw the record"},
		{"attempts used up", RetryWhileRecent(cause), time.Second, 20, "after 20 attempts"},
		{"other errors are retried", other, time.Hour, 100, ""},
		{"permanent stays permanent", backoff.Permanent(cause), time.Second, 1, cause.Error()},
		{"tries left", RetryUpTo(3, other), time.Hour, 2, ""},
		{"tries used up", RetryUpTo(3, other), time.Second, 3, "gave up after 3 tries"},
		{"one try", RetryUpTo(1, other), 0, 1, "gave up after 1 tries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := exhausted(tc.err, tc.seen, tc.attempt, time.Minute, 20)
			if !errors.Is(err, cause) && !errors.Is(err, other) {
				t.Fatalf("%v: the cause is lost", err)
			}
			if IsPermanent(err) != (tc.permanent != "") || !strings.Contains(err.Error(), tc.permanent) {
				t.Fatalf("%v: permanent %v, want %v with %q", err, IsPermanent(err), tc.permanent != "", tc.permanent)
			}
		})
	}
	if err := exhausted(nil, time.Hour, 100, time.Minute, 20); err != nil {
		t.Fatalf("nil: %v", err)
	}
}
