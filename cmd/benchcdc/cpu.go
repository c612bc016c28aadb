package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc's CPU times (100 on Linux).
const clockTicks = 100

// sampleEvery is how often a cpuWindow reads /proc while it is open, so
// that processes that exit during a stage (a walsender, pg_recvlogical)
// are counted up to their last sample.
const sampleEvery = 100 * time.Millisecond

// CPU categories.
const (
	catBench      = "benchcdc process (kfake; (a)'s reader)"
	catEngine     = "engine process (outboxpay connect)"
	catFloor      = "floor reader process (steady load)"
	catConsole    = "console process (outboxpay console, -console)"
	catBrowser    = "chromium, the console's page (-console)"
	catWalsender  = "postgres walsender"
	catPostgres   = "postgres other (backends, wal writer, ...)"
	catRecv       = "pg_recvlogical"
	catPgbench    = "pgbench"
	catOther      = "other processes"
	catMachineAll = "machine (all processes)"
)

// cpuSampler attributes CPU time, from /proc, to the benchmark's processes.
type cpuSampler struct {
	self, postmaster int
	engine           atomic.Int64 // the engine process's pid, once started
	console          atomic.Int64 // the console process's pid, once started (-console)
}

func newCPUSampler(self, postmaster int) *cpuSampler {
	return &cpuSampler{self: self, postmaster: postmaster}
}

func numCPU() int { return runtime.NumCPU() }

// procTimes is one process's cumulative CPU ticks and category.
type procTimes struct {
	ticks uint64
	cat   string
}

// cpuUsage is the CPU time each category used during a window, in
// seconds, over the window's wall time.
type cpuUsage struct {
	wall    time.Duration
	seconds map[string]float64
	ok      bool // false: /proc unreadable
}

// percent is a category's CPU as a percentage of one core.
func (u cpuUsage) percent(cat string) float64 {
	if u.wall <= 0 {
		return 0
	}
	return 100 * u.seconds[cat] / u.wall.Seconds()
}

// cpuWindow measures one stage.
type cpuWindow struct {
	s        *cpuSampler
	start    time.Time
	base     map[int]procTimes // at the start
	baseAll  uint64            // machine busy ticks at the start
	stopOnce sync.Once
	quit     chan struct{}
	done     chan struct{}

	mu   sync.Mutex
	last map[int]procTimes // latest sample of every process seen
}

// begin opens a window: it samples now, then every sampleEvery until end.
func (s *cpuSampler) begin() *cpuWindow {
	w := &cpuWindow{s: s, start: time.Now(), quit: make(chan struct{}), done: make(chan struct{})}
	w.base = s.sample()
	w.baseAll = machineBusy()
	w.last = w.base
	go w.loop()
	return w
}

func (w *cpuWindow) loop() {
	defer close(w.done)
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-t.C:
			w.merge(w.s.sample())
		}
	}
}

// merge keeps the newest sample of each process, including the ones that
// have exited since. A walsender stays one: exiting, its title is gone.
func (w *cpuWindow) merge(now map[int]procTimes) {
	w.mu.Lock()
	defer w.mu.Unlock()
	merged := make(map[int]procTimes, len(w.last)+len(now))
	for pid, p := range w.last {
		merged[pid] = p
	}
	for pid, p := range now {
		// An exiting walsender has no cmdline left to tell what it was.
		if prev, ok := merged[pid]; ok && prev.cat == catWalsender {
			p.cat = catWalsender
		}
		merged[pid] = p
	}
	w.last = merged
}

// end closes the window and returns what each category used in it. A
// process that started during the window counts from zero.
func (w *cpuWindow) end() cpuUsage {
	w.stopOnce.Do(func() { close(w.quit) })
	<-w.done
	w.merge(w.s.sample())
	u := cpuUsage{wall: time.Since(w.start), seconds: make(map[string]float64), ok: len(w.base) > 0}
	w.mu.Lock()
	defer w.mu.Unlock()
	for pid, p := range w.last {
		used := p.ticks
		if b, ok := w.base[pid]; ok {
			used -= min(b.ticks, used)
		}
		u.seconds[p.cat] += float64(used) / clockTicks
	}
	if busy := machineBusy(); busy > w.baseAll {
		u.seconds[catMachineAll] = float64(busy-w.baseAll) / clockTicks
	}
	return u
}

// sample reads every process's CPU time from /proc.
func (s *cpuSampler) sample() map[int]procTimes {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	type stat struct {
		comm  string
		ppid  int
		ticks uint64
	}
	stats := make(map[int]stat, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, ppid, ticks, ok := readStat(pid); ok {
			stats[pid] = stat{comm, ppid, ticks}
		}
	}
	// browser: pid descends from a chromium this process started (-console).
	browser := func(pid int) bool {
		for range 8 {
			st, ok := stats[pid]
			switch {
			case !ok:
				return false
			case st.ppid == s.self:
				return strings.HasPrefix(st.comm, "chrom")
			}
			pid = st.ppid
		}
		return false
	}
	out := make(map[int]procTimes, len(stats))
	for pid, st := range stats {
		cat := s.category(pid, st.ppid, st.comm)
		if cat == catOther && browser(pid) {
			cat = catBrowser
		}
		out[pid] = procTimes{ticks: st.ticks, cat: cat}
	}
	return out
}

func (s *cpuSampler) category(pid, ppid int, comm string) string {
	switch {
	case pid == s.self:
		return catBench
	case int64(pid) == s.engine.Load():
		return catEngine
	case int64(pid) == s.console.Load():
		return catConsole
	case ppid == s.self && comm == filepath.Base(os.Args[0]):
		return catFloor
	case comm == "postgres" && s.postmaster != 0 && (pid == s.postmaster || ppid == s.postmaster):
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if bytes.Contains(cmdline, []byte("walsender")) {
			return catWalsender
		}
		return catPostgres
	case comm == "pg_recvlogical":
		return catRecv
	case comm == "pgbench":
		return catPgbench
	}
	return catOther
}

// readStat reads a process's name, parent and user+system CPU ticks (all
// its threads) from /proc/PID/stat.
func readStat(pid int) (comm string, ppid int, ticks uint64, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, 0, false
	}
	open, closing := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || closing < open {
		return "", 0, 0, false
	}
	comm = string(data[open+1 : closing])
	// After the name: state ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime stime ...
	f := strings.Fields(string(data[closing+1:]))
	if len(f) < 13 {
		return "", 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, false
	}
	return comm, ppid, utime + stime, true
}

// machineBusy is the machine's non-idle CPU ticks, from /proc/stat.
func machineBusy() uint64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var busy uint64
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already in user
			break
		}
		busy += n
	}
	return busy
}

// categories returns the categories that used CPU, busiest first, with
// the machine total last.
func (u cpuUsage) categories() []string {
	var cats []string
	for c, s := range u.seconds {
		if c != catMachineAll && s > 0 {
			cats = append(cats, c)
		}
	}
	sort.Slice(cats, func(i, j int) bool { return u.seconds[cats[i]] > u.seconds[cats[j]] })
	return append(cats, catMachineAll)
}
