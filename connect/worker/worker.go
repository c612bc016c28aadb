// Package worker is the connector runtime of the embedded CDC engine: what a
// single Kafka Connect worker and its herder do for Debezium. It keeps the
// connectors' configurations and target states in Postgres (the stand-in for
// Connect's config topic), runs one task per started connector, and reports
// connector and task states the way Kafka Connect's REST API shows them.
//
// Every change is written to the database first and applied in memory
// second, so a crash never leaves a connector running that is not persisted;
// Run restores every persisted connector in its target state.
package worker

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/internal/logging"
)

// Task is one running connector task. Run streams until ctx is canceled
// (then returns nil or ctx.Err()) or fails (returns the error; the task
// becomes FAILED with the error as its trace). A restart calls Run again on
// the same Task, after the previous call has returned.
type Task interface {
	Run(ctx context.Context) error
}

// TaskFactory builds the task of a connector for its validated config; name
// is the connector's name. An error fails the connector (state FAILED), as a
// connector whose start fails does in Kafka Connect. It runs on the task's
// goroutine, never under the Worker's locks.
type TaskFactory func(name string, cfg connect.Config) (Task, error)

// TargetState is the state a connector is asked to be in, as persisted.
type TargetState string

// Target states, as Kafka Connect names them.
const (
	TargetStarted TargetState = "STARTED"
	TargetPaused  TargetState = "PAUSED"
	TargetStopped TargetState = "STOPPED"
)

// ConnectorType is the type of every connector: Debezium's are sources.
const ConnectorType = "source"

// TaskClass is the task class reported in task configs, as Debezium's
// connector generates them.
const TaskClass = "io.debezium.connector.postgresql.PostgresConnectorTask"

// Sentinel errors of the Worker's operations; test them with errors.Is.
var (
	ErrNotFound     = errors.New("connector not found")
	ErrTaskNotFound = errors.New("task not found")
	ErrExists       = errors.New("connector already exists")
	ErrNotRunning   = errors.New("worker is not running")
)

// Options are the Worker's settings.
type Options struct {
	// WorkerID is reported as worker_id in statuses, e.g. "127.0.0.1:8083".
	WorkerID string
	// Lookup resolves ${env:NAME} references; nil means os.LookupEnv.
	Lookup func(string) (string, bool)
	// EnvAllowlist is what names ${env:NAME} may reference (see
	// connect.CompileEnvAllowlist); nil means
	// connect.DefaultEnvAllowlistPattern. Other names fail validation.
	EnvAllowlist *regexp.Regexp
	// Logger takes one line per state change; nil discards.
	Logger *slog.Logger
}

// Worker runs connectors. Create it with New, start it with Run; its
// methods are safe for concurrent use. Changes wait until Run has loaded the
// persisted connectors and fail with ErrNotRunning once Run has returned.
type Worker struct {
	db      *sql.DB
	factory TaskFactory
	id      string
	env     connect.Env
	log     *slog.Logger

	ops     chan struct{} // one slot: serializes changes, database then memory
	ready   chan struct{} // closed when Run has loaded the connectors
	stopped chan struct{} // closed when Run has returned
	started atomic.Bool
	wg      sync.WaitGroup // the task goroutines

	mu         sync.Mutex // guards what follows
	connectors map[string]*connector
	tails      map[string]chan struct{} // per name, done of the newest run that has not ended
	base       context.Context          // Run's context: every task's context derives from it
	closing    bool                     // Run is stopping: no new runs
}

// connector is one connector's configuration and runtime state.
type connector struct {
	name   string
	config map[string]string // as stored, placeholders kept
	target TargetState
	task   Task // built for config; reused by task restarts, nil until built
	run    *run // the newest run; nil when the connector has none to report
}

// run is one call of a task's Run, with the goroutine that makes it.
type run struct {
	cancel     context.CancelFunc
	done       chan struct{} // closed when the goroutine ends
	restarting bool          // started by a restart: reported RESTARTING until running
	phase      phase
	trace      string
}

type phase int

