package engine_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/engine"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
	"github.com/outboxpay/outboxpay/internal/kit/kafkaclustertest"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/kit/runtest"
	"github.com/outboxpay/outboxpay/migrations"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// rig is a fresh database, an embedded Kafka and a connector config for them.
type rig struct {
	t     *testing.T
	db    *sql.DB
	kafka *kafkacluster.Cluster
	raw   map[string]string
	slot  string
	// producer holds librdkafka settings over the engine's (start's
	// broker.address.family included).
	producer map[string]any
	// superuser is the database's superuser, who owns the tables.
	superuser *url.Userinfo
}

func newRig(t *testing.T, overrides map[string]string) *rig {
	t.Helper()
	db, dbURL := pgtest.NewDB(t)
	// The engine connects as the connector's role; the test checks as the superuser.
	_, cdcURL := pgtest.AsRole(t, dbURL, migrations.RoleCDC)
	u, err := url.Parse(cdcURL)
	if err != nil {
		t.Fatal(err)
	}
	kc := kafkaclustertest.Start(t, kafkacluster.Options{})

	b, err := os.ReadFile("../outbox-connector.json")
	if err != nil {
		t.Fatal(err)
	}
	var req connect.CreateRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"OUTBOX_DB_HOST": u.Hostname(), "OUTBOX_DB_PORT": u.Port(), "OUTBOX_DB_USER": u.User.Username(),
		"OUTBOX_DB_PASSWORD": password(u), "OUTBOX_DB_NAME": strings.TrimPrefix(u.Path, "/"),
	}
	allow, err := connect.CompileEnvAllowlist(connect.DefaultEnvAllowlistPattern)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := connect.Env{Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, Allow: allow}.ResolveEnv(req.Config)
	if err != nil {
		t.Fatal(err)
	}
	// Replication slots belong to the cluster: one per test database.
	raw["slot.name"] = "slot_" + env["OUTBOX_DB_NAME"]
	raw["status.update.interval.ms"] = "1000"
	raw["retriable.restart.connector.wait.ms"] = "100"
	for k, v := range overrides {
		raw[k] = v
	}
	su, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, db: db, kafka: kc, raw: raw, slot: raw["slot.name"], superuser: su.User}
	t.Cleanup(r.dropSlot)
	return r
}

// dropSlot removes the test's slot once its engine has stopped, so the
// database can be dropped.
func (r *rig) dropSlot() {
	eventually.True(r.t, 30*time.Second, "drop slot "+r.slot, func() (bool, error) {
		_, err := r.db.Exec(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, r.slot)
		return err == nil, err
	})
}

// start runs an engine until the test ends (or the returned stop is called).
func (r *rig) start(reg prometheus.Registerer) (stop func() error) {
	r.t.Helper()
	return r.startLogged(reg, testLogger(r.t))
}

// startLogged is start with the engine logging to logger.
func (r *rig) startLogged(reg prometheus.Registerer, logger *slog.Logger) (stop func() error) {
	r.t.Helper()
	cfg, err := connect.ParseConfig(r.raw)
	if err != nil {
		r.t.Fatal(err)
	}
	producer := map[string]any{"broker.address.family": "v4"}
	maps.Copy(producer, r.producer)
	opts := engine.Options{Kafka: kafkaclient.Config{Bootstrap: r.kafka.Bootstrap()}, ProducerConfig: producer, Logger: logger}
	if reg != nil {
		opts.Metrics = engine.NewMetrics(reg)
	}
	e := engine.New("outbox", cfg, opts)
	stop = runtest.Background(r.t, e.Run)
	r.waitStreaming()
	return stop
}

// waitStreaming waits until the engine holds its slot: only what commits
// after the slot exists is streamed (snapshot.mode=no_data).
func (r *rig) waitStreaming() {
	r.t.Helper()
	eventually.True(r.t, time.Minute, "engine streaming from slot "+r.slot, func() (bool, error) {
		var active bool
		err := r.db.QueryRow(`SELECT active AND confirmed_flush_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = $1`, r.slot).Scan(&active)
		return err == nil && active, err
	})
}

// insert commits one outbox row per event in its own transaction and
// returns their ids.
func (r *rig) insert(aggType, key string, n int) []string {
	r.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
		_, err := r.db.Exec(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ($1, $2, $3, 'TestEvent', $4)`,
			ids[i], aggType, key, fmt.Sprintf(`{"seq": %d, "key": %q}`, i, key))
		if err != nil {
			r.t.Fatal(err)
		}
	}
	return ids
}

// waitIDs reads the topics until every id is there and returns the records
// by id (the first of any duplicates) and the number of duplicates.
func (r *rig) waitIDs(topics []string, ids []string, timeout time.Duration) (map[string]*kafka.Message, int) {
	r.t.Helper()
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	deadline := time.Now().Add(timeout)
	for {
		msgs := kafkatest.ReadAll(r.t, r.kafka.Bootstrap(), topics, len(ids), time.Until(deadline))
		byID, dups := map[string]*kafka.Message{}, 0
		for _, m := range msgs {
			id := kafkatest.Header(m, "id")
			if _, seen := byID[id]; seen {
				dups++
				continue
			}
			byID[id] = m
		}
		missing := 0
		for id := range want {
			if byID[id] == nil {
				missing++
			}
		}
		if missing == 0 {
			return byID, dups
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d of %d events missing on %v after %v", missing, len(ids), topics, timeout)
		}
	}
}

func password(u *url.URL) string { pw, _ := u.User.Password(); return pw }
