package worker_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/worker"
	"github.com/outboxpay/outboxpay/internal/kit/connecttest"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/kit/runtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// fakeTask blocks until its context is canceled or fail receives an error.
type fakeTask struct {
	f    *fakes
	name string
	cfg  connect.Config
	fail chan error

	mu   sync.Mutex
	runs int
	ctx  context.Context // of the newest Run
}

func (t *fakeTask) Run(ctx context.Context) error {
	t.f.enter(t.name)
	defer t.f.leave(t.name)
	t.mu.Lock()
	t.runs++
	t.ctx = ctx
	t.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-t.fail:
		return err
	}
}

func (t *fakeTask) Runs() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.runs
}

// Ctx returns the context of the newest Run.
func (t *fakeTask) Ctx() context.Context {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ctx
}

// fakes is the TaskFactory of the tests: it records every task it builds,
// fails while factoryErr is set, and checks that two Runs of one connector
// never overlap.
type fakes struct {
	mu         sync.Mutex
	built      map[string][]*fakeTask
	active     map[string]int
	overlapped bool
	factoryErr error
}

func newFakes() *fakes {
	return &fakes{built: map[string][]*fakeTask{}, active: map[string]int{}}
}

func (f *fakes) factory(name string, cfg connect.Config) (worker.Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.factoryErr != nil {
		return nil, f.factoryErr
	}
	t := &fakeTask{f: f, name: name, cfg: cfg, fail: make(chan error)}
	f.built[name] = append(f.built[name], t)
	return t, nil
}

func (f *fakes) setFactoryErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.factoryErr = err
}

func (f *fakes) enter(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active[name]++
	if f.active[name] > 1 {
		f.overlapped = true
	}
}

func (f *fakes) leave(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active[name]--
}

// builds returns the tasks built for the connector so far.
func (f *fakes) builds(name string) []*fakeTask {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*fakeTask(nil), f.built[name]...)
}

// last waits for the connector's newest task to be built and returns it.
func (f *fakes) last(t *testing.T, name string) *fakeTask {
	t.Helper()
	var task *fakeTask
	waitFor(t, "a task built for "+name, func() bool {
		b := f.builds(name)
		if len(b) > 0 {
			task = b[len(b)-1]
		}
		return task != nil
	})
	return task
}

func (f *fakes) activeRuns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, a := range f.active {
		n += a
	}
	return n
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventually.True(t, 10*time.Second, what, func() (bool, error) { return cond(), nil })
}

// harness is a Worker running on a test database.
type harness struct {
	w     *worker.Worker
	fakes *fakes
	db    *sql.DB
	stop  func() // cancels Run and waits for it
}

func start(t *testing.T, db *sql.DB, f *fakes) *harness {
	t.Helper()
	w := worker.New(db, f.factory, worker.Options{WorkerID: connecttest.WorkerID, Lookup: connecttest.Lookup})
	stop := runtest.Checked(t, 10*time.Second, w.Run)
	t.Cleanup(func() {
		stop()
		if n := f.activeRuns(); n != 0 {
			t.Errorf("%d task runs still active after Run returned", n)
		}
		if f.overlapped {
			t.Error("two runs of one connector overlapped")
		}
	})
	return &harness{w: w, fakes: f, db: db, stop: stop}
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	db, _ := pgtest.NewDB(t)
	return start(t, db, newFakes())
}

func (h *harness) create(t *testing.T, name string) *fakeTask {
	t.Helper()
	if _, err := h.w.Create(t.Context(), name, connecttest.OutboxConfig(t)); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	h.waitState(t, name, connect.StateRunning, connect.StateRunning)
	task := h.fakes.last(t, name)
	waitRuns(t, task, 1)
	return task
}

// waitRuns waits until Run of the task has been called n times and its
// newest run is live. The worker reports a task RUNNING a moment before
// the task's Run is entered, so a RUNNING status alone does not say that.
func waitRuns(t *testing.T, task *fakeTask, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("run %d of the task", n), func() bool {
		return task.Runs() == n && !canceled(task.Ctx())
	})
}

// states is the connector's state followed by its tasks' states.
func states(st connect.ConnectorStatus) []string {
	out := []string{st.Connector.State}
	for _, ts := range st.Tasks {
		out = append(out, ts.State)
	}
	return out
}

