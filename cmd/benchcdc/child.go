package main

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"time"
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
	cmd  *exec.Cmd
	pid  int
	done chan struct{} // closed once the child has been reaped
	err  error         // cmd.Wait's; read only after done is closed
}

// startChild starts cmd. The goroutine that starts it stays locked to its
// OS thread until the child is reaped: Linux sends the parent-death signal
// when the thread that started the child ends, not the process
// (go.dev/issue/27505), as pgcluster explains.
func startChild(name string, cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = childSysProcAttr()
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		c.pid = cmd.Process.Pid
		started <- nil
		c.err = cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return c, nil
}

// exited reports whether the child has exited.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// wait waits for the child to exit and returns its failure; if ctx ends
// first, it stops the child and returns ctx's error.
func (c *child) wait(ctx context.Context) error {
	select {
	case <-c.done:
		if c.err != nil {
			return fmt.Errorf("%s: %w", c.name, c.err)
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
	_ = c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
		return nil
	case <-time.After(stopGrace):
	}
	_ = c.cmd.Process.Kill()
	select {
	case <-c.done:
		return fmt.Errorf("%s (pid %d) ignored %v for %v: killed", c.name, c.pid, sig, stopGrace)
	case <-time.After(killWait):
		return fmt.Errorf("%s (pid %d) still running %v after SIGKILL", c.name, c.pid, killWait)
	}
}