const (
	phaseStarting        phase = iota // waiting for the previous run, or building the task
	phaseRunning                      // in Task.Run
	phaseStopped                      // returned after being asked to stop
	phaseFailed                       // Task.Run ended on its own
	phaseConnectorFailed              // the config or the factory failed
)

// New returns a Worker that keeps its connectors in db (table
// connect_connectors) and builds their tasks with factory.
func New(db *sql.DB, factory TaskFactory, opts Options) *Worker {
	if opts.Lookup == nil {
		opts.Lookup = os.LookupEnv
	}
	opts.Logger = logging.OrDiscard(opts.Logger)
	if opts.EnvAllowlist == nil {
		opts.EnvAllowlist = regexp.MustCompile(`^(?:` + connect.DefaultEnvAllowlistPattern + `)$`)
	}
	return &Worker{
		db:         db,
		factory:    factory,
		id:         opts.WorkerID,
		env:        connect.Env{Lookup: opts.Lookup, Allow: opts.EnvAllowlist},
		log:        opts.Logger,
		ops:        make(chan struct{}, 1),
		ready:      make(chan struct{}),
		stopped:    make(chan struct{}),
		connectors: make(map[string]*connector),
		tails:      make(map[string]chan struct{}),
	}
}

// Run loads the persisted connectors, starts them per their target state,
// and serves until ctx is done; then it stops every task (cancels it and
// waits for its Run to return) and returns. It returns an error only when
// the connectors cannot be loaded. A Worker runs once.
func (w *Worker) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("worker: Run called more than once")
	}
	defer close(w.stopped)
	defer func() {
		w.mu.Lock()
		w.closing = true
		w.mu.Unlock()
	}()

	loaded, err := w.load(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // asked to stop while starting
		}
		return err
	}
	w.mu.Lock()
	w.base = ctx
	for _, c := range loaded {
		w.connectors[c.name] = c
		if c.target == TargetStarted {
			w.startRun(c, false)
		}
		w.log.Info("connector loaded", "connector", c.name, "target_state", c.target)
	}
	w.mu.Unlock()
	close(w.ready)
	w.log.Info("worker started", "worker_id", w.id, "connectors", len(loaded))

	<-ctx.Done()
	w.mu.Lock()
	w.closing = true
	for _, c := range w.connectors {
		w.stopRun(c)
	}
	w.mu.Unlock()
	w.wg.Wait()
	w.log.Info("worker stopped", "worker_id", w.id)
	return nil
}

