package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
)

// Process is a child process started by StartProcess.
type Process struct {
	cmd     *exec.Cmd
	pid     int
	done    chan struct{} // closed once the process has been reaped
	waitErr error         // result of cmd.Wait; read only after done is closed
}

// StartProcess starts cmd and reaps it in the background; Done closes once
// it has exited, after exited (if not nil) has been called.
//
// On Linux, cmd's parent-death signal (Pdeathsig) is sent when the OS thread
// that started the child exits, not when the process does (go.dev/issue/27505).
// The Go runtime ends a thread when a goroutine exits while locked to it, so a
// thread that merely ran cmd.Start could later die under some other goroutine
// and take the child down with it. Locking around cmd.Start alone is not
// enough for that reason. Instead, the goroutine that starts the child stays
// locked to its thread until it has reaped the child: no other goroutine can
// run on that thread in the meantime, and the thread is handed back to the
// runtime, alive, only once the child is gone. It costs one OS thread per
// running child. When the whole process exits, all of its threads end, and
// the kernel signals the child: no child outlives its owner.
func StartProcess(cmd *exec.Cmd, exited func(*Process)) (*Process, error) {
	p := &Process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.waitErr = cmd.Wait()
		if exited != nil {
			exited(p)
		}
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.pid }

// Done is closed once the process has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is what cmd.Wait returned: nil for an exit with status 0. Call it
// after Done is closed.
func (p *Process) Err() error { return p.waitErr }

// Signal sends sig to the process, unless it has already been reaped.
func (p *Process) Signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal pid %d: %w", p.pid, err)
	}
	return nil
}

// Kill kills the process, unless it has already been reaped.
func (p *Process) Kill() error { return p.Signal(os.Kill) }

// exitStatus describes how the process ended; call it after done closed.
func (p *Process) exitStatus() string {
	if p.waitErr != nil {
		return p.waitErr.Error()
	}
	return "exit status 0"
}