// waitState waits for the connector's status to show the given connector
// state and task states (none: no tasks).
func (h *harness) waitState(t *testing.T, name string, want ...string) connect.ConnectorStatus {
	t.Helper()
	var st connect.ConnectorStatus
	waitFor(t, fmt.Sprintf("%s in states %v", name, want), func() bool {
		var err error
		st, err = h.w.Status(name)
		return err == nil && strings.Join(states(st), ",") == strings.Join(want, ",")
	})
	return st
}

// row reads the persisted connector; ok is false if there is none.
func (h *harness) row(t *testing.T, name string) (config map[string]string, target string, ok bool) {
	t.Helper()
	var raw []byte
	err := h.db.QueryRow(`SELECT config, target_state FROM connect_connectors WHERE name = $1`, name).Scan(&raw, &target)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &config); err != nil {
		t.Fatal(err)
	}
	return config, target, true
}

func canceled(ctx context.Context) bool { return ctx.Err() != nil }

func TestCreateRunsTheTaskAndPersistsTheRawConfig(t *testing.T) {
	h := newHarness(t)
	info, err := h.w.Create(t.Context(), "outbox", connecttest.OutboxConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "outbox" || info.Type != "source" || info.Config["name"] != "outbox" ||
		info.Config["database.password"] != "${env:OUTBOX_DB_PASSWORD}" ||
		len(info.Tasks) != 1 || info.Tasks[0] != (connect.TaskID{Connector: "outbox", Task: 0}) {
		t.Fatalf("info = %+v", info)
	}
	st := h.waitState(t, "outbox", connect.StateRunning, connect.StateRunning)
	if st.Connector.WorkerID != connecttest.WorkerID || st.Tasks[0].WorkerID != connecttest.WorkerID || st.Type != "source" {
		t.Fatalf("status = %+v", st)
	}
	task := h.fakes.last(t, "outbox")
	if task.cfg.Database.Password != "secret" || task.cfg.Database.Port != 5432 {
		t.Fatalf("task built with %+v, want ${env:...} resolved", task.cfg.Database)
	}
	config, target, ok := h.row(t, "outbox")
	if !ok || target != "STARTED" || config["database.password"] != "${env:OUTBOX_DB_PASSWORD}" || config["name"] != "outbox" {
		t.Fatalf("persisted %v %q %v", config, target, ok)
	}
	if got := h.w.Connectors(); len(got) != 1 || got[0] != "outbox" {
		t.Fatalf("Connectors() = %v", got)
	}
	tasks, err := h.w.Tasks("outbox")
	if err != nil || len(tasks) != 1 || tasks[0].Config["task.class"] != worker.TaskClass {
		t.Fatalf("Tasks = %+v, %v", tasks, err)
	}
	if _, err := h.w.Create(t.Context(), "outbox", connecttest.OutboxConfig(t)); !errors.Is(err, worker.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
}

func TestInvalidConfigChangesNothing(t *testing.T) {
	h := newHarness(t)
	running := h.create(t, "running")
	before, _, _ := h.row(t, "running")

	tests := []struct {
		name    string
		edit    func(map[string]string)
		wantKey string
	}{
		{"missing required key", func(c map[string]string) { delete(c, "database.hostname") }, "database.hostname"},
		{"unknown key", func(c map[string]string) { c["snapshot.delay.ms"] = "5" }, "snapshot.delay.ms"},
		{"unsupported value", func(c map[string]string) { c["tasks.max"] = "2" }, "tasks.max"},
		{"unset env variable", func(c map[string]string) { c["database.user"] = "${env:NOT_SET}" }, "database.user"},
		{"name differs from the path", func(c map[string]string) { c["name"] = "other" }, "name"},
		{"arbitrary heartbeat SQL", func(c map[string]string) {
			c["heartbeat.action.query"] = "DO $$ BEGIN UPDATE users SET balance = balance + 1000000; END $$"
		}, "heartbeat.action.query"},
		{"env variable outside the allow-list", func(c map[string]string) { c["database.password"] = "${env:HOME}" }, "database.password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			config := connecttest.OutboxConfig(t)
			tt.edit(config)
			check := func(op string, err error) {
				t.Helper()
				var ce connect.ConfigError
				if !errors.As(err, &ce) {
					t.Fatalf("%s: %v, want a ConfigError", op, err)
				}
				if keys := ce.Keys(); !slices.Contains(keys, tt.wantKey) {
					t.Fatalf("%s: ConfigError keys %v, want %q among them", op, keys, tt.wantKey)
				}
			}
			_, err := h.w.Create(t.Context(), "new", config)
			check("Create", err)
			_, _, err = h.w.PutConfig(t.Context(), "new", config)
			check("PutConfig new", err)
			if _, _, ok := h.row(t, "new"); ok {
				t.Fatal("an invalid connector was persisted")
			}
			if _, err := h.w.Status("new"); !errors.Is(err, worker.ErrNotFound) {
				t.Fatalf("Status of an invalid connector: %v, want ErrNotFound", err)
			}

			if tt.wantKey == "name" {
				config["name"] = "other-than-running"
			}
			_, _, err = h.w.PutConfig(t.Context(), "running", config)
			check("PutConfig running", err)
			if after, _, _ := h.row(t, "running"); !maps.Equal(after, before) {
				t.Fatalf("persisted config changed to %v", after)
			}
			if got, _ := h.w.Config("running"); !maps.Equal(got, before) {
				t.Fatalf("config changed to %v", got)
			}
			if canceled(running.Ctx()) || running.Runs() != 1 || len(h.fakes.builds("running")) != 1 {
				t.Fatal("the running task was disturbed by an invalid config")
			}
		})
	}
	if got := h.w.Connectors(); len(got) != 1 {
		t.Fatalf("Connectors() = %v", got)
	}
}

func TestPauseResumeStop(t *testing.T) {
	h := newHarness(t)
	task := h.create(t, "outbox")
	ctx := t.Context()

	if err := h.w.Pause(ctx, "outbox"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the task's context canceled", func() bool { return canceled(task.Ctx()) })
	h.waitState(t, "outbox", connect.StatePaused, connect.StatePaused)
	if _, target, _ := h.row(t, "outbox"); target != "PAUSED" {
		t.Fatalf("persisted target %q", target)
	}
	if info, _ := h.w.Info("outbox"); len(info.Tasks) != 1 {
		t.Fatalf("a paused connector keeps its task: %+v", info)
	}

	if err := h.w.Resume(ctx, "outbox"); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, "outbox", connect.StateRunning, connect.StateRunning)
	waitRuns(t, task, 2)
	if n := len(h.fakes.builds("outbox")); n != 1 {
		t.Fatalf("resume: %d tasks built, want Run again on the same task", n)
	}

	if err := h.w.Stop(ctx, "outbox"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the task's context canceled", func() bool { return canceled(task.Ctx()) })
	h.waitState(t, "outbox", connect.StateStopped)
	if tasks, _ := h.w.Tasks("outbox"); len(tasks) != 0 {
		t.Fatalf("stopped connector has tasks %+v", tasks)
	}
	if info, _ := h.w.Info("outbox"); len(info.Tasks) != 0 || info.Tasks == nil {
		t.Fatalf("stopped connector info %+v, want tasks []", info)
	}
	if _, target, _ := h.row(t, "outbox"); target != "STOPPED" {
		t.Fatalf("persisted target %q", target)
	}
	if err := h.w.RestartTask(ctx, "outbox", 0); !errors.Is(err, worker.ErrTaskNotFound) {
		t.Fatalf("restart task of a stopped connector: %v", err)
	}

	// Resuming a stopped connector starts it afresh: a new task.
	if err := h.w.Resume(ctx, "outbox"); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, "outbox", connect.StateRunning, connect.StateRunning)
	if n := len(h.fakes.builds("outbox")); n != 2 {
		t.Fatalf("%d tasks built, want a new one after stop and resume", n)
	}

	for _, op := range []func(context.Context, string) error{h.w.Pause, h.w.Resume, h.w.Stop} {
		if err := op(ctx, "nope"); !errors.Is(err, worker.ErrNotFound) {
			t.Fatalf("on an unknown connector: %v, want ErrNotFound", err)
		}
	}
}

func TestFailures(t *testing.T) {
	h := newHarness(t)
	task := h.create(t, "outbox")
	task.fail <- errors.New("replication slot is gone")
	st := h.waitState(t, "outbox", connect.StateRunning, connect.StateFailed)
	if st.Tasks[0].Trace != "replication slot is gone" || st.Connector.Trace != "" {
		t.Fatalf("status %+v", st)
	}
	ts, err := h.w.TaskStatus("outbox", 0)
	if err != nil || ts.State != connect.StateFailed || ts.Trace == "" {
		t.Fatalf("TaskStatus = %+v, %v", ts, err)
	}

	// Pausing and resuming leaves a failed task failed, as in Connect.
	if err := h.w.Pause(t.Context(), "outbox"); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, "outbox", connect.StatePaused, connect.StateFailed)
	if err := h.w.Resume(t.Context(), "outbox"); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, "outbox", connect.StateRunning, connect.StateFailed)
	if task.Runs() != 1 {
		t.Fatalf("%d runs, want the failed task not rerun by resume", task.Runs())
	}

	// A factory error fails the connector, which has no tasks then.
	h.fakes.setFactoryErr(errors.New("cannot reach the database"))
	if _, err := h.w.Create(t.Context(), "broken", connecttest.OutboxConfig(t)); err != nil {
		t.Fatal(err)
	}
	st = h.waitState(t, "broken", connect.StateFailed)
	if !strings.Contains(st.Connector.Trace, "cannot reach the database") {
		t.Fatalf("trace %q", st.Connector.Trace)
	}
	if info, _ := h.w.Info("broken"); len(info.Tasks) != 0 {
		t.Fatalf("failed connector info %+v", info)
	}
	if _, _, ok := h.row(t, "broken"); !ok {
		t.Fatal("a valid config whose task failed to build is persisted, as in Connect")
	}
}

