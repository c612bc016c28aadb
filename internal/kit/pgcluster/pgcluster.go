// Package pgcluster runs a private PostgreSQL cluster from the system's
// PostgreSQL binaries, as a child process of the calling program.
//
// It serves development (make run) and tests: the cluster listens on
// 127.0.0.1 only, authenticates every connection, replication included,
// with scram-sha-256 (the superuser postgres has a random password, kept in
// the data dir's pgcluster-superuser.password, mode 0600, and in
// [Cluster.URL]), and is set up for logical replication. A data dir created
// by an earlier version, which trusted every connection, is converted on
// its first start: the superuser gets a password and the trust rules of
// pg_hba.conf become scram-sha-256. The server is started directly rather than through pg_ctl,
// so that this process owns it: it runs in its own process group, is shut
// down immediately by the kernel if this process dies (Linux), and is
// stopped in order by [Cluster.Stop].
//
// PostgreSQL refuses to run as root; when this process is root, initdb and
// postgres run as the "postgres" system user, which then owns the data dir.
//
// The server log is appended to log/postgres.log inside the data dir.
package pgcluster

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lib/pq"
	"github.com/outboxpay/outboxpay/internal/logging"
)

const (
	// defaultStartTimeout bounds the wait for the server to accept
	// connections when the caller's context has no deadline.
	defaultStartTimeout = 2 * time.Minute
	// graceTimeout is how long a server gets to exit after SIGINT or
	// SIGQUIT before the next, harsher signal.
	graceTimeout = 10 * time.Second
	// killTimeout is how long a process gets to disappear after SIGKILL.
	killTimeout = 10 * time.Second
	// portAttempts is how many free ports Start tries when Options.Port is 0
	// and the chosen port is taken before postgres binds it.
	portAttempts = 5
)

// errPortInUse marks a start that failed because the port was taken.
var errPortInUse = errors.New("port already in use")

// Options configures [Start].
type Options struct {
	// DataDir is the folder of the cluster. It is created if missing, and
	// initdb runs when it holds no cluster yet (no PG_VERSION file).
	DataDir string
	// Port is the TCP port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// Durable keeps PostgreSQL's crash-safety settings. When false (tests),
	// the server runs with fsync and full_page_writes off: a crash of the
	// machine may corrupt the cluster, but a crash of the server alone
	// ([Cluster.Kill]) loses nothing committed. synchronous_commit stays on
	// either way: with fsync off it costs next to nothing, while off it
	// would let Kill lose the last commits and hide them from logical
	// decoding (pg_logical_slot_*_changes, walsenders) for up to
	// wal_writer_delay. These settings apply per start, so one data dir can
	// be started either way.
	Durable bool
	// Settings are further server settings (name: value, as postgres -c
	// name=value), applied per start after the ones above, which they may
	// override: shared_preload_libraries=pg_stat_statements for a
	// benchmark, say. A setting the server rejects fails Start.
	Settings map[string]string
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
}

// Cluster is a PostgreSQL cluster started by [Start]. Its methods are safe
// for concurrent use.
type Cluster struct {
	dataDir string // absolute
	logPath string
	port    int // fixed once Start returns
	durable bool
	// settings are Options.Settings as postgres arguments.
	settings []string
	bins     binaries
	runAs    *account // nil: the current user
	logger   *slog.Logger
	// password is the superuser's, kept in the data dir.
	password string
	// trusting is true while pg_hba.conf has trust rules (a data dir of an
	// earlier version): Start converts it.
	trusting bool

	mu   sync.Mutex // serializes Stop, Restart and Kill
	proc *server    // the running postmaster; nil when stopped
}

// server is one run of a child process (the postmaster, or initdb).
type server struct {
	*Process
	logFile *os.File // the postmaster's stdout and stderr; nil for initdb
	// watched is true while an exit would be a surprise, worth logging:
	// from readiness until we stop the process.
	watched atomic.Bool
}

