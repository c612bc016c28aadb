package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Where the machine's CPU goes during a rate: this process (vegeta and the
// bench's own work), dev, each kind of Postgres process, and the rest of the
// machine. Per-process CPU comes from /proc/<pid>/stat, the machine's from
// /proc/stat; which Postgres process does what from pg_stat_activity,
// sampled every cpuSampleEvery during the rate, since backends come and go:
// a process that exits between two samples counts up to its last sample.

const (
	// cpuSampleEvery is how often the sampler reads /proc and pg_stat_activity.
	cpuSampleEvery = 500 * time.Millisecond
	// benchAppName is the application_name of the bench's own sessions.
	benchAppName = "benche2e"
)

// Parts of the machine's CPU that are not Postgres.
const (
	partBench = "bench (vegeta, its queries' client side)"
	partDev   = "dev (outboxpay dev)"
	// partBrowser is there with -console only.
	partBrowser = "chromium (the console's page, -console)"
)

// pgPart names what a Postgres process does, from pg_stat_activity's
// backend_type and application_name: client backends by application_name,
// the background processes by kind.
func pgPart(backendType, appName string) string {
	switch backendType {
	case "client backend":
		if appName == "" {
			appName = "(no application_name)"
		}
		return "pg backend " + appName
	case "walsender":
		return "pg walsender"
	case "autovacuum launcher", "autovacuum worker":
		return "pg autovacuum"
	case "":
		return "pg unidentified"
	default:
		return "pg " + backendType
	}
}

// pgPartOfTitle names a Postgres process that pg_stat_activity never
// showed (the postmaster, or a backend gone before the first sample) from
// its process title, "postgres: <kind or user db host activity>".
func pgPartOfTitle(cmdline []byte, postmaster bool) string {
	if postmaster {
		return "pg postmaster"
	}
	title := strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
	rest, ok := strings.CutPrefix(title, "postgres: ")
	if !ok {
		return "pg unidentified"
	}
	for _, kind := range []string{"checkpointer", "background writer", "walwriter", "autovacuum", "walsender", "logical replication"} {
		if strings.HasPrefix(rest, kind) {
			return pgPart(kind, "")
		}
	}
	user, _, _ := strings.Cut(rest, " ")
	return "pg backend of role " + user + " (gone before a sample)"
}

// cpuSnapshot is the CPU used since the sampler started, by part, at one
// moment.
type cpuSnapshot struct {
	at      time.Time
	busy    time.Duration            // the machine's non-idle CPU time since the start (/proc/stat)
	bench   time.Duration            // this process
	dev     time.Duration            // dev
	browser time.Duration            // chromium, with -console
	pg      map[string]time.Duration // Postgres processes by pgPart
	unknown bool                     // /proc could not tell (not Linux)
}

// pgTotal is the CPU of every Postgres process.
func (s cpuSnapshot) pgTotal() time.Duration {
	var t time.Duration
	for _, d := range s.pg {
		t += d
	}
	return t
}

// cpuSampler follows the CPU of the machine, this process, dev and every
// Postgres process from its start. Its methods are safe for concurrent use.
type cpuSampler struct {
	s   *system
	log *slog.Logger

	mu        sync.Mutex
	busy0     time.Duration
	bench0    time.Duration
	dev0      time.Duration
	browser0  time.Duration
	base      map[int]time.Duration    // a Postgres process's CPU at the start; absent: started since
	last      map[int]time.Duration    // its CPU at the last sample it was alive for
	started   map[int]int64            // its start time (/proc/<pid>/stat starttime)
	part      map[int]string           // what it does, from pg_stat_activity or its title
	gone      map[string]time.Duration // by part: processes whose pid was reused since
	warned    bool                     // pg_stat_activity failed once: logged
	stopped   chan struct{}
	cancelRun context.CancelFunc
}

// startCPUSampler takes the first sample and samples every cpuSampleEvery
// until stop is called; stop waits for the sampling goroutine to end.
func (s *system) startCPUSampler(ctx context.Context, log *slog.Logger) (c *cpuSampler, stop func()) {
	c = &cpuSampler{s: s, log: log, base: map[int]time.Duration{}, last: map[int]time.Duration{}, part: map[int]string{}, started: map[int]int64{},
		gone: map[string]time.Duration{}, stopped: make(chan struct{})}
	c.busy0, _ = machineBusy()
	c.bench0 = procCPU(os.Getpid())
	c.dev0 = c.devCPU()
	c.browser0 = browserCPU()
	c.sample(ctx)
	for pid, t := range c.last {
		c.base[pid] = t
	}
	ctx, c.cancelRun = context.WithCancel(ctx)
	go func() {
		defer close(c.stopped)
		tick := time.NewTicker(cpuSampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				c.sample(ctx)
			}
		}
	}()
	return c, func() { c.cancelRun(); <-c.stopped }
}

func (c *cpuSampler) devCPU() time.Duration {
	if c.s.dev == nil {
		return 0
	}
	return procCPU(c.s.dev.Pid())
}