// TestRestart covers POST /connectors/{name}/restart's combinations (KIP-745).
func TestRestart(t *testing.T) {
	const (
		R   = connect.StateRunning
		F   = connect.StateFailed
		RS  = connect.StateRestarting
		run = "running"
		tf  = "task failed"
		cf  = "connector failed"
	)
	tests := []struct {
		given                    string
		includeTasks, onlyFailed bool
		plan                     []string // connector state, task states
		rerun                    bool     // the task runs again
		after                    []string
	}{
		{run, false, false, []string{RS, R}, false, []string{R, R}},
		{run, false, true, []string{R, R}, false, []string{R, R}},
		{run, true, false, []string{RS, RS}, true, []string{R, R}},
		{run, true, true, []string{R, R}, false, []string{R, R}},
		{tf, false, false, []string{RS, F}, false, []string{R, F}},
		{tf, false, true, []string{R, F}, false, []string{R, F}},
		{tf, true, false, []string{RS, RS}, true, []string{R, R}},
		{tf, true, true, []string{R, RS}, true, []string{R, R}},
		{cf, false, false, []string{RS}, true, []string{R, R}},
		{cf, false, true, []string{RS}, true, []string{R, R}},
		{cf, true, true, []string{RS}, true, []string{R, R}},
	}
	h := newHarness(t)
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%s/includeTasks=%v/onlyFailed=%v", tt.given, tt.includeTasks, tt.onlyFailed), func(t *testing.T) {
			name := fmt.Sprintf("c%d", i)
			var task *fakeTask
			switch tt.given {
			case run:
				task = h.create(t, name)
			case tf:
				task = h.create(t, name)
				task.fail <- errors.New("boom")
				h.waitState(t, name, R, F)
			case cf:
				h.fakes.setFactoryErr(errors.New("no"))
				if _, err := h.w.Create(t.Context(), name, connecttest.OutboxConfig(t)); err != nil {
					t.Fatal(err)
				}
				h.waitState(t, name, F)
				h.fakes.setFactoryErr(nil)
			}
			var ctxBefore context.Context
			if task != nil {
				ctxBefore = task.Ctx()
			}

			plan, err := h.w.Restart(t.Context(), name, tt.includeTasks, tt.onlyFailed)
			if err != nil {
				t.Fatal(err)
			}
			if got := states(plan); strings.Join(got, ",") != strings.Join(tt.plan, ",") {
				t.Fatalf("plan %v, want %v", got, tt.plan)
			}
			h.waitState(t, name, tt.after...)
			switch {
			case tt.given == cf:
				waitRuns(t, h.fakes.last(t, name), 1)
			case tt.rerun:
				waitFor(t, "the task run again", func() bool { return task.Runs() == 2 })
				if !canceled(ctxBefore) {
					t.Fatal("the first run's context was not canceled")
				}
			default:
				// Restart decides synchronously: an untouched run is not canceled.
				if task.Runs() != 1 || (tt.given == run && canceled(ctxBefore)) {
					t.Fatalf("task disturbed: %d runs", task.Runs())
				}
			}
		})
	}
	if _, err := h.w.Restart(t.Context(), "nope", true, false); !errors.Is(err, worker.ErrNotFound) {
		t.Fatalf("restart unknown: %v", err)
	}
}

