package pgcluster

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr returns the attributes of a child process: its own process
// group, so that a Ctrl-C in the terminal reaches only this process (which
// then stops the server in order); cred, when not nil, to drop root; and
// deathSig, which the kernel sends to the child if its creating thread dies
// (see spawn for how that thread is kept alive).
func sysProcAttr(cred *syscall.Credential, deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:    true,
		Credential: cred,
		Pdeathsig:  deathSig,
	}
}

// procKind classifies a process id found on this machine.
type procKind int

const (
	procGone    procKind = iota // no such process, or a zombie
	procServer                  // a postgres process serving the data dir
	procOther                   // a live process that is something else
	procUnknown                 // cannot tell (not permitted to look)
)

// classify tells whether pid is a postgres process of dataDir. Every
// process of a cluster, the postmaster and the children it forks, runs the
// postgres executable with the data dir as its working directory.
func classify(pid int, dataDir string) procKind {
	if pid <= 0 {
		return procGone
	}
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	exe, err := os.Readlink(filepath.Join(proc, "exe"))
	if err != nil {
		return classifyErr(err)
	}
	cwd, err := os.Readlink(filepath.Join(proc, "cwd"))
	if err != nil {
		return classifyErr(err)
	}
	if strings.TrimSuffix(filepath.Base(exe), " (deleted)") != "postgres" || !sameDir(cwd, dataDir) {
		return procOther
	}
	return procServer
}

// classifyErr interprets a failure to read a link under /proc/PID. A zombie
// (or a process that is exiting) has neither exe nor cwd: it holds no more
// resources, and counts as gone.
func classifyErr(err error) procKind {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return procGone
	}
	return procUnknown
}

// serverPIDs lists the processes running postgres in dataDir.
func serverPIDs(dataDir string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if classify(pid, dataDir) == procServer {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
