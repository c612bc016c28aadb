package reconcile_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/engine"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/connect/worker"
	"github.com/outboxpay/outboxpay/consumers/reconcile"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/promtest"
	"github.com/outboxpay/outboxpay/internal/kit/runtest"
)

// requestLog records the requests an HTTP handler served.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, req.Method+" "+req.URL.RequestURI())
		l.mu.Unlock()
		h.ServeHTTP(w, req)
	})
}

// count returns how many requests were exactly want.
func (l *requestLog) count(want string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.reqs {
		if r == want {
			n++
		}
	}
	return n
}

// startConnect runs the real Kafka Connect worker with the embedded CDC
// engine and its REST API, as the connect subcommand does, until the test
// ends; it returns a client of the API and the log of its requests.
func (r *rig) startConnect() (*rest.Client, *requestLog) {
	r.t.Helper()
	env, err := connect.DatabaseEnv(r.url)
	if err != nil {
		r.t.Fatal(err)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	logger := testLogger(r.t)
	w := worker.New(r.db, func(name string, c connect.Config) (worker.Task, error) {
		return engine.New(name, c, engine.Options{Kafka: kafkaclient.Config{Bootstrap: r.kafka.Bootstrap()},
			ProducerConfig: map[string]any{"broker.address.family": "v4"}, Logger: logger}), nil
	}, worker.Options{WorkerID: "127.0.0.1:8083", Lookup: lookup, Logger: logger})

	log := &requestLog{}
	srv := httptest.NewServer(log.wrap(rest.NewServer(w, rest.ServerOptions{Logger: logger})))
	r.t.Cleanup(srv.Close)
	runtest.Checked(r.t, time.Minute, w.Run)
	return rest.NewClient(srv.URL, srv.Client()), log
}

// dropSlotAtEnd drops the replication slot once the engine has stopped, so
// the test's database can be dropped. Call it before startConnect: cleanups
// run last first.
func (r *rig) dropSlotAtEnd(slot string) {
	r.t.Cleanup(func() {
		eventually.True(r.t, 30*time.Second, "drop slot "+slot, func() (bool, error) {
			_, err := r.db.Exec(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
			return err == nil, err
		})
	})
}

// taskState returns the state of the connector's task, "" without one.
func taskState(ctx context.Context, cc *rest.Client, name string) (connect.ConnectorStatus, string, error) {
	st, err := cc.ConnectorStatus(ctx, name)
	if err != nil || len(st.Tasks) == 0 {
		return st, "", err
	}
	return st, st.Tasks[0].State, nil
}

// TestRestartsFailedConnector runs the real embedded engine behind the
// Kafka Connect REST API with a publication that does not cover the outbox:
// its task FAILS permanently. The reconciler restarts it while rows are
// stuck; once the publication is fixed, the restart brings it to RUNNING.
func TestRestartsFailedConnector(t *testing.T) {
	r := newRig(t)
	var dbName string
	if err := r.db.QueryRow(`SELECT current_database()`).Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	slot := "slot_" + dbName
	r.dropSlotAtEnd(slot)
	cc, requests := r.startConnect()

	r.exec(`CREATE PUBLICATION reconcile_pub FOR TABLE users WITH (publish = 'insert')`)
	req, err := connect.OutboxConnector()
	if err != nil {
		t.Fatal(err)
	}
	req.Config["publication.name"] = "reconcile_pub"
	req.Config["slot.name"] = slot
	req.Config["retriable.restart.connector.wait.ms"] = "100"
	if _, err := cc.CreateConnector(t.Context(), req.Name, req.Config); err != nil {
		t.Fatal(err)
	}
	waitTask := func(want string) {
		t.Helper()
		eventually.True(t, 30*time.Second, "task "+want, func() (bool, error) {
			_, state, err := taskState(t.Context(), cc, req.Name)
			return state == want, err
		})
	}
	waitTask(connect.StateFailed)

	stuck := r.insert(1)
	r.set(stuck, `created_at = now() - interval '1 hour'`)
	rc, reg := r.reconciler(reconcile.Config{Connector: req.Name, RepublishAfter: 24 * time.Hour}, cc)
	const restart = "POST /connectors/outbox/restart?includeTasks=true&onlyFailed=true"

	// Still broken: restarted, and FAILED again.
	rep, err := rc.RunOnce(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.RestartedConnector || rep.StuckInit != 2 || !strings.Contains(rep.ConnectorState, "task0=FAILED") {
		t.Fatalf("report %+v, want a restart of the FAILED task for 2 stuck rows", rep)
	}
	if n := requests.count(restart); n != 1 {
		t.Fatalf("%d restart requests, want 1", n)
	}
	waitTask(connect.StateFailed)

	// Fixed: the next restart brings it to RUNNING, streaming from its slot.
	r.exec(`ALTER PUBLICATION reconcile_pub ADD TABLE outbox`)
	if rep, err = rc.RunOnce(t.Context()); err != nil || !rep.RestartedConnector {
		t.Fatalf("report %+v, err %v, want a restart", rep, err)
	}
	if n := requests.count(restart); n != 2 {
		t.Fatalf("%d restart requests, want 2", n)
	}
	eventually.True(t, 30*time.Second, "connector RUNNING and streaming", func() (bool, error) {
		st, state, err := taskState(t.Context(), cc, req.Name)
		if err != nil || st.Connector.State != connect.StateRunning || state != connect.StateRunning {
			return false, err
		}
		var active bool
		err = r.db.QueryRow(`SELECT active AND confirmed_flush_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&active)
		return err == nil && active, nil
	})
	if v := promtest.Value(t, reg, "outboxpay_reconciler_actions_total", "action", reconcile.ActionRestartConnector); v != 2 {
		t.Errorf("restart_connector actions %v, want 2", v)
	}

	// Running: rows still stuck (they predate the slot) are no reason to
	// restart it again.
	if rep, err = rc.RunOnce(t.Context()); err != nil || rep.RestartedConnector || rep.StuckInit != 2 {
		t.Fatalf("report %+v, err %v, want 2 stuck rows and no restart", rep, err)
	}
	if n := requests.count(restart); n != 2 {
		t.Errorf("%d restart requests, want still 2", n)
	}
	// And the engine it brought back delivers new rows.
	fresh := r.insert(1)
	got := r.records(2)
	for _, m := range fresh {
		if len(got[m.ID.String()]) != 1 {
			t.Errorf("event %s of a new row: %d records, want 1", m.ID, len(got[m.ID.String()]))
		}
	}
}
