package pgcluster

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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

// sysvShmPath lists the System V shared memory segments of this IPC
// namespace, with the number of processes attached to each.
const sysvShmPath = "/proc/sysvipc/shm"

// shmemAttachments returns how many processes are attached to the System V
// shared memory segment with the given key and id: the nattch that a new
// postmaster checks before it reuses the segment of an earlier one. A
// segment that no longer exists, or whose id now carries another key (it was
// removed, and its key is then shown as 0), has none.
func shmemAttachments(key int32, id int) (int, error) {
	data, err := os.ReadFile(sysvShmPath)
	if err != nil {
		return 0, err
	}
	n, err := parseShmAttachments(data, key, id)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", sysvShmPath, err)
	}
	return n, nil
}

// parseShmAttachments finds the segment with key and id in the contents of
// /proc/sysvipc/shm, whose columns it locates by their header, and returns
// its nattch, or 0 if it is not listed.
func parseShmAttachments(data []byte, key int32, id int) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() {
		return 0, errors.New("no header line")
	}
	header := strings.Fields(sc.Text())
	keyCol, idCol, nattchCol := slices.Index(header, "key"), slices.Index(header, "shmid"), slices.Index(header, "nattch")
	if keyCol < 0 || idCol < 0 || nattchCol < 0 {
		return 0, fmt.Errorf("unexpected header %q", sc.Text())
	}
	last := max(keyCol, idCol, nattchCol)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) <= last || f[idCol] != strconv.Itoa(id) {
			continue
		}
		// The kernel prints the key as a signed int, as key_t is.
		k, err := strconv.ParseInt(f[keyCol], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("segment %d: key %q: %w", id, f[keyCol], err)
		}
		if int32(k) != key {
			return 0, nil
		}
		n, err := strconv.Atoi(f[nattchCol])
		if err != nil {
			return 0, fmt.Errorf("segment %d: nattch %q: %w", id, f[nattchCol], err)
		}
		return n, nil
	}
	return 0, sc.Err()
}