// Start starts the cluster in opts.DataDir, creating it first if needed,
// and returns once it accepts connections. If a postgres left running by an
// earlier process (killed hard) still serves the data dir, Start stops it
// first. The wait for the server is bounded by ctx, or by two minutes when
// ctx has no deadline.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	logger := opts.Logger
	logger = logging.OrDiscard(logger)
	if opts.DataDir == "" {
		return nil, errors.New("start postgres: no data dir given")
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("start postgres: invalid port %d", opts.Port)
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: data dir: %w", err)
	}
	bins, err := findBinaries(exec.LookPath, debianLibDir)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	runAs, err := serverAccount()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c := &Cluster{
		dataDir:  dataDir,
		logPath:  filepath.Join(dataDir, "log", "postgres.log"),
		durable:  opts.Durable,
		settings: settingArgs(opts.Settings),
		bins:     bins,
		runAs:    runAs,
		logger:   logger.With("data_dir", dataDir),
	}
	if err := c.setup(ctx); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}

	for attempt := 1; ; attempt++ {
		c.port = opts.Port
		if c.port == 0 {
			if c.port, err = freePort(); err != nil {
				return nil, fmt.Errorf("start postgres: %w", err)
			}
		}
		err = c.start(ctx)
		if err == nil && c.trusting {
			if err = c.convertTrust(ctx); err != nil {
				c.Stop(context.WithoutCancel(ctx))
				return nil, fmt.Errorf("start postgres: %w", err)
			}
		}
		if err == nil {
			return c, nil
		}
		if opts.Port != 0 || attempt == portAttempts || !errors.Is(err, errPortInUse) {
			return nil, fmt.Errorf("start postgres: %w", err)
		}
		c.logger.Warn("port was taken before postgres could bind it; trying another", "port", c.port)
	}
}

// settingArgs are settings as postgres's -c arguments, by name.
func settingArgs(settings map[string]string) []string {
	names := make([]string, 0, len(settings))
	for name := range settings {
		names = append(names, name)
	}
	slices.Sort(names)
	var args []string
	for _, name := range names {
		args = append(args, "-c", name+"="+settings[name])
	}
	return args
}

// Port returns the TCP port the cluster listens on at 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// URL returns the connection URL of database dbname as the postgres
// superuser, with its password, for github.com/lib/pq and other libpq-style
// clients. It holds a secret: log it with [url.URL.Redacted] only.
func (c *Cluster) URL(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword("postgres", c.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// redactedURL is URL without the password, for logs.
func (c *Cluster) redactedURL(dbname string) string {
	u, err := url.Parse(c.URL(dbname))
	if err != nil {
		return ""
	}
	return u.Redacted()
}

// Stop shuts the server down: fast shutdown (SIGINT, which ends the open
// sessions and writes a checkpoint), then waits for it to exit. When ctx
// ends first, Stop forces an immediate shutdown (SIGQUIT, then SIGKILL),
// waits for every server process to be gone and returns the context's
// error. Stopping a stopped cluster does nothing.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stop(ctx); err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	return nil
}

// Restart stops the server as [Cluster.Stop] does, if it runs, and starts
// it again on the same port and data dir. After [Cluster.Kill], the start
// runs crash recovery.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.stop(ctx); err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	if err := c.start(ctx); err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	return nil
}

// Kill simulates a crash: it sends SIGKILL to the postmaster, without any
// shutdown, and waits until it and the server processes it had started are
// gone, and have released the server's shared memory. A later
// [Cluster.Restart] recovers the cluster from its WAL.
func (c *Cluster) Kill() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.proc
	if s == nil {
		return errors.New("kill postgres: not running")
	}
	c.proc = nil
	defer s.logFile.Close()

	c.logger.Info("killing postgres", "pid", s.pid)
	s.watched.Store(false)
	if err := s.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill postgres: %w", err)
	}
	if !waitClosed(s.done, killTimeout) {
		return fmt.Errorf("kill postgres: pid %d still running %v after SIGKILL", s.pid, killTimeout)
	}
	// The children of the postmaster notice its death and exit by
	// themselves; until they have, and have detached from the old shared
	// memory, a new postmaster would refuse to start.
	if err := c.reapLeftovers(s.pid); err != nil {
		return fmt.Errorf("kill postgres: %w", err)
	}
	return nil
}