func TestRestartTask(t *testing.T) {
	h := newHarness(t)
	task := h.create(t, "outbox")
	first := task.Ctx()
	if err := h.w.RestartTask(t.Context(), "outbox", 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the task run again", func() bool { return task.Runs() == 2 })
	if !canceled(first) {
		t.Fatal("the first run was not stopped")
	}
	h.waitState(t, "outbox", connect.StateRunning, connect.StateRunning)
	if err := h.w.RestartTask(t.Context(), "outbox", 1); !errors.Is(err, worker.ErrTaskNotFound) {
		t.Fatalf("task 1: %v", err)
	}
	if err := h.w.RestartTask(t.Context(), "nope", 0); !errors.Is(err, worker.ErrNotFound) {
		t.Fatalf("unknown connector: %v", err)
	}

	// A paused task restarts into PAUSED, its failure cleared.
	task.fail <- errors.New("boom")
	h.waitState(t, "outbox", connect.StateRunning, connect.StateFailed)
	if err := h.w.Pause(t.Context(), "outbox"); err != nil {
		t.Fatal(err)
	}
	if err := h.w.RestartTask(t.Context(), "outbox", 0); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, "outbox", connect.StatePaused, connect.StatePaused)
	if task.Runs() != 2 {
		t.Fatalf("%d runs; a paused task must not run", task.Runs())
	}
}

