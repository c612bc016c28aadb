//go:build unix && !linux

package pgcluster

import "syscall"

// sysProcAttr returns the attributes of a child process: its own process
// group, so that a Ctrl-C in the terminal reaches only this process, and
// cred, when not nil, to drop root. Only Linux has a parent-death signal, so
// here deathSig is ignored and a server outlives a crash of this process
// (the next Start stops it).
func sysProcAttr(cred *syscall.Credential, deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}

// procKind classifies a process id found on this machine.
type procKind int

const (
	procGone    procKind = iota // no such process, or a zombie
	procServer                  // a postgres process serving the data dir
	procOther                   // a live process that is something else
	procUnknown                 // cannot tell
)

// classify tells whether pid is a postgres process of dataDir. Without
// /proc it can only tell whether the process exists.
func classify(pid int, dataDir string) procKind {
	if pid <= 0 {
		return procGone
	}
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return procGone
	}
	return procUnknown
}

// serverPIDs lists the processes running postgres in dataDir; without /proc
// it cannot find them and returns none.
func serverPIDs(dataDir string) ([]int, error) {
	return nil, nil
}

// shmemAttachments returns how many processes are attached to the System V
// shared memory segment with the given key and id. Without /proc it cannot
// tell, and returns none: postgres still checks for itself, and refuses to
// start while the segment is in use.
func shmemAttachments(key int32, id int) (int, error) {
	return 0, nil
}