// CreateDatabase creates database name, as a copy of template, or of the
// default template when template is "".
func (c *Cluster) CreateDatabase(ctx context.Context, name, template string) error {
	if name == "" {
		return errors.New("create database: empty name")
	}
	stmt := "CREATE DATABASE " + pq.QuoteIdentifier(name)
	if template != "" {
		stmt += " TEMPLATE " + pq.QuoteIdentifier(template)
	}
	if err := c.exec(ctx, stmt); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops database name, ending the sessions connected to it.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("drop database: empty name")
	}
	if err := c.exec(ctx, "DROP DATABASE "+pq.QuoteIdentifier(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// exec runs one statement in the postgres database, on a connection of its
// own.
func (c *Cluster) exec(ctx context.Context, stmt string) error {
	db, err := sql.Open("postgres", c.URL("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, stmt)
	return err
}

// start starts the postmaster on c.port and waits until it accepts
// connections. The caller holds c.mu (or owns c alone), and c.proc is nil.
func (c *Cluster) start(ctx context.Context) error {
	if err := c.stopStale(ctx); err != nil {
		return err
	}
	// The processes of a server killed outside our control (with its owner,
	// say) may still be detaching from its shared memory.
	if err := c.waitShmemReleased(ctx, killTimeout); err != nil {
		return err
	}
	logFile, offset, err := c.openLog()
	if err != nil {
		return err
	}
	onOff := "off"
	if c.durable {
		onOff = "on"
	}
	args := []string{
		"-D", c.dataDir,
		"-p", strconv.Itoa(c.port),
		"-c", "fsync=" + onOff,
		"-c", "full_page_writes=" + onOff,
		"-c", "synchronous_commit=on",
	}
	cmd := exec.Command(c.bins.postgres, append(args, c.settings...)...)
	cmd.Dir = c.dataDir
	cmd.Env = c.env()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// SIGQUIT is PostgreSQL's immediate shutdown: if this process dies, the
	// server and its children exit at once rather than linger.
	cmd.SysProcAttr = sysProcAttr(c.runAs.credential(), syscall.SIGQUIT)
	s, err := spawn(cmd, c.logger)
	if err != nil {
		logFile.Close()
		return fmt.Errorf("run %s: %w", c.bins.postgres, err)
	}
	s.logFile = logFile
	c.logger.Info("postgres started", "pid", s.pid, "port", c.port, "log", c.logPath)

	if err := c.waitReady(ctx, s); err != nil {
		if herr := c.halt(s); herr != nil {
			err = fmt.Errorf("%w; and while stopping it: %v", err, herr)
		}
		logFile.Close()
		if out, rerr := c.readLog(offset, 64<<10); rerr == nil &&
			bytes.Contains(bytes.ToLower(out), []byte("address already in use")) {
			err = fmt.Errorf("%w (%w: %d)", err, errPortInUse, c.port)
		}
		return c.withLogTail(err)
	}
	c.proc = s
	s.watched.Store(true)
	c.logger.Info("postgres ready", "pid", s.pid, "url", c.redactedURL("postgres"))
	return nil
}

// spawn starts cmd (see StartProcess). With a logger, an exit while the
// process is watched is logged.
func spawn(cmd *exec.Cmd, logger *slog.Logger) (*server, error) {
	s := &server{}
	p, err := StartProcess(cmd, func(p *Process) {
		if logger != nil && s.watched.Load() {
			logger.Error("postgres exited unexpectedly", "pid", p.pid, "status", p.exitStatus())
		}
	})
	if err != nil {
		return nil, err
	}
	s.Process = p
	return s, nil
}

// waitReady polls until the server accepts connections, the server exits,
// or ctx (bounded by defaultStartTimeout when it has no deadline) ends.
func (c *Cluster) waitReady(ctx context.Context, s *server) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	// lib/pq bounds the startup handshake by connect_timeout alone, not by
	// the context: keep it short, as a probe is retried anyway.
	db, err := sql.Open("postgres", c.URL("postgres")+"&connect_timeout=2")
	if err != nil {
		return fmt.Errorf("wait for postgres: %w", err)
	}
	defer db.Close()
	db.SetMaxIdleConns(0) // each probe dials anew

	// Stop probing as soon as the server exits.
	probeCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-probeCtx.Done():
		}
	}()

	var lastErr error
	delay := 5 * time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited during startup (%s)", s.exitStatus())
		case <-ctx.Done():
			return fmt.Errorf("wait for postgres to accept connections: %w (last attempt: %v)", ctx.Err(), lastErr)
		case <-timer.C:
		}
		if lastErr = c.probe(probeCtx, db); lastErr == nil {
			return nil
		}
		timer.Reset(delay)
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// probe checks that the server on c.port accepts queries and is ours: the
// port may have been taken by another cluster, and then ours fails to bind
// and exits.
func (c *Cluster) probe(ctx context.Context, db *sql.DB) error {
	var dir string
	if err := db.QueryRowContext(ctx, "SHOW data_directory").Scan(&dir); err != nil {
		return err
	}
	if !sameDir(dir, c.dataDir) {
		return fmt.Errorf("port %d is served by another cluster (data directory %s)", c.port, dir)
	}
	return nil
}

// stop is Stop with c.mu held.
func (c *Cluster) stop(ctx context.Context) error {
	s := c.proc
	if s == nil {
		return nil
	}
	c.proc = nil
	defer s.logFile.Close()
	s.watched.Store(false)

	select {
	case <-s.done: // it had died already: make sure nothing of it is left
		return c.reapLeftovers(s.pid)
	default:
	}
	c.logger.Info("stopping postgres", "pid", s.pid)
	if err := s.Signal(syscall.SIGINT); err != nil {
		return errors.Join(err, c.halt(s))
	}
	select {
	case <-s.done:
		c.logger.Info("postgres stopped", "pid", s.pid)
		return c.reapLeftovers(s.pid)
	case <-ctx.Done():
	}
	c.logger.Warn("fast shutdown is taking too long; forcing an immediate shutdown", "pid", s.pid)
	if err := c.halt(s); err != nil {
		return err
	}
	return fmt.Errorf("fast shutdown: %w (forced an immediate shutdown instead)", ctx.Err())
}

// halt ends a child postmaster at once: SIGQUIT (immediate shutdown), then
// SIGKILL if it lingers, and waits for every server process to be gone.
func (c *Cluster) halt(s *server) error {
	s.watched.Store(false)
	if err := s.Signal(syscall.SIGQUIT); err != nil {
		return err
	}
	if !waitClosed(s.done, graceTimeout) {
		c.logger.Warn("postgres ignored SIGQUIT; sending SIGKILL", "pid", s.pid)
		if err := s.Signal(syscall.SIGKILL); err != nil {
			return err
		}
		if !waitClosed(s.done, killTimeout) {
			return fmt.Errorf("pid %d still running %v after SIGKILL", s.pid, killTimeout)
		}
	}
	return c.reapLeftovers(s.pid)
}

// reapLeftovers waits for the server processes that postmaster, now gone,
// had started to exit, and kills them if they do not; then for the shared
// memory of postmaster to be released (see waitShmemReleased). It knows the
// processes as the postgres processes running in the data dir, unless the
// data dir has been taken over by another postmaster since: then, as that
// one could only start once the processes of the old one had released its
// shared memory, none are left.
func (c *Cluster) reapLeftovers(postmaster int) error {
	if pid := c.pidFromFile(); pid != 0 && pid != postmaster && classify(pid, c.dataDir) == procServer {
		return nil
	}
	if err := c.reapProcesses(); err != nil {
		return err
	}
	return c.waitShmemReleased(context.Background(), killTimeout)
}

// reapProcesses waits for the postgres processes running in the data dir to
// exit, and kills them if they do not.
func (c *Cluster) reapProcesses() error {
	gone := func() bool {
		pids, err := serverPIDs(c.dataDir)
		return err == nil && len(pids) == 0
	}
	if waitFor(context.Background(), graceTimeout, gone) {
		return nil
	}
	pids, err := serverPIDs(c.dataDir)
	if err != nil {
		return fmt.Errorf("list server processes: %w", err)
	}
	c.logger.Warn("killing leftover server processes", "pids", pids)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if !waitFor(context.Background(), killTimeout, gone) {
		pids, _ := serverPIDs(c.dataDir)
		return fmt.Errorf("server processes %v still running after SIGKILL", pids)
	}
	return nil
}

// stopStale stops a postmaster that still serves the data dir although it
// is not our child: one left behind by a process that was killed hard, or
// started by another Cluster. A postmaster.pid whose process is dead is
// left to postgres, which replaces it; one whose pid now belongs to an
// unrelated process is removed, since postgres would refuse to start.
func (c *Cluster) stopStale(ctx context.Context) error {
	pid := c.pidFromFile()
	if pid == 0 {
		return nil // no postmaster.pid, or a damaged one: postgres decides
	}
	pidFile := filepath.Join(c.dataDir, "postmaster.pid")
	switch classify(pid, c.dataDir) {
	case procGone, procUnknown:
		return nil
	case procOther:
		c.logger.Warn("removing stale postmaster.pid whose pid now belongs to another process", "pid", pid)
		if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", pidFile, err)
		}
		return nil
	}

	c.logger.Warn("stopping a postgres left running on the data dir", "pid", pid)
	running := func() bool { return classify(pid, c.dataDir) == procServer }
	for _, step := range []struct {
		sig     syscall.Signal
		timeout time.Duration
		ctx     context.Context
	}{
		{syscall.SIGINT, graceTimeout, ctx},                  // fast shutdown
		{syscall.SIGQUIT, graceTimeout, ctx},                 // immediate shutdown
		{syscall.SIGKILL, killTimeout, context.Background()}, // must be waited for
	} {
		if err := syscall.Kill(pid, step.sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("stop the postgres (pid %d) left running on %s: %w", pid, c.dataDir, err)
		}
		if waitFor(step.ctx, step.timeout, func() bool { return !running() }) {
			return c.reapLeftovers(pid)
		}
	}
	return fmt.Errorf("stop the postgres (pid %d) left running on %s: still running after SIGKILL", pid, c.dataDir)
}

