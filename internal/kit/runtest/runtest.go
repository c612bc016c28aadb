// Package runtest runs a component's Run(ctx) in the background of a test.
package runtest

import (
	"context"
	"sync"
	"testing"
	"time"
)

// Background calls run in a goroutine with a context that stop cancels.
// stop then waits for run to return and returns its error; later calls
// return the same error at once. stop is also called when the test ends
// (its error then ignored: a test that cares calls stop itself).
func Background(t testing.TB, run func(context.Context) error) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// Checked is Background for a run that must end cleanly: stop fails the
// test if run returns an error, or has not returned within timeout of its
// context's end. The test's end stops it if nobody did.
func Checked(t testing.TB, timeout time.Duration, run func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(timeout):
				t.Errorf("run did not return within %v of its context's end", timeout)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
