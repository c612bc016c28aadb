// Package eventually waits in tests for a condition, polling it until a
// deadline instead of sleeping for a fixed time. For _test.go files only.
package eventually

import (
	"testing"
	"time"
)

// Poll is how often a condition is checked.
const Poll = 20 * time.Millisecond

// True waits until cond returns true, failing the test with what and the
// last error cond gave if timeout passes first.
func True(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	if err := Wait(timeout, cond); err != nil {
		t.Fatalf("%s: not within %v: %v", what, timeout, err)
	}
}

// TrueEvery is True polling every interval instead of Poll: for conditions
// that cost a request to a rate-limited API (the API's default allows one
// client 50 requests/s, which Poll alone would use up).
func TrueEvery(t testing.TB, timeout, interval time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	if err := WaitEvery(timeout, interval, cond); err != nil {
		t.Fatalf("%s: not within %v: %v", what, timeout, err)
	}
}

// Wait waits until cond returns true and returns nil, or returns an error
// (the last one cond gave, if any) when timeout passes first.
func Wait(timeout time.Duration, cond func() (bool, error)) error {
	return WaitEvery(timeout, Poll, cond)
}

// WaitEvery is Wait polling every interval instead of Poll.
func WaitEvery(timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last == nil {
				last = errTimeout
			}
			return last
		}
		<-tick.C
	}
}

type timeoutError struct{}

func (timeoutError) Error() string { return "condition still false" }

var errTimeout error = timeoutError{}
