package consume

import (
	"errors"
	"testing"
	"time"
)

func TestRetryWhileRecent(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	cause := errors.New("row not visible")
	for _, tc := range []struct {
		name      string
		timestamp time.Time
		permanent bool
	}{
		{"just committed", now.Add(-time.Second), false},
		{"inside the window", now.Add(-59 * time.Second), false},
		{"past the window", now.Add(-61 * time.Second), true},
		{"no timestamp", time.Time{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := RetryWhileRecent(Record{Timestamp: tc.timestamp}, cause, time.Minute, now)
			if !errors.Is(err, cause) || errors.Is(err, ErrPermanent) != tc.permanent {
				t.Fatalf("%v: permanent %v, want %v (and the cause kept)", err, errors.Is(err, ErrPermanent), tc.permanent)
			}
		})
	}
}