// waitShmemReleased waits, up to timeout or until ctx ends, until no process
// is attached any more to the System V shared memory segment that the
// postmaster named in postmaster.pid recorded there.
//
// A postmaster that dies without shutting down (SIGKILL) leaves that
// segment, and postmaster.pid, behind. Its children detach from the segment
// as they exit, but the kernel unmaps it only late in the exit, after /proc
// already shows them as gone, so they may hold it a little longer than
// reapProcesses can see, the longer the busier the machine. A new postmaster
// that found the segment still attached would refuse to start
// ("pre-existing shared memory block ... is still in use").
//
// Nothing is waited for when postmaster.pid records no segment (a clean
// shutdown removes both), or when its postmaster may still run: that one
// uses the segment by right, and postgres refuses to start beside it anyway.
func (c *Cluster) waitShmemReleased(ctx context.Context, timeout time.Duration) error {
	pf := c.readPIDFile()
	if !pf.hasShmem {
		return nil
	}
	if k := classify(pf.pid, c.dataDir); k == procServer || k == procUnknown {
		return nil
	}
	var attached int
	var err error
	released := func() bool {
		attached, err = shmemAttachments(pf.shmemKey, pf.shmemID)
		return err == nil && attached == 0
	}
	if released() {
		return nil
	}
	c.logger.Info("waiting for the processes of the previous server to release its shared memory",
		"pid", pf.pid, "shmem_key", pf.shmemKey, "shmem_id", pf.shmemID, "attached", attached)
	if waitFor(ctx, timeout, released) {
		return nil
	}
	segment := fmt.Sprintf("shared memory segment (key %d, ID %d) of the previous server (pid %d)",
		pf.shmemKey, pf.shmemID, pf.pid)
	switch {
	case err != nil:
		return fmt.Errorf("check the %s: %w", segment, err)
	case ctx.Err() != nil:
		return fmt.Errorf("wait for the %s to be released: %w (%d processes still attached)", segment, ctx.Err(), attached)
	default:
		return fmt.Errorf("the %s is still attached by %d processes after %v", segment, attached, timeout)
	}
}

