// Package runtest runs a component's Run(ctx) in the background of a test.
package runtest

import (
	"context"
	"sync"
	"testing"
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
