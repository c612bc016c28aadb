package main

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
	"github.com/outboxpay/outboxpay/internal/kit/kafkaclustertest"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/migrations"
)

// cdcRig is a fresh database, an embedded Kafka and the shipped connector
// config pointed at them.
type cdcRig struct {
	t         *testing.T
	db        *sql.DB // the superuser's, for setting up and checking
	cdcDB     *sql.DB // the connector's role's: the worker's config store
	cdcURL    string  // the connect process's DATABASE_URL
	bootstrap string
	env       map[string]string // OUTBOX_DB_* for the config's placeholders
	name      string
	config    map[string]string
	slot      string
}

func newCDCRig(t *testing.T) *cdcRig {
	t.Helper()
	db, dbURL := pgtest.NewDB(t)
	kc := kafkaclustertest.Start(t, kafkacluster.Options{})
	cdcDB, cdcURL := pgtest.AsRole(t, dbURL, migrations.RoleCDC)
	env, err := connect.DatabaseEnv(cdcURL)
	if err != nil {
		t.Fatal(err)
	}
	req, err := connect.OutboxConnector()
	if err != nil {
		t.Fatal(err)
	}
	r := &cdcRig{t: t, db: db, cdcDB: cdcDB, cdcURL: cdcURL, bootstrap: kc.Bootstrap(), env: env, name: req.Name, config: req.Config}
	r.slot = "slot_" + env["OUTBOX_DB_NAME"] // slots belong to the cluster: one per test database
	r.config["slot.name"] = r.slot
	r.config["status.update.interval.ms"] = "1000"
	r.config["retriable.restart.connector.wait.ms"] = "100"
	t.Cleanup(func() {
		eventually.True(t, 30*time.Second, "drop slot "+r.slot, func() (bool, error) {
			_, err := db.Exec(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, r.slot)
			return err == nil, err
		})
	})
	return r
}

func (r *cdcRig) lookup(name string) (string, bool) { v, ok := r.env[name]; return v, ok }

func (r *cdcRig) slotActive() (bool, error) {
	var active bool
	err := r.db.QueryRow(`SELECT COALESCE((SELECT active AND confirmed_flush_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = $1), false)`, r.slot).Scan(&active)
	return active, err
}

func (r *cdcRig) waitSlot(active bool) {
	r.t.Helper()
	eventually.True(r.t, time.Minute, fmt.Sprintf("slot %s active=%v", r.slot, active), func() (bool, error) {
		got, err := r.slotActive()
		return err == nil && got == active, err
	})
}

