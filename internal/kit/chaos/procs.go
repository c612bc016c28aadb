package chaos

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// proc is one of the system's processes, which the run starts, kills and
// restarts. A process that exits by itself is counted and started again
// after a second, as a container's restart policy would.
type proc struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string
	logger  *slog.Logger

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{} // closed when cmd has exited
	deliberate bool          // the current process is being stopped by the run
	closed     bool          // stopped for good: no more restarts
	crashes    int           // exits the run did not cause
	gen        int           // how many times it was started
	restarts   chan struct{}
}

func newProc(name, bin string, args, env []string, logPath string, logger *slog.Logger) *proc {
	return &proc{name: name, bin: bin, args: args, env: env, logPath: logPath,
		logger: logger.With("proc", name), restarts: make(chan struct{}, 1)}
}

// start starts the process unless it runs.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("%s: closed", p.name)
	}
	if p.cmd != nil {
		return nil
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: open log: %w", p.name, err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: a Ctrl-C meant for the run does not reach it
	// before the run stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("%s: start: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.deliberate = cmd, done, false
	p.gen++
	go func() {
		err := cmd.Wait()
		logFile.Close()
		p.mu.Lock()
		unexpected := !p.deliberate && !p.closed
		if p.cmd == cmd {
			p.cmd = nil
		}
		if unexpected {
			p.crashes++
		}
		p.mu.Unlock()
		close(done)
		if unexpected {
			p.logger.Warn("process exited by itself; restarting it", "err", err)
			select {
			case p.restarts <- struct{}{}:
			default:
			}
		}
	}()
	p.logger.Debug("started", "pid", cmd.Process.Pid)
	return nil
}

// signal sends sig to the running process and waits up to timeout for it
// to exit (then kills it).
func (p *proc) signal(sig syscall.Signal, timeout time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd == nil {
		p.mu.Unlock()
		return nil
	}
	p.deliberate = true
	p.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: signal %v: %w", p.name, sig, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
	}
	p.logger.Warn("still running; killing it", "signal", sig, "after", timeout)
	_ = cmd.Process.Kill()
	<-done
	return nil
}

// kill sends SIGKILL, as a crash would, and waits until the process is gone.
func (p *proc) kill() error { return p.signal(syscall.SIGKILL, 30*time.Second) }

// close stops the process for good: SIGTERM, then SIGKILL after timeout.
func (p *proc) close(timeout time.Duration) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return p.signal(syscall.SIGTERM, timeout)
}

func (p *proc) crashCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.crashes
}

// generation counts the starts of the process: it changes when the
// process is started again.
func (p *proc) generation() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// stop stops the process (SIGTERM, then SIGKILL after timeout) without
// counting it as a crash; start starts it again.
func (p *proc) stop(timeout time.Duration) error { return p.signal(syscall.SIGTERM, timeout) }