// pidFile is what postmaster.pid tells about the postmaster that wrote it.
type pidFile struct {
	pid int // 0 if none
	// shmemKey and shmemID identify the postmaster's System V shared memory
	// segment, when hasShmem (it records them once it has created it).
	shmemKey int32
	shmemID  int
	hasShmem bool
}

// readPIDFile reads the data dir's postmaster.pid; a missing, unreadable or
// damaged file yields what could be read of it, possibly nothing.
func (c *Cluster) readPIDFile() pidFile {
	data, err := os.ReadFile(filepath.Join(c.dataDir, "postmaster.pid"))
	if err != nil {
		return pidFile{}
	}
	return parsePIDFile(data)
}

// parsePIDFile parses the contents of a postmaster.pid. Its first line holds
// the pid, and its seventh the key and id of the shared memory segment,
// printed as unsigned longs (see LOCK_FILE_LINE_SHMEM_KEY in PostgreSQL's
// miscadmin.h).
func parsePIDFile(data []byte) pidFile {
	var pf pidFile
	lines := strings.Split(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid < 0 {
		return pf
	}
	pf.pid = pid
	if len(lines) < 7 {
		return pf
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return pf
	}
	key, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return pf
	}
	id, err := strconv.Atoi(f[1])
	if err != nil || id < 0 {
		return pf
	}
	// The key is a key_t (a C int) that went through (unsigned long): a
	// negative key comes out sign-extended, and truncating undoes that.
	pf.shmemKey, pf.shmemID, pf.hasShmem = int32(uint32(key)), id, true
	return pf
}

// pidFromFile returns the pid in the data dir's postmaster.pid, or 0 if it
// has none or cannot be read.
func (c *Cluster) pidFromFile() int {
	return c.readPIDFile().pid
}

// waitFor polls cond, with a short backoff, until it holds, timeout passes
// or ctx ends, and reports whether it held.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := 2 * time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if cond() {
			return true
		}
		timer.Reset(delay)
		select {
		case <-ctx.Done():
			return cond()
		case <-timer.C:
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// waitClosed waits up to timeout for ch to be closed, and reports whether
// it was.
func waitClosed(ch <-chan struct{}, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-ch:
		return true
	case <-timer.C:
		return false
	}
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
