package main

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/pgcluster"
)

const (
	// stopGrace is how long a child gets to exit after SIGTERM.
	stopGrace = 15 * time.Second
	// killWait is how long a child gets to disappear after SIGKILL.
	killWait = 10 * time.Second
)

// child is a program this process started and stops: in its own process
// group (a Ctrl-C reaches this process, which stops the child in order),
// and, on Linux, killed by the kernel if this process dies.
type child struct {
	name string
	p    *pgcluster.Process
}

// startChild starts cmd with pgcluster.StartProcess, which keeps Linux's
// parent-death signal tied to this process's life.
func startChild(name string, cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = childSysProcAttr()
	p, err := pgcluster.StartProcess(cmd, nil)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &child{name: name, p: p}, nil
}

// exited reports whether the child has exited.
func (c *child) exited() bool {
	select {
	case <-c.p.Done():
		return true
	default:
		return false
	}
}

// wait waits for the child to exit and returns its failure; if ctx ends
// first, it stops the child and returns ctx's error.
func (c *child) wait(ctx context.Context) error {
	select {
	case <-c.p.Done():
		if err := c.p.Err(); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		return nil
	case <-ctx.Done():
		if err := c.stop(); err != nil {
			return fmt.Errorf("%w (and %v)", ctx.Err(), err)
		}
		return ctx.Err()
	}
}

// stop sends SIGTERM, then SIGKILL after stopGrace, and waits for the exit.
// It returns an error only when the child had to be killed or would not go.
func (c *child) stop() error { return c.stopWith(syscall.SIGTERM) }

// stopWith is stop with another first signal.
func (c *child) stopWith(sig syscall.Signal) error {
	if c.exited() {
		return nil
	}
	_ = c.p.Signal(sig)
	select {
	case <-c.p.Done():
		return nil
	case <-time.After(stopGrace):
	}
	_ = c.p.Kill()
	select {
	case <-c.p.Done():
		return fmt.Errorf("%s (pid %d) ignored %v for %v: killed", c.name, c.p.Pid(), sig, stopGrace)
	case <-time.After(killWait):
		return fmt.Errorf("%s (pid %d) still running %v after SIGKILL", c.name, c.p.Pid(), killWait)
	}
}