// load reads every persisted connector.
func (w *Worker) load(ctx context.Context) ([]*connector, error) {
	rows, err := w.db.QueryContext(ctx, `SELECT name, config, target_state FROM connect_connectors ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("load connectors: %w", err)
	}
	defer rows.Close()
	var out []*connector
	for rows.Next() {
		var (
			c   connector
			raw []byte
		)
		if err := rows.Scan(&c.name, &raw, &c.target); err != nil {
			return nil, fmt.Errorf("load connectors: %w", err)
		}
		if err := json.Unmarshal(raw, &c.config); err != nil {
			return nil, fmt.Errorf("load connector %s: decode config: %w", c.name, err)
		}
		out = append(out, &c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load connectors: %w", err)
	}
	return out, nil
}

// begin waits until the Worker has loaded its connectors and no other
// change is under way; the caller must call the returned end.
func (w *Worker) begin(ctx context.Context) (end func(), err error) {
	select {
	case <-w.ready:
	case <-w.stopped:
		return nil, ErrNotRunning
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case w.ops <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w.mu.Lock()
	closing := w.closing
	w.mu.Unlock()
	if closing {
		<-w.ops
		return nil, ErrNotRunning
	}
	return func() { <-w.ops }, nil
}

// get returns the named connector, under w.mu.
func (w *Worker) get(name string) (*connector, error) {
	c, ok := w.connectors[name]
	if !ok {
		return nil, fmt.Errorf("connector %q: %w", name, ErrNotFound)
	}
	return c, nil
}

// exists reports whether the named connector exists.
func (w *Worker) exists(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.connectors[name]
	return ok
}

// Create creates a connector and starts it, as POST /connectors does. An
// invalid config returns a connect.ConfigError naming each bad key and
// changes nothing; an existing name returns ErrExists.
func (w *Worker) Create(ctx context.Context, name string, raw map[string]string) (connect.ConnectorInfo, error) {
	return w.CreateInState(ctx, name, raw, TargetStarted)
}

// CreateInState is Create with the connector's initial target state (Kafka
// Connect's initial_state, KIP-980).
func (w *Worker) CreateInState(ctx context.Context, name string, raw map[string]string, target TargetState) (connect.ConnectorInfo, error) {
	if !target.valid() {
		return connect.ConnectorInfo{}, fmt.Errorf("create connector %q: invalid target state %q", name, target)
	}
	config, err := w.prepare(name, raw)
	if err != nil {
		return connect.ConnectorInfo{}, err
	}
	end, err := w.begin(ctx)
	if err != nil {
		return connect.ConnectorInfo{}, fmt.Errorf("create connector %q: %w", name, err)
	}
	defer end()
	if w.exists(name) {
		return connect.ConnectorInfo{}, fmt.Errorf("create connector %q: %w", name, ErrExists)
	}
	doc, err := json.Marshal(config)
	if err != nil {
		return connect.ConnectorInfo{}, fmt.Errorf("create connector %q: %w", name, err)
	}
	res, err := w.db.ExecContext(ctx, `INSERT INTO connect_connectors (name, config, target_state)
		VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`, name, doc, target)
	if err != nil {
		return connect.ConnectorInfo{}, fmt.Errorf("create connector %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return connect.ConnectorInfo{}, fmt.Errorf("create connector %q: %w", name, ErrExists)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	c := &connector{name: name, config: config, target: target}
	w.connectors[name] = c
	if target == TargetStarted {
		w.startRun(c, false)
	}
	w.log.Info("connector created", "connector", name, "target_state", target)
	return w.info(c), nil
}

// PutConfig creates the connector or replaces its config, as PUT
// /connectors/{name}/config does; created reports which. A changed config
// restarts the task with it (a paused or stopped connector stays so). An
// invalid config returns a connect.ConfigError and changes nothing.
func (w *Worker) PutConfig(ctx context.Context, name string, raw map[string]string) (info connect.ConnectorInfo, created bool, err error) {
	raw, err = w.keepHiddenPassword(name, raw)
	if err != nil {
		return connect.ConnectorInfo{}, false, err
	}
	config, err := w.prepare(name, raw)
	if err != nil {
		return connect.ConnectorInfo{}, false, err
	}
	end, err := w.begin(ctx)
	if err != nil {
		return connect.ConnectorInfo{}, false, fmt.Errorf("put connector %q config: %w", name, err)
	}
	defer end()
	doc, err := json.Marshal(config)
	if err != nil {
		return connect.ConnectorInfo{}, false, fmt.Errorf("put connector %q config: %w", name, err)
	}
	if _, err := w.db.ExecContext(ctx, `INSERT INTO connect_connectors (name, config, target_state)
		VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET config = EXCLUDED.config, updated_at = now()`,
		name, doc, TargetStarted); err != nil {
		return connect.ConnectorInfo{}, false, fmt.Errorf("put connector %q config: %w", name, err)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.connectors[name]
	if !ok {
		c = &connector{name: name, config: config, target: TargetStarted}
		w.connectors[name] = c
		w.startRun(c, false)
		w.log.Info("connector created", "connector", name, "target_state", c.target)
		return w.info(c), true, nil
	}
	changed := !maps.Equal(c.config, config)
	c.config = config
	// Kafka Connect restarts the connector on every config write, and its
	// tasks when their configs change: here, a failed connector retries and
	// a changed config restarts the task.
	if changed || c.failed() {
		w.rebuild(c)
	}
	w.log.Info("connector config updated", "connector", name, "changed", changed, "target_state", c.target)
	return w.info(c), false, nil
}

// Delete stops the connector's task and removes the connector.
func (w *Worker) Delete(ctx context.Context, name string) error {
	end, err := w.begin(ctx)
	if err != nil {
		return fmt.Errorf("delete connector %q: %w", name, err)
	}
	defer end()
	if !w.exists(name) {
		return fmt.Errorf("delete connector %q: %w", name, ErrNotFound)
	}
	if _, err := w.db.ExecContext(ctx, `DELETE FROM connect_connectors WHERE name = $1`, name); err != nil {
		return fmt.Errorf("delete connector %q: %w", name, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopRun(w.connectors[name])
	delete(w.connectors, name)
	w.log.Info("connector deleted", "connector", name)
	return nil
}

// Pause stops the connector's task and keeps it stopped, config and task
// assignment kept, until Resume. A failed task stays FAILED.
func (w *Worker) Pause(ctx context.Context, name string) error {
	return w.setTarget(ctx, name, TargetPaused)
}

// Resume runs a paused or stopped connector again. A task that failed
// before the pause stays FAILED until it is restarted, as in Kafka Connect.
func (w *Worker) Resume(ctx context.Context, name string) error {
	return w.setTarget(ctx, name, TargetStarted)
}

// Stop shuts the connector down completely (Kafka Connect 3.5+): no task,
// no task configs, config kept. Resume starts it afresh.
func (w *Worker) Stop(ctx context.Context, name string) error {
	return w.setTarget(ctx, name, TargetStopped)
}

func (w *Worker) setTarget(ctx context.Context, name string, target TargetState) error {
	end, err := w.begin(ctx)
	if err != nil {
		return fmt.Errorf("set connector %q to %s: %w", name, target, err)
	}
	defer end()
	w.mu.Lock()
	c, err := w.get(name)
	var prev TargetState
	if err == nil {
		prev = c.target
	}
	w.mu.Unlock()
	if err != nil {
		return fmt.Errorf("set connector %q to %s: %w", name, target, err)
	}
	if prev == target {
		return nil
	}
	if _, err := w.db.ExecContext(ctx, `UPDATE connect_connectors SET target_state = $2, updated_at = now()
		WHERE name = $1`, name, target); err != nil {
		return fmt.Errorf("set connector %q to %s: %w", name, target, err)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	c.target = target
	switch target {
	case TargetPaused:
		w.stopRun(c) // keeps c.run, so a failure stays visible
	case TargetStopped:
		w.stopRun(c)
		c.run, c.task = nil, nil
	case TargetStarted:
		// A stopped connector starts afresh; a paused one runs its task
		// again unless it failed, which takes a restart, as in Connect.
		if prev == TargetStopped || c.run == nil || !c.run.failed() {
			w.startRun(c, false)
		}
	}
	w.log.Info("connector target state changed", "connector", name, "from", prev, "to", target)
	return nil
}

// Restart restarts the connector and, with includeTasks, its task; with
// onlyFailed, only the instances that are FAILED (KIP-745). It returns the
// status with every instance it restarts as RESTARTING. Restarting a
// connector that has not failed changes nothing here: the embedded
// connector holds no state of its own besides its task.
func (w *Worker) Restart(ctx context.Context, name string, includeTasks, onlyFailed bool) (connect.ConnectorStatus, error) {
	end, err := w.begin(ctx)
	if err != nil {
		return connect.ConnectorStatus{}, fmt.Errorf("restart connector %q: %w", name, err)
	}
	defer end()
	w.mu.Lock()
	defer w.mu.Unlock()
	c, err := w.get(name)
	if err != nil {
		return connect.ConnectorStatus{}, fmt.Errorf("restart connector %q: %w", name, err)
	}
	plan := w.status(c)
	restartConnector := !onlyFailed || plan.Connector.State == connect.StateFailed
	restartTask := includeTasks && len(plan.Tasks) > 0 && (!onlyFailed || plan.Tasks[0].State == connect.StateFailed)
	if restartConnector {
		plan.Connector.State, plan.Connector.Trace = connect.StateRestarting, ""
	}
	if restartTask {
		plan.Tasks[0].State, plan.Tasks[0].Trace = connect.StateRestarting, ""
	}
	switch {
	case restartConnector && c.failed():
		w.rebuild(c)
	case restartTask:
		w.restartTask(c)
	}
	w.log.Info("connector restart requested", "connector", name,
		"include_tasks", includeTasks, "only_failed", onlyFailed,
		"restart_connector", restartConnector, "restart_task", restartTask)
	return plan, nil
}

// RestartTask restarts one task; the only task of a connector is 0.
func (w *Worker) RestartTask(ctx context.Context, name string, taskID int) error {
	end, err := w.begin(ctx)
	if err != nil {
		return fmt.Errorf("restart task %s-%d: %w", name, taskID, err)
	}
	defer end()
	w.mu.Lock()
	defer w.mu.Unlock()
	c, err := w.get(name)
	if err != nil {
		return fmt.Errorf("restart task %s-%d: %w", name, taskID, err)
	}
	if taskID != 0 || !c.hasTask() {
		return fmt.Errorf("restart task %s-%d: %w", name, taskID, ErrTaskNotFound)
	}
	w.restartTask(c)
	w.log.Info("task restart requested", "connector", name, "task", taskID)
	return nil
}

// rebuild restarts the connector itself: its task is built anew from the
// config, now when it is started, on resume when it is paused. Under w.mu.
func (w *Worker) rebuild(c *connector) {
	c.task = nil
	w.restartTask(c)
}

// restartTask runs the task again, after the current run has returned.
// Under w.mu.
func (w *Worker) restartTask(c *connector) {
	w.stopRun(c)
	switch c.target {
	case TargetStarted:
		w.startRun(c, true)
	case TargetPaused:
		c.run = nil // restarted into PAUSED: the failure is cleared
	}
}

// startRun starts a goroutine that waits for the previous run of the same
// name to end, builds the task if needed and runs it. Under w.mu.
func (w *Worker) startRun(c *connector, restarting bool) {
	if w.closing {
		return
	}
	ctx, cancel := context.WithCancel(w.base)
	r := &run{cancel: cancel, done: make(chan struct{}), restarting: restarting}
	prev := w.tails[c.name]
	w.tails[c.name] = r.done
	c.run = r
	w.wg.Add(1)
	go w.runTask(ctx, c, r, prev, c.task, maps.Clone(c.config))
}

// stopRun asks the connector's current run, if any, to stop. Under w.mu.
func (w *Worker) stopRun(c *connector) {
	if c.run != nil {
		c.run.cancel()
	}
}

// runTask is the goroutine of one run.
func (w *Worker) runTask(ctx context.Context, c *connector, r *run, prev <-chan struct{}, task Task, config map[string]string) {
	defer w.wg.Done()
	defer close(r.done)
	defer r.cancel()

	// Two runs of one connector never overlap: they would share the
	// replication slot. A run's done is closed only after its predecessor's,
	// also when it is canceled while waiting, so the chain holds.
	if prev != nil {
		<-prev
	}
	if ctx.Err() != nil {
		w.end(c, r, phaseStopped, nil)
		return
	}
	if task == nil {
		var err error
		if task, err = w.build(c.name, config); err != nil {
			w.end(c, r, phaseConnectorFailed, err)
			return
		}
	}
	w.mu.Lock()
	if ctx.Err() != nil {
		w.mu.Unlock()
		w.end(c, r, phaseStopped, nil)
		return
	}
	r.phase = phaseRunning
	if c.run == r {
		c.task = task
	}
	w.mu.Unlock()
	w.log.Info("task running", "connector", c.name, "task", 0)

	err := w.runSafely(ctx, c.name, task)
	switch {
	case ctx.Err() != nil:
		w.end(c, r, phaseStopped, nil)
	case err == nil:
		w.end(c, r, phaseFailed, errors.New("task stopped running without being asked to"))
	default:
		w.end(c, r, phaseFailed, err)
	}
}

// end records how a run ended.
func (w *Worker) end(c *connector, r *run, p phase, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r.phase = p
	if err != nil {
		r.trace = err.Error()
	}
	if w.tails[c.name] == r.done {
		delete(w.tails, c.name)
	}
	switch p {
	case phaseConnectorFailed:
		w.log.Error("connector failed", "connector", c.name, "err", err)
	case phaseFailed:
		w.log.Error("task failed", "connector", c.name, "task", 0, "err", err)
	default:
		w.log.Info("task stopped", "connector", c.name, "task", 0)
	}
}

// build validates the stored config (resolving ${env:...} now) and builds
// the task.
func (w *Worker) build(name string, config map[string]string) (task Task, err error) {
	cfg, err := w.parse(config)
	if err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("task factory panicked", "connector", name, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("task factory panicked: %v", p)
		}
	}()
	task, err = w.factory(name, cfg)
	if err == nil && task == nil {
		err = errors.New("task factory returned no task")
	}
	if err != nil {
		return nil, fmt.Errorf("build task: %w", err)
	}
	return task, nil
}

// runSafely runs the task, turning a panic into a failure. The stack goes
// to the log, not into the error: the error is the task's trace in status.
func (w *Worker) runSafely(ctx context.Context, name string, task Task) (err error) {
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("task panicked", "connector", name, "task", 0, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("task panicked: %v", p)
		}
	}()
	return task.Run(ctx)
}

// prepare checks a submitted config for the named connector and returns
// what to store: the config with "name" set, placeholders kept.
// keepHiddenPassword returns raw with a database.password of HiddenPassword
// (what GET shows for a literal password) replaced by the connector's stored
// password, so that a config read, edited and put back keeps it. With no
// stored literal password to keep, it is an invalid config.
func (w *Worker) keepHiddenPassword(name string, raw map[string]string) (map[string]string, error) {
	if raw[passwordKey] != HiddenPassword {
		return raw, nil
	}
	w.mu.Lock()
	var stored string
	c, ok := w.connectors[name]
	if ok {
		stored, ok = c.config[passwordKey]
	}
	w.mu.Unlock()
	if !ok || stored == "" || stored == HiddenPassword || connect.HasEnvRef(stored) {
		return nil, fmt.Errorf("connector %q: %w", name, connect.ConfigError{{Key: passwordKey,
			Message: HiddenPassword + " stands for a stored password, and this connector has none: send the password or a ${env:...} reference"}})
	}
	raw = maps.Clone(raw)
	raw[passwordKey] = stored
	return raw, nil
}

func (w *Worker) prepare(name string, raw map[string]string) (map[string]string, error) {
	var bad connect.ConfigError
	switch {
	case strings.TrimSpace(name) == "":
		bad = append(bad, connect.FieldError{Key: "name", Message: "connector name is required"})
	case strings.ContainsFunc(name, unicode.IsControl):
		bad = append(bad, connect.FieldError{Key: "name", Message: fmt.Sprintf("connector name %q contains control characters", name)})
	}
	if n, ok := raw["name"]; ok && n != name {
		bad = append(bad, connect.FieldError{Key: "name",
			Message: fmt.Sprintf("Connector name configuration (%s) doesn't match connector name in the URL (%s)", n, name)})
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		if strings.ContainsRune(k, 0) || strings.ContainsRune(raw[k], 0) {
			bad = append(bad, connect.FieldError{Key: k, Message: "must not contain NUL characters"})
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("connector %q: %w", name, bad)
	}
	config := maps.Clone(raw)
	if config == nil {
		config = make(map[string]string)
	}
	config["name"] = name
	if _, err := w.parse(config); err != nil {
		return nil, fmt.Errorf("connector %q: %w", name, err)
	}
	return config, nil
}

// parse resolves ${env:...} references and validates the result.
func (w *Worker) parse(config map[string]string) (connect.Config, error) {
	return w.env.ParseConfig(config)
}

func (t TargetState) valid() bool {
	return t == TargetStarted || t == TargetPaused || t == TargetStopped
}

// failed reports whether the run ended in a failure of the task or of the
// connector.
func (r *run) failed() bool {
	return r.phase == phaseFailed || r.phase == phaseConnectorFailed
}

// failed reports whether the connector itself (not its task) has failed.
func (c *connector) failed() bool {
	return c.run != nil && c.run.phase == phaseConnectorFailed
}

// hasTask reports whether the connector has task configs: not when it is
// stopped or failed to start.
func (c *connector) hasTask() bool {
	return c.target != TargetStopped && !c.failed()
}