func TestPutConfig(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	config := connecttest.OutboxConfig(t)
	info, created, err := h.w.PutConfig(ctx, "outbox", config)
	if err != nil || !created || info.Name != "outbox" {
		t.Fatalf("PutConfig new = %+v, %v, %v", info, created, err)
	}
	h.waitState(t, "outbox", connect.StateRunning, connect.StateRunning)
	first := h.fakes.last(t, "outbox")
	waitRuns(t, first, 1)

	// The same config again: updated, the task untouched.
	if _, created, err := h.w.PutConfig(ctx, "outbox", config); err != nil || created {
		t.Fatalf("PutConfig same = %v, %v", created, err)
	}
	if canceled(first.Ctx()) || len(h.fakes.builds("outbox")) != 1 {
		t.Fatal("an unchanged config restarted the task")
	}

	// A changed config: the task is rebuilt with it, after the old run ended.
	config["heartbeat.interval.ms"] = "5000"
	if _, created, err := h.w.PutConfig(ctx, "outbox", config); err != nil || created {
		t.Fatalf("PutConfig changed = %v, %v", created, err)
	}
	waitFor(t, "a second task", func() bool { return len(h.fakes.builds("outbox")) == 2 })
	h.waitState(t, "outbox", connect.StateRunning, connect.StateRunning)
	second := h.fakes.last(t, "outbox")
	if !canceled(first.Ctx()) || second.cfg.HeartbeatInterval != 5*time.Second {
		t.Fatalf("new task config heartbeat %v", second.cfg.HeartbeatInterval)
	}
	if stored, _, _ := h.row(t, "outbox"); stored["heartbeat.interval.ms"] != "5000" {
		t.Fatalf("persisted %v", stored)
	}

	// A paused connector takes the new config and stays paused.
	if err := h.w.Pause(ctx, "outbox"); err != nil {
		t.Fatal(err)
	}
	config["heartbeat.interval.ms"] = "7000"
	if _, _, err := h.w.PutConfig(ctx, "outbox", config); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, "outbox", connect.StatePaused, connect.StatePaused)
	if err := h.w.Resume(ctx, "outbox"); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, "outbox", connect.StateRunning, connect.StateRunning)
	if last := h.fakes.last(t, "outbox"); last.cfg.HeartbeatInterval != 7*time.Second {
		t.Fatalf("resumed with heartbeat %v, want the new config", last.cfg.HeartbeatInterval)
	}
}

