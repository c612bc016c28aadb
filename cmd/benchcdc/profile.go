package main

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// profiler writes CPU profiles to BENCHCDC_PROFILE_DIR; with no dir, it
// does nothing.
type profiler struct {
	dir     string
	log     *slog.Logger
	written []string
}

func newProfiler(dir string, log *slog.Logger) *profiler {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			log.Warn("no profiles: cannot create BENCHCDC_PROFILE_DIR", "err", err)
			dir = ""
		}
	}
	return &profiler{dir: dir, log: log}
}

// startGo profiles this process (pprof) until stop is called.
func (p *profiler) startGo(name string) (stop func()) {
	if p.dir == "" {
		return func() {}
	}
	path := filepath.Join(p.dir, name+".pprof")
	f, err := os.Create(path)
	if err != nil {
		p.log.Warn("cpu profile", "err", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		p.log.Warn("cpu profile", "err", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			p.log.Warn("cpu profile", "err", err)
			return
		}
		p.written = append(p.written, path)
	}
}

// writeAllocs writes this process's allocation profile (allocations
// since the process started; take it right after the stage to look at).
func (p *profiler) writeAllocs(name string) {
	if p.dir == "" {
		return
	}
	path := filepath.Join(p.dir, name+".allocs.pprof")
	f, err := os.Create(path)
	if err != nil {
		p.log.Warn("allocation profile", "err", err)
		return
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		p.log.Warn("allocation profile", "err", err)
	}
	if err := f.Close(); err != nil {
		p.log.Warn("allocation profile", "err", err)
		return
	}
	p.written = append(p.written, path)
}

// startPerf samples another process with perf record (call graphs from
// frame pointers, which Go keeps) until stop is called; stop may be called
// more than once.
func (p *profiler) startPerf(pid int, name string) (stop func()) {
	if p.dir == "" {
		return func() {}
	}
	perf, err := exec.LookPath("perf")
	if err != nil {
		p.log.Warn("no profile of the engine process: perf is not installed")
		return func() {}
	}
	path := filepath.Join(p.dir, name+".perf.data")
	cmd := exec.Command(perf, "record", "-e", "cpu-clock", "-F", "999", "-g", "-p", strconv.Itoa(pid), "-o", path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	c, err := startChild("perf record", cmd)
	if err != nil {
		p.log.Warn("perf record", "err", err)
		return func() {}
	}
	time.Sleep(200 * time.Millisecond) // let it attach before the stage starts
	var once sync.Once
	return func() {
		once.Do(func() {
			// SIGINT is how perf record is told to write its data and end.
			err := c.stopWith(syscall.SIGINT)
			if err != nil || !strings.Contains(out.String(), "Captured and wrote") {
				p.log.Warn("perf record", "err", err, "exit", c.p.Err(), "output", tail(out.String(), 5))
				return
			}
			p.written = append(p.written, path)
		})
	}
}
