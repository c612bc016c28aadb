// These architectures have the shmat and shmdt system calls; the others
// reach them through ipc(2).

//go:build amd64 || arm || arm64 || loong64 || mips64 || mips64le || riscv64

package pgcluster

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// shmRdonly is SHM_RDONLY from <sys/shm.h>, which package syscall lacks.
const shmRdonly = 0o10000

// attachShmem attaches this process to a System V shared memory segment,
// as a server process that is still exiting would be, and returns the
// function that detaches it.
func attachShmem(t *testing.T, id int) (detach func()) {
	t.Helper()
	addr, _, errno := syscall.Syscall(syscall.SYS_SHMAT, uintptr(id), 0, shmRdonly)
	if errno != 0 {
		t.Fatalf("shmat(%d): %v", id, errno)
	}
	var once sync.Once
	detach = func() {
		once.Do(func() {
			if _, _, errno := syscall.Syscall(syscall.SYS_SHMDT, addr, 0, 0); errno != 0 {
				t.Errorf("shmdt(%d): %v", id, errno)
			}
		})
	}
	t.Cleanup(detach)
	return detach
}

// hookHandler passes log records on to a handler, after calling hook with
// each.
type hookHandler struct {
	slog.Handler
	hook func(slog.Record)
}

func (h hookHandler) Handle(ctx context.Context, r slog.Record) error {
	h.hook(r)
	return h.Handler.Handle(ctx, r)
}

func (h hookHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return hookHandler{h.Handler.WithAttrs(attrs), h.hook}
}

func (h hookHandler) WithGroup(name string) slog.Handler {
	return hookHandler{h.Handler.WithGroup(name), h.hook}
}

// TestRestartWaitsForSharedMemory plays the race of a restart after a crash
// on a busy machine: a process of the killed server, already gone from
// /proc, has not yet detached from the server's shared memory. The restart
// must wait for it rather than start a postmaster that refuses to run
// ("pre-existing shared memory block ... is still in use").
func TestRestartWaitsForSharedMemory(t *testing.T) {
	t.Parallel()
	c := startCluster(t, "", false)
	mustExec(t, open(t, c, "postgres"), "CREATE TABLE t (v text)", "INSERT INTO t VALUES ('committed')")
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	pf := c.readPIDFile()
	if !pf.hasShmem {
		t.Fatal("postmaster.pid of the killed server records no shared memory segment")
	}

	// The test process stands for the straggler. Kill returned, so no
	// goroutine of c logs any more: its logger can be swapped.
	detach := attachShmem(t, pf.shmemID)
	var (
		mu      sync.Mutex
		onWait  func() // called when the restart starts waiting
		started int    // postmasters started
	)
	c.logger = slog.New(hookHandler{c.logger.Handler(), func(r slog.Record) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.Contains(r.Message, "release its shared memory") && onWait != nil:
			onWait()
		case r.Message == "postgres started":
			started++
		}
	}})

	// A restart gives up, without starting postgres, when its context ends
	// while it waits.
	ctx, cancel := context.WithCancel(t.Context())
	mu.Lock()
	onWait = cancel
	mu.Unlock()
	err := c.Restart(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "shared memory segment") {
		t.Fatalf("Restart while the segment is attached = %v, want an error about waiting for the segment", err)
	}
	mu.Lock()
	n := started
	mu.Unlock()
	if n > 0 {
		t.Fatal("Restart started postgres while the segment was attached")
	}

	// Once the straggler detaches, the restart goes on.
	mu.Lock()
	onWait = detach
	mu.Unlock()
	if err := c.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, open(t, c, "postgres"), "SELECT v FROM t"); got != "committed" {
		t.Errorf("after crash recovery, v = %q", got)
	}
	log, err := os.ReadFile(c.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "is still in use") {
		t.Errorf("postgres found its shared memory in use:\n%s", log)
	}
}