// insert commits n outbox rows in transactions of perTx rows and returns their ids.
func (r *cdcRig) insert(n, perTx int) []string {
	r.t.Helper()
	ids := make([]string, 0, n)
	for len(ids) < n {
		batch := make([]string, min(perTx, n-len(ids)))
		for i := range batch {
			batch[i] = uuid.NewString()
		}
		if _, err := r.db.Exec(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
			SELECT id::uuid, 'order', (ord % 50)::text, 'TestEvent', jsonb_build_object('n', ord)
			FROM unnest($1::text[]) WITH ORDINALITY AS t(id, ord)`, pq.Array(batch)); err != nil {
			r.t.Fatal(err)
		}
		ids = append(ids, batch...)
	}
	return ids
}

// waitOnKafka waits until every id is on outbox.event.order and returns how
// many records were duplicates.
func (r *cdcRig) waitOnKafka(ids []string) int {
	r.t.Helper()
	var missing, dups int
	err := eventually.Wait(2*time.Minute, func() (bool, error) {
		msgs, err := kafkatest.Read(r.bootstrap, []string{"outbox.event.order"}, len(ids), 20*time.Second)
		if err != nil {
			return false, err
		}
		seen := make(map[string]bool, len(msgs))
		dups = 0
		for _, m := range msgs {
			id := kafkatest.Header(m, "id")
			if seen[id] {
				dups++
			}
			seen[id] = true
		}
		missing = 0
		for _, id := range ids {
			if !seen[id] {
				missing++
			}
		}
		return missing == 0, nil
	})
	if err != nil || missing > 0 {
		r.t.Fatalf("%d of %d events missing on Kafka (%v)", missing, len(ids), err)
	}
	return dups
}

func (r *cdcRig) count() int64 {
	r.t.Helper()
	n, err := kafkatest.Count(r.bootstrap, []string{"outbox.event.order"})
	if err != nil {
		r.t.Fatal(err)
	}
	return n
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// connectProcess is `outboxpay connect` running as its own process.
type connectProcess struct {
	cmd    *exec.Cmd
	done   chan error
	stderr *bytes.Buffer
}

func (r *cdcRig) startConnect(addr string) *connectProcess {
	r.t.Helper()
	cmd := exec.Command(binary(r.t), "connect")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+r.cdcURL, "KAFKA_BOOTSTRAP_SERVERS="+r.bootstrap,
		"CONNECT_ADDR="+addr, "LOG_LEVEL=warn")
	for k, v := range r.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &connectProcess{cmd: cmd, done: make(chan error, 1), stderr: &bytes.Buffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	r.t.Cleanup(func() { p.kill() })
	return p
}

func (p *connectProcess) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// The engine, as its own process, is killed with SIGKILL while it streams
// 60,000 events, and started again: every event is on Kafka afterwards, and
// only events of the unconfirmed tail (about a second's worth: the slot is
// confirmed at most once a second) are sent twice.
func TestEngineProcessKilledMidStream(t *testing.T) {
	r := newCDCRig(t)
	addr := freeAddr(t)
	proc := r.startConnect(addr)
	client := rest.NewClient("http://"+addr, &http.Client{Timeout: 10 * time.Second})
	ctx := context.Background()
	eventually.True(t, time.Minute, "connect REST API up", func() (bool, error) {
		_, _, err := client.PutConnectorConfig(ctx, r.name, r.config)
		return err == nil, err
	})
	r.waitSlot(true)
	var start string
	if err := r.db.QueryRow(`SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, r.slot).Scan(&start); err != nil {
		t.Fatal(err)
	}

	const total = 60000
	inserted := make(chan []string, 1)
	go func() { inserted <- r.insert(total, 100) }()
	eventually.True(t, 2*time.Minute, "engine streaming part of the backlog, and confirming it", func() (bool, error) {
		var confirmed bool
		err := r.db.QueryRow(`SELECT confirmed_flush_lsn > $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1`,
			r.slot, start).Scan(&confirmed)
		return err == nil && confirmed && r.count() >= 30000, err
	})
	proc.kill()
	before := r.count()
	t.Logf("killed the engine with %d of %d events on Kafka", before, total)
	ids := <-inserted

	r.startConnect(addr) // resumes the persisted connector from its slot
	dups := r.waitOnKafka(ids)
	t.Logf("after the restart: all %d events on Kafka; %d delivered twice (the unconfirmed tail)", len(ids), dups)
	if int64(dups) >= before {
		t.Errorf("%d duplicates of %d events sent before the kill: the slot was not confirmed while streaming", dups, before)
	}
}

// Every Kafka Connect endpoint against the real engine: records flow when
// RUNNING, stop when PAUSED or STOPPED and flow again, nothing missed, on
// resume; restarts; a task that cannot start is FAILED with its reason; bad
// configs are refused and change nothing; delete frees the slot.
func TestConnectRESTWithTheEngine(t *testing.T) {
	r := newCDCRig(t)
	if _, err := r.db.Exec(`CREATE PUBLICATION other_publication WITH (publish = 'insert')`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnectAddr = "127.0.0.1:0"
	served := make(chan error, 1)
	d := testDeps(cfg, r.cdcDB)
	d.kafkaAs, d.lookup = plainKafka(r.bootstrap), r.lookup
	base := goServeConnect(t, ctx, d, served)
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serveConnect: %v", err)
		}
	})
	c := rest.NewClient(base, &http.Client{Timeout: 10 * time.Second})

	waitState := func(state string) {
		t.Helper()
		eventually.True(t, time.Minute, "connector "+state, func() (bool, error) {
			st, err := c.ConnectorStatus(ctx, r.name)
			if err != nil {
				return false, err
			}
			if state == connect.StateStopped {
				return st.Connector.State == state && len(st.Tasks) == 0, nil
			}
			return st.Connector.State == state && len(st.Tasks) == 1 && st.Tasks[0].State == state, nil
		})
	}
	// stays checks that Kafka's record count does not move for a while.
	stays := func(n int64) {
		t.Helper()
		until := time.Now().Add(2 * time.Second)
		err := eventually.Wait(3*time.Second, func() (bool, error) {
			if got := r.count(); got != n {
				return false, fmt.Errorf("records flowed: %d, want %d", got, n)
			}
			return time.Now().After(until), nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	info, err := c.ServerInfo(ctx)
	if err != nil || info.Version == "" {
		t.Fatalf("GET /: %+v %v", info, err)
	}

	// A config the engine does not implement is refused, naming the key.
	bad := clone(r.config)
	bad["snapshot.mode"] = "initial"
	if _, err := c.CreateConnector(ctx, r.name, bad); !isAPIError(err, http.StatusBadRequest, "snapshot.mode") {
		t.Fatalf("invalid config: %v", err)
	}
	if names, _ := c.Connectors(ctx); len(names) != 0 {
		t.Fatalf("a refused config left connectors %v", names)
	}

	if _, err := c.CreateConnector(ctx, r.name, r.config); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateConnector(ctx, r.name, r.config); !isAPIError(err, http.StatusConflict, r.name) {
		t.Fatalf("second create: %v", err)
	}
	waitState(connect.StateRunning)
	r.waitSlot(true)
	var ids []string
	ids = append(ids, r.insert(10, 1)...)
	r.waitOnKafka(ids)

	// Paused: nothing flows; resumed: what was written meanwhile arrives.
	if err := c.PauseConnector(ctx, r.name); err != nil {
		t.Fatal(err)
	}
	waitState(connect.StatePaused)
	r.waitSlot(false)
	ids = append(ids, r.insert(10, 1)...)
	stays(int64(10))
	if err := c.ResumeConnector(ctx, r.name); err != nil {
		t.Fatal(err)
	}
	waitState(connect.StateRunning)
	r.waitOnKafka(ids)

	// Restarts, of the connector with its tasks and of the task alone.
	if _, err := c.RestartConnector(ctx, r.name, true, false); err != nil {
		t.Fatal(err)
	}
	waitState(connect.StateRunning)
	ids = append(ids, r.insert(5, 1)...)
	r.waitOnKafka(ids)
	if err := c.RestartTask(ctx, r.name, 0); err != nil {
		t.Fatal(err)
	}
	waitState(connect.StateRunning)
	ids = append(ids, r.insert(5, 1)...)
	r.waitOnKafka(ids)

	// Stopped: no tasks, nothing flows; resumed: all of it arrives.
	if err := c.StopConnector(ctx, r.name); err != nil {
		t.Fatal(err)
	}
	waitState(connect.StateStopped)
	r.waitSlot(false)
	n := r.count()
	ids = append(ids, r.insert(5, 1)...)
	stays(n)
	if err := c.ResumeConnector(ctx, r.name); err != nil {
		t.Fatal(err)
	}
	waitState(connect.StateRunning)
	r.waitOnKafka(ids)

	// A bad config update is refused and the running config is kept.
	bad = clone(r.config)
	bad["tasks.max"] = "4"
	if _, _, err := c.PutConnectorConfig(ctx, r.name, bad); !isAPIError(err, http.StatusBadRequest, "tasks.max") {
		t.Fatalf("invalid config update: %v", err)
	}
	if got, err := c.ConnectorConfig(ctx, r.name); err != nil || got["tasks.max"] != r.config["tasks.max"] {
		t.Fatalf("config after a refused update: %v %v", got, err)
	}

	// A task that cannot run is FAILED with the reason as trace; once the
	// cause is fixed, a restart of failed tasks brings it back. (The
	// publication exists from the start: pgoutput reads publications as of
	// the WAL it decodes, so one created later would be missing for older WAL.)
	other := clone(r.config)
	other["publication.name"] = "other_publication"
	if _, _, err := c.PutConnectorConfig(ctx, r.name, other); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, time.Minute, "task FAILED", func() (bool, error) {
		st, err := c.ConnectorStatus(ctx, r.name)
		return err == nil && len(st.Tasks) == 1 && st.Tasks[0].State == connect.StateFailed &&
			strings.Contains(st.Tasks[0].Trace, "other_publication does not cover table public.outbox"), err
	})
	if _, err := r.db.Exec(`ALTER PUBLICATION other_publication ADD TABLE outbox`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RestartConnector(ctx, r.name, true, true); err != nil {
		t.Fatal(err)
	}
	waitState(connect.StateRunning)
	ids = append(ids, r.insert(5, 1)...)
	r.waitOnKafka(ids)

	// The engine's metrics are served beside the REST API.
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"outboxpay_cdc_events_captured_total", "outboxpay_cdc_events_produced_total",
		"outboxpay_cdc_milliseconds_behind_source", "outboxpay_cdc_slot_lag_bytes", "outboxpay_cdc_last_event_timestamp_seconds",
		"outboxpay_cdc_retries_total", "outboxpay_cdc_state", "outboxpay_cdc_commit_to_ack_seconds"} {
		if !strings.Contains(body.String(), m) {
			t.Errorf("/metrics has no %s", m)
		}
	}

	if err := c.DeleteConnector(ctx, r.name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ConnectorStatus(ctx, r.name); !isAPIError(err, http.StatusNotFound, r.name) {
		t.Fatalf("status after delete: %v", err)
	}
	r.waitSlot(false)
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func isAPIError(err error, status int, mentions string) bool {
	var apiErr *rest.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.StatusCode == status && strings.Contains(apiErr.Message, mentions)
}

// emptyDB is a database/sql driver whose every query returns no rows: a
// config store with no connectors, for tests of serveConnect that need no
// Postgres.
type emptyDB struct{}

type emptyConn struct{}

type emptyRows struct{}

func init() { sql.Register("outboxpay-empty", emptyDB{}) }

func (emptyDB) Open(string) (driver.Conn, error) { return emptyConn{}, nil }

func (emptyConn) Prepare(string) (driver.Stmt, error) {
	return nil, errors.New("emptydb: no statements")
}
func (emptyConn) Close() error              { return nil }
func (emptyConn) Begin() (driver.Tx, error) { return nil, errors.New("emptydb: no transactions") }
func (emptyConn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	return emptyRows{}, nil
}

func (emptyRows) Columns() []string         { return []string{"name", "config", "target_state"} }
func (emptyRows) Close() error              { return nil }
func (emptyRows) Next([]driver.Value) error { return io.EOF }

func openEmptyDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("outboxpay-empty", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