// sample reads every Postgres process's CPU and what each does.
func (c *cpuSampler) sample(ctx context.Context) {
	cpus := c.s.postgresCPU()
	parts, err := c.s.activity(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil && ctx.Err() == nil && !c.warned {
		c.warned = true
		c.log.Warn("read pg_stat_activity: Postgres processes are named by their titles", "err", err)
	}
	for pid, t := range cpus {
		if prev, ok := c.last[pid]; ok && t.start != c.started[pid] {
			// A new process with the pid of one that exited: keep the old one's.
			c.gone[c.part[pid]] += prev - c.base[pid]
			delete(c.base, pid)
			delete(c.part, pid)
		}
		c.last[pid], c.started[pid] = t.cpu, t.start
		if p, ok := parts[pid]; ok {
			c.part[pid] = p
		} else if _, ok := c.part[pid]; !ok {
			c.part[pid] = pgPartOfTitle(t.cmdline, t.postmaster)
		}
	}
}

// snapshot samples now and returns the CPU used since the start.
func (c *cpuSampler) snapshot(ctx context.Context) cpuSnapshot {
	c.sample(ctx)
	busy, ok := machineBusy()
	c.mu.Lock()
	defer c.mu.Unlock()
	snap := cpuSnapshot{at: time.Now(), busy: busy - c.busy0, bench: procCPU(os.Getpid()) - c.bench0, dev: c.devCPU() - c.dev0,
		browser: browserCPU() - c.browser0,
		pg:      map[string]time.Duration{}, unknown: !ok}
	for pid, t := range c.last {
		snap.pg[c.part[pid]] += t - c.base[pid] // base 0: started since
	}
	for part, t := range c.gone {
		snap.pg[part] += t
	}
	return snap
}

// pgProc is one Postgres process as /proc shows it.
type pgProc struct {
	cpu        time.Duration
	start      int64 // see procStat
	cmdline    []byte
	postmaster bool
}

// postgresCPU reads the CPU of the postmaster and its children; nil if
// unknown.
func (s *system) postgresCPU() map[int]pgProc {
	pm := s.postmasterPID()
	if pm == 0 {
		return nil
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	procs := map[int]pgProc{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok && (pid == pm || st.ppid == pm) {
			cmd, _ := os.ReadFile("/proc/" + d.Name() + "/cmdline")
			procs[pid] = pgProc{cpu: st.cpu, start: st.start, cmdline: cmd, postmaster: pid == pm}
		}
	}
	return procs
}

// activity maps the pids of pg_stat_activity to their pgPart.
func (s *system) activity(ctx context.Context) (map[int]string, error) {
	rows, err := s.stats.QueryContext(ctx, `SELECT pid, coalesce(backend_type, ''), coalesce(application_name, '') FROM pg_stat_activity`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	parts := map[int]string{}
	for rows.Next() {
		var pid int
		var typ, app string
		if err := rows.Scan(&pid, &typ, &app); err != nil {
			return nil, err
		}
		parts[pid] = pgPart(typ, app)
	}
	return parts, rows.Err()
}

// procCPU is pid's user + system CPU time; 0 if unknown.
func procCPU(pid int) time.Duration {
	st, _ := readStat(pid)
	return st.cpu
}

// machineBusy is the machine's CPU time outside idle and iowait since boot,
// from /proc/stat's first line; false if unknown.
func machineBusy() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	// cpu user nice system idle iowait irq softirq steal guest guest_nice;
	// guest time is already in user.
	if len(f) < 9 || f[0] != "cpu" {
		return 0, false
	}
	var busy int64
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return time.Duration(busy) * clockTick, true
}

// cpuWindow is where the CPU went between two snapshots of one sampler:
// CPU-seconds per second of each part.
type cpuWindow struct {
	elapsed time.Duration
	parts   map[string]float64 // bench, dev and each Postgres part
	pg      float64            // every Postgres process
	busy    float64            // the machine, /proc/stat
	unknown bool
}

// other is the machine's CPU that no part accounts for: other programs
// (the other work on the machine, the kernel's threads).
func (w cpuWindow) other() float64 {
	var sum float64
	for _, v := range w.parts {
		sum += v
	}
	return w.busy - sum
}

// window is the CPU per second from a to b.
func window(a, b cpuSnapshot) cpuWindow {
	el := b.at.Sub(a.at)
	w := cpuWindow{elapsed: el, parts: map[string]float64{}, unknown: a.unknown || b.unknown || el <= 0}
	if w.unknown {
		return w
	}
	per := func(d time.Duration) float64 { return d.Seconds() / el.Seconds() }
	w.parts[partBench] = per(b.bench - a.bench)
	w.parts[partDev] = per(b.dev - a.dev)
	if b.browser > 0 {
		w.parts[partBrowser] = per(max(0, b.browser-a.browser)) // a chromium process gone takes its CPU with it
	}
	for p, d := range b.pg {
		w.parts[p] = per(d - a.pg[p])
	}
	w.pg = per(b.pgTotal() - a.pgTotal())
	w.busy = per(b.busy - a.busy)
	return w
}

// sortedParts are the parts of ws, bench and dev first, then Postgres's by name.
func sortedParts(ws []cpuWindow) []string {
	seen := map[string]bool{}
	for _, w := range ws {
		for p := range w.parts {
			seen[p] = true
		}
	}
	var pg []string
	for p := range seen {
		if p != partBench && p != partDev {
			pg = append(pg, p)
		}
	}
	slices.Sort(pg)
	return append([]string{partBench, partDev}, pg...)
}
