package main

import (
	"errors"
	"testing"
)

// closing reports a failed stop through the named result it is given: what
// runDev's deferred stops of Postgres, Kafka and the pools rely on (they
// were dropped through a shadowed err before).
func TestClosingJoinsStopErrors(t *testing.T) {
	errRun, errStop := errors.New("run failed"), errors.New("stop failed")
	for _, c := range []struct {
		name      string
		run, stop error
		want      []error
	}{
		{"both fine", nil, nil, nil},
		{"the stop fails", nil, errStop, []error{errStop}},
		{"the run fails", errRun, nil, []error{errRun}},
		{"both fail", errRun, errStop, []error{errRun, errStop}},
	} {
		t.Run(c.name, func(t *testing.T) {
			stopped := false
			f := func() (err error) {
				defer closing(&err, func() error { stopped = true; return c.stop })
				return c.run
			}
			err := f()
			if !stopped {
				t.Error("stop not called")
			}
			if (err == nil) != (len(c.want) == 0) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			for _, w := range c.want {
				if !errors.Is(err, w) {
					t.Errorf("got %v, want it to hold %v", err, w)
				}
			}
		})
	}
}