func TestDelete(t *testing.T) {
	h := newHarness(t)
	task := h.create(t, "outbox")
	if err := h.w.Delete(t.Context(), "outbox"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the task stopped", func() bool { return canceled(task.Ctx()) && h.fakes.activeRuns() == 0 })
	if _, _, ok := h.row(t, "outbox"); ok {
		t.Fatal("row still persisted")
	}
	if _, err := h.w.Status("outbox"); !errors.Is(err, worker.ErrNotFound) {
		t.Fatalf("Status after delete: %v", err)
	}
	if len(h.w.Connectors()) != 0 {
		t.Fatal("still listed")
	}
	if err := h.w.Delete(t.Context(), "outbox"); !errors.Is(err, worker.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// The name can be used again.
	h.create(t, "outbox")
}

func TestRestoresTargetStatesOnRun(t *testing.T) {
	db, _ := pgtest.NewDB(t)
	first := start(t, db, newFakes())
	ctx := t.Context()
	for _, name := range []string{"started", "paused", "stopped"} {
		first.create(t, name)
	}
	if err := first.w.Pause(ctx, "paused"); err != nil {
		t.Fatal(err)
	}
	if err := first.w.Stop(ctx, "stopped"); err != nil {
		t.Fatal(err)
	}
	first.stop()
	if _, err := first.w.Create(ctx, "late", connecttest.OutboxConfig(t)); !errors.Is(err, worker.ErrNotRunning) {
		t.Fatalf("Create after Run returned: %v, want ErrNotRunning", err)
	}

	second := start(t, db, newFakes())
	second.waitState(t, "started", connect.StateRunning, connect.StateRunning)
	second.waitState(t, "paused", connect.StatePaused, connect.StatePaused)
	second.waitState(t, "stopped", connect.StateStopped)
	if n := len(second.fakes.builds("paused")) + len(second.fakes.builds("stopped")); n != 0 {
		t.Fatalf("%d tasks built for paused and stopped connectors", n)
	}
	if got := second.w.Connectors(); strings.Join(got, ",") != "paused,started,stopped" {
		t.Fatalf("Connectors() = %v", got)
	}
	if err := second.w.Resume(ctx, "paused"); err != nil {
		t.Fatal(err)
	}
	second.waitState(t, "paused", connect.StateRunning, connect.StateRunning)
}

// A stored config whose ${env:...} no longer resolves fails the connector on
// start-up instead of the worker.
func TestRunFailsAConnectorWhoseEnvIsGone(t *testing.T) {
	db, _ := pgtest.NewDB(t)
	config := connecttest.OutboxConfig(t)
	config["name"] = "outbox"
	config["database.user"] = "${env:GONE}"
	doc, _ := json.Marshal(config)
	if _, err := db.Exec(`INSERT INTO connect_connectors (name, config, target_state) VALUES ('outbox', $1, 'STARTED')`, doc); err != nil {
		t.Fatal(err)
	}
	h := start(t, db, newFakes())
	st := h.waitState(t, "outbox", connect.StateFailed)
	if !strings.Contains(st.Connector.Trace, "database.user") {
		t.Fatalf("trace %q does not name the key", st.Connector.Trace)
	}
}

// Every task goroutine has ended when Run returns, also with changes racing
// with each other and with the shutdown.
func TestNoGoroutineLeaks(t *testing.T) {
	h := newHarness(t)
	names := []string{"a", "b", "c"}
	for _, n := range names {
		h.create(t, n)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			ctx := t.Context()
			n := names[i%len(names)]
			var err error
			switch i % 5 {
			case 0:
				_, err = h.w.Restart(ctx, n, true, false)
			case 1:
				err = h.w.Pause(ctx, n)
			case 2:
				err = h.w.Resume(ctx, n)
			case 3:
				err = h.w.RestartTask(ctx, n, 0)
			case 4:
				config := connecttest.OutboxConfig(t)
				config["heartbeat.interval.ms"] = fmt.Sprint(1000 + i)
				_, _, err = h.w.PutConfig(ctx, n, config)
			}
			if err != nil && !errors.Is(err, worker.ErrTaskNotFound) {
				t.Errorf("op %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	for _, n := range names {
		if err := h.w.Resume(t.Context(), n); err != nil {
			t.Fatal(err)
		}
		h.waitState(t, n, connect.StateRunning, connect.StateRunning)
	}
	h.stop()
	if n := h.fakes.activeRuns(); n != 0 {
		t.Fatalf("%d runs active after Run returned", n)
	}
	// A task goroutine may still be returning from its last deferred call.
	waitFor(t, "no task goroutine left", func() bool {
		buf := make([]byte, 1<<20)
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "worker.(*Worker).runTask")
	})
}

// panicTask panics in Run.
type panicTask struct{}

func (panicTask) Run(context.Context) error { panic("boom") }

// A task that panics fails with the panic as its trace, without a Go stack.
func TestPanicTraceHasNoStack(t *testing.T) {
	db, _ := pgtest.NewDB(t)
	w := worker.New(db, func(string, connect.Config) (worker.Task, error) { return panicTask{}, nil },
		worker.Options{WorkerID: connecttest.WorkerID, Lookup: connecttest.Lookup})
	runtest.Background(t, w.Run)
	if _, err := w.Create(t.Context(), "outbox", connecttest.OutboxConfig(t)); err != nil {
		t.Fatal(err)
	}
	var st connect.ConnectorStatus
	waitFor(t, "the task FAILED", func() bool {
		st, _ = w.Status("outbox")
		return len(st.Tasks) == 1 && st.Tasks[0].State == connect.StateFailed
	})
	if trace := st.Tasks[0].Trace; trace != "task panicked: boom" {
		t.Fatalf("trace %q, want the panic without a stack", trace)
	}
}

// GET config shows a literal password as [hidden] and the stored config
// keeps it.
func TestConfigHidesALiteralPassword(t *testing.T) {
	h := newHarness(t)
	config := connecttest.OutboxConfig(t)
	config["database.password"] = "hunter2"
	if _, err := h.w.Create(t.Context(), "outbox", config); err != nil {
		t.Fatal(err)
	}
	got, err := h.w.Config("outbox")
	if err != nil || got["database.password"] != worker.HiddenPassword {
		t.Fatalf("Config password %q, %v", got["database.password"], err)
	}
	info, err := h.w.Info("outbox")
	if err != nil || info.Config["database.password"] != worker.HiddenPassword {
		t.Fatalf("Info password %q, %v", info.Config["database.password"], err)
	}
	if stored, _, _ := h.row(t, "outbox"); stored["database.password"] != "hunter2" {
		t.Fatalf("stored password %q", stored["database.password"])
	}
	if last := h.fakes.last(t, "outbox"); last.cfg.Database.Password != "hunter2" {
		t.Fatalf("the task got password %q", last.cfg.Database.Password)
	}

	// What GET showed, edited and put back, keeps the stored password.
	got["status.update.interval.ms"] = "2000"
	if _, _, err := h.w.PutConfig(t.Context(), "outbox", got); err != nil {
		t.Fatal(err)
	}
	if stored, _, _ := h.row(t, "outbox"); stored["database.password"] != "hunter2" || stored["status.update.interval.ms"] != "2000" {
		t.Fatalf("after a put of the shown config, stored %v", stored)
	}
	// A connector with no stored password cannot take [hidden].
	other := connecttest.OutboxConfig(t)
	other["database.password"] = worker.HiddenPassword
	_, _, err = h.w.PutConfig(t.Context(), "other", other)
	var ce connect.ConfigError
	if !errors.As(err, &ce) || !slices.Equal(ce.Keys(), []string{"database.password"}) {
		t.Fatalf("[hidden] for a new connector: %v, want a ConfigError naming database.password", err)
	}
	if _, _, ok := h.row(t, "other"); ok {
		t.Fatal("the refused connector was stored")
	}
}
