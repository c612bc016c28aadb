package lag_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outboxpay/outboxpay/consumers/lag"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
	"github.com/outboxpay/outboxpay/internal/kit/kafkaclustertest"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
	"github.com/outboxpay/outboxpay/internal/kit/logtest"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/migrations"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

const (
	orderTopic   = "outbox.event.order"
	orderDLQ     = "outbox.event.order.dlq"
	paymentTopic = "outbox.event.payment"
	otherTopic   = "inventory.snapshots" // not an outbox topic: never reported
	waitTimeout  = 30 * time.Second
)

func TestConsumerGroupLag(t *testing.T) {
	t.Parallel()
	kc := kafkaclustertest.Start(t, kafkacluster.Options{})
	db, _ := pgtest.NewDB(t)
	bootstrap := kc.Bootstrap()

	produce(t, bootstrap, map[string][]int{
		orderTopic:   {5, 3, 2}, // 10 records
		orderDLQ:     {0, 1, 0},
		paymentTopic: {3, 0, 0},
		otherTopic:   {2, 0, 0},
	})
	// The payment topic's log starts at 1 on partition 0: a group that has
	// committed nothing there is behind by what is retained, 2, not 3.
	deleteRecordsBefore(t, bootstrap, paymentTopic, 0, 1)

	// "stock" reads all 10 order records (and the DLQ record) but commits
	// only 4 of them: offsets 0-2 of partition 0 and offset 0 of partition 1.
	stock := kafkatest.NewConsumer(t, kafkaclient.Config{Bootstrap: bootstrap}, "stock")
	if err := stock.SubscribeTopics([]string{orderTopic, orderDLQ}, nil); err != nil {
		t.Fatalf("subscribe stock: %v", err)
	}
	committedMsgs := 0
	for _, m := range readN(t, stock, 11) {
		tp := m.TopicPartition
		if *tp.Topic == orderTopic && (tp.Partition == 0 && tp.Offset <= 2 || tp.Partition == 1 && tp.Offset == 0) {
			if _, err := stock.CommitMessage(m); err != nil {
				t.Fatalf("commit %v: %v", tp, err)
			}
			committedMsgs++
		}
	}
	if committedMsgs != 4 {
		t.Fatalf("stock committed %d records, want 4", committedMsgs)
	}

	// "data-platform" has caught up with the order topic (and committed on a
	// topic that is not reported), and has no members any more.
	dp := kafkatest.NewConsumer(t, kafkaclient.Config{Bootstrap: bootstrap}, "data-platform")
	commitOffsets(t, dp, map[string][]int64{orderTopic: {5, 3, 2}, otherTopic: {1}})
	dp.Close()

	// "outbox-tracker" is subscribed to the payment topic and has committed
	// nothing: its lag is the whole retained log.
	tracker := kafkatest.NewConsumer(t, kafkaclient.Config{Bootstrap: bootstrap}, "outbox-tracker")
	if err := tracker.SubscribeTopics([]string{paymentTopic}, nil); err != nil {
		t.Fatalf("subscribe tracker: %v", err)
	}
	eventually.True(t, waitTimeout, "outbox-tracker assigned", func() (bool, error) {
		tracker.Poll(50)
		parts, err := tracker.Assignment()
		return len(parts) == 3, err
	})

	c := newCollector(t, lag.Options{DB: db, Kafka: kafkaclient.Config{Bootstrap: bootstrap}})

	wantHigh := map[string]float64{
		`outboxpay_topic_high_watermark{partition="0",topic="outbox.event.order"}`:     5,
		`outboxpay_topic_high_watermark{partition="1",topic="outbox.event.order"}`:     3,
		`outboxpay_topic_high_watermark{partition="2",topic="outbox.event.order"}`:     2,
		`outboxpay_topic_high_watermark{partition="0",topic="outbox.event.order.dlq"}`: 0,
		`outboxpay_topic_high_watermark{partition="1",topic="outbox.event.order.dlq"}`: 1,
		`outboxpay_topic_high_watermark{partition="2",topic="outbox.event.order.dlq"}`: 0,
		`outboxpay_topic_high_watermark{partition="0",topic="outbox.event.payment"}`:   3,
		`outboxpay_topic_high_watermark{partition="1",topic="outbox.event.payment"}`:   0,
		`outboxpay_topic_high_watermark{partition="2",topic="outbox.event.payment"}`:   0,
	}
	wantCommitted := map[string]float64{
		`outboxpay_consumer_group_committed_offset{group="stock",partition="0",topic="outbox.event.order"}`:         3,
		`outboxpay_consumer_group_committed_offset{group="stock",partition="1",topic="outbox.event.order"}`:         1,
		`outboxpay_consumer_group_committed_offset{group="data-platform",partition="0",topic="outbox.event.order"}`: 5,
		`outboxpay_consumer_group_committed_offset{group="data-platform",partition="1",topic="outbox.event.order"}`: 3,
		`outboxpay_consumer_group_committed_offset{group="data-platform",partition="2",topic="outbox.event.order"}`: 2,
	}
	wantLag := map[string]float64{
		// 10 produced, 4 committed: 6 behind, 2 on each partition.
		`outboxpay_consumer_group_lag{group="stock",partition="0",topic="outbox.event.order"}`:     2,
		`outboxpay_consumer_group_lag{group="stock",partition="1",topic="outbox.event.order"}`:     2,
		`outboxpay_consumer_group_lag{group="stock",partition="2",topic="outbox.event.order"}`:     2,
		`outboxpay_consumer_group_lag{group="stock",partition="0",topic="outbox.event.order.dlq"}`: 0,
		`outboxpay_consumer_group_lag{group="stock",partition="1",topic="outbox.event.order.dlq"}`: 1,
		`outboxpay_consumer_group_lag{group="stock",partition="2",topic="outbox.event.order.dlq"}`: 0,

		`outboxpay_consumer_group_lag{group="data-platform",partition="0",topic="outbox.event.order"}`: 0,
		`outboxpay_consumer_group_lag{group="data-platform",partition="1",topic="outbox.event.order"}`: 0,
		`outboxpay_consumer_group_lag{group="data-platform",partition="2",topic="outbox.event.order"}`: 0,

		`outboxpay_consumer_group_lag{group="outbox-tracker",partition="0",topic="outbox.event.payment"}`: 2,
		`outboxpay_consumer_group_lag{group="outbox-tracker",partition="1",topic="outbox.event.payment"}`: 0,
		`outboxpay_consumer_group_lag{group="outbox-tracker",partition="2",topic="outbox.event.payment"}`: 0,
	}

	// Every group the cluster lists.
	waitSeries(t, c, "outboxpay_topic_high_watermark", wantHigh)
	waitSeries(t, c, "outboxpay_consumer_group_committed_offset", wantCommitted)
	waitSeries(t, c, "outboxpay_consumer_group_lag", wantLag)
	if got := sumSeries(gather(t, c), `outboxpay_consumer_group_lag{group="stock",`, `topic="outbox.event.order"}`); got != 6 {
		t.Errorf("stock's total lag on %s = %v, want 6", orderTopic, got)
	}
	if got := gather(t, c)[`outboxpay_lag_exporter_errors_total{source="kafka"}`]; got != 0 {
		t.Errorf("kafka errors = %v, want 0", got)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	// Only the configured groups; one that does not exist yet is no error.
	only := newCollector(t, lag.Options{DB: db, Kafka: kafkaclient.Config{Bootstrap: bootstrap}, Groups: []string{"stock", "not-started-yet"}})
	waitSeries(t, only, "outboxpay_consumer_group_lag", filter(wantLag, `group="stock"`))
	waitSeries(t, only, "outboxpay_consumer_group_committed_offset", filter(wantCommitted, `group="stock"`))
	if got := gather(t, only)[`outboxpay_lag_exporter_errors_total{source="kafka"}`]; got != 0 {
		t.Errorf("kafka errors with a group that does not exist = %v, want 0", got)
	}

	// More records: the lag follows on the next scrape, nothing is cached.
	produce(t, bootstrap, map[string][]int{orderTopic: {0, 0, 4}})
	wantLag[`outboxpay_consumer_group_lag{group="stock",partition="2",topic="outbox.event.order"}`] = 6
	wantLag[`outboxpay_consumer_group_lag{group="data-platform",partition="2",topic="outbox.event.order"}`] = 4
	waitSeries(t, c, "outboxpay_consumer_group_lag", wantLag)
}

// The exporter reads lag as principal reconciler on a cluster that enforces
// the product's ACLs (as dev, chaos and compose run it).
func TestConsumerGroupLagUnderACLs(t *testing.T) {
	t.Parallel()
	sasl := &kafkacluster.SASL{Mechanism: kafkaclient.ScramSHA512, Superuser: kafkaclient.PrincipalAdmin,
		SuperuserPassword: "admin-pw", Users: map[string]string{}, ACLs: kafkaclient.ACLs()}
	for _, p := range kafkaclient.Principals() {
		sasl.Users[p] = p + "-pw"
	}
	kc := kafkaclustertest.Start(t, kafkacluster.Options{SASL: sasl})
	as := func(p string) kafkaclient.Config {
		return kafkaclient.Config{Bootstrap: kc.Bootstrap()}.WithUser(sasl.Mechanism, p, sasl.Users[p])
	}
	db, _ := pgtest.NewDB(t)

	produceAs(t, as(kafkaclient.PrincipalConnector), map[string][]int{orderTopic: {2, 1, 0}})
	commitOffsets(t, kafkatest.NewConsumer(t, as("stock"), "stock"), map[string][]int64{orderTopic: {1, 1, 0}})

	c := newCollector(t, lag.Options{DB: db, Kafka: as(kafkaclient.PrincipalReconciler)})
	waitSeries(t, c, "outboxpay_consumer_group_lag", map[string]float64{
		`outboxpay_consumer_group_lag{group="stock",partition="0",topic="outbox.event.order"}`: 1,
		`outboxpay_consumer_group_lag{group="stock",partition="1",topic="outbox.event.order"}`: 0,
		`outboxpay_consumer_group_lag{group="stock",partition="2",topic="outbox.event.order"}`: 0,
	})
}

func TestOutboxRows(t *testing.T) {
	t.Parallel()
	kc := kafkaclustertest.Start(t, kafkacluster.Options{})
	db, _ := pgtest.NewDB(t)
	c := newCollector(t, lag.Options{DB: db, Kafka: kafkaclient.Config{Bootstrap: kc.Bootstrap()}})

	const rowsHelp = "# HELP outboxpay_outbox_rows Outbox rows by status.\n# TYPE outboxpay_outbox_rows gauge\n"
	const ageHelp = "# HELP outboxpay_outbox_oldest_unfinished_age_seconds Age of the oldest outbox row that is INIT, PUBLISHED or FAILED (not COMPLETE, nor set aside by an operator: PARKED, DISCARDED); 0 when there is none.\n" +
		"# TYPE outboxpay_outbox_oldest_unfinished_age_seconds gauge\n"

	// An empty outbox: every status at 0, no age.
	if err := testutil.CollectAndCompare(c, strings.NewReader(rowsHelp+`
outboxpay_outbox_rows{status="COMPLETE"} 0
outboxpay_outbox_rows{status="DISCARDED"} 0
outboxpay_outbox_rows{status="FAILED"} 0
outboxpay_outbox_rows{status="INIT"} 0
outboxpay_outbox_rows{status="PARKED"} 0
outboxpay_outbox_rows{status="PUBLISHED"} 0
`+ageHelp+`outboxpay_outbox_oldest_unfinished_age_seconds 0
`), "outboxpay_outbox_rows", "outboxpay_outbox_oldest_unfinished_age_seconds"); err != nil {
		t.Fatal(err)
	}

	for _, r := range []struct {
		status string
		age    string
	}{
		{"INIT", "1 hour"},
		{"INIT", "10 minutes"},
		{"PUBLISHED", "30 minutes"},
		{"FAILED", "90 minutes"}, // the oldest unfinished row
		{"COMPLETE", "2 hours"},  // older, but finished
		{"COMPLETE", "3 hours"},
		{"COMPLETE", "1 minute"},
		{"PARKED", "4 hours"},    // older, but set aside by an operator
		{"DISCARDED", "5 hours"}, // older, but given up on by an operator
	} {
		insertOutboxRow(t, db, r.status, r.age)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(rowsHelp+`
outboxpay_outbox_rows{status="COMPLETE"} 3
outboxpay_outbox_rows{status="DISCARDED"} 1
outboxpay_outbox_rows{status="FAILED"} 1
outboxpay_outbox_rows{status="INIT"} 2
outboxpay_outbox_rows{status="PARKED"} 1
outboxpay_outbox_rows{status="PUBLISHED"} 1
`), "outboxpay_outbox_rows"); err != nil {
		t.Fatal(err)
	}
	age := gather(t, c)["outboxpay_outbox_oldest_unfinished_age_seconds"]
	if age < 5400 || age > 5400+60 {
		t.Errorf("oldest unfinished age = %vs, want 5400s (90 minutes) and a few seconds", age)
	}

	// Once everything is COMPLETE, no row is unfinished.
	if _, err := db.ExecContext(t.Context(), `UPDATE outbox SET status = 'COMPLETE'`); err != nil {
		t.Fatal(err)
	}
	got := gather(t, c)
	if age := got["outboxpay_outbox_oldest_unfinished_age_seconds"]; age != 0 {
		t.Errorf("oldest unfinished age with every row COMPLETE = %v, want 0", age)
	}
	if n := got[`outboxpay_outbox_rows{status="COMPLETE"}`]; n != 9 {
		t.Errorf("COMPLETE rows = %v, want 9", n)
	}
}

func TestReplicationSlots(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	kc := kafkaclustertest.Start(t, kafkacluster.Options{})
	db, url := pgtest.NewDB(t)
	slot := createSlot(t, db, "lag_test")

	// A slot of another database is not this database's business.
	otherDB, _ := pgtest.NewDB(t)
	createSlot(t, otherDB, "lag_other")

	// The exporter reads as the worker role, which sees the slots too.
	worker, _ := pgtest.AsRole(t, url, migrations.RoleWorker)
	c := newCollector(t, lag.Options{DB: worker, Kafka: kafkaclient.Config{Bootstrap: kc.Bootstrap()}})
	lagSeries := fmt.Sprintf(`outboxpay_replication_slot_lag_bytes{slot=%q}`, slot)
	activeSeries := fmt.Sprintf(`outboxpay_replication_slot_active{slot=%q}`, slot)

	// Write 200 kB of WAL the slot has not confirmed. The server writes
	// WAL of its own meanwhile, so the reported lag is bracketed by the
	// slot's lag measured just before and just after the scrape.
	const written = 200_000
	if _, err := db.ExecContext(ctx, `SELECT pg_logical_emit_message(false, 'lag-test', repeat('x', $1))`, written); err != nil {
		t.Fatalf("write WAL: %v", err)
	}
	before := slotLag(t, db, slot)
	got := gather(t, c)
	after := slotLag(t, db, slot)
	if before < written {
		t.Fatalf("slot lag before the scrape = %v, want at least the %d bytes written", before, written)
	}
	if v := got[lagSeries]; v < before || v > after {
		t.Errorf("%s = %v, want between %v and %v", lagSeries, v, before, after)
	}
	if v, ok := got[activeSeries]; !ok || v != 0 {
		t.Errorf("%s = %v (present %v), want 0", activeSeries, v, ok)
	}
	if n := len(filter(got, "outboxpay_replication_slot_")); n != 2 {
		t.Errorf("replication slot series = %v, want only the 2 of slot %s", filter(got, "outboxpay_replication_slot_"), slot)
	}

	// A client streaming from the slot makes it active.
	conn, err := pgconn.Connect(ctx, url+"&replication=database")
	if err != nil {
		t.Fatalf("replication connection: %v", err)
	}
	t.Cleanup(func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx) // already closed when the test gets to its end
	})
	err = pglogrepl.StartReplication(ctx, conn, slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'outbox_publication'"},
	})
	if err != nil {
		t.Fatalf("start replication: %v", err)
	}
	waitSeries(t, c, "outboxpay_replication_slot_active", map[string]float64{activeSeries: 1})

	// The client confirms everything written so far, as a CDC engine does
	// once Kafka has the records: the slot's confirmed position reaches
	// the WAL's current end.
	var current string
	if err := db.QueryRowContext(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&current); err != nil {
		t.Fatal(err)
	}
	target, err := pglogrepl.ParseLSN(current)
	if err != nil {
		t.Fatal(err)
	}
	if err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: target}); err != nil {
		t.Fatalf("confirm %s: %v", target, err)
	}
	eventually.True(t, waitTimeout, "slot confirmed", func() (bool, error) {
		var confirmed bool
		err := db.QueryRowContext(ctx, `
SELECT pg_wal_lsn_diff(confirmed_flush_lsn, $2::pg_lsn) >= 0 FROM pg_replication_slots WHERE slot_name = $1`,
			slot, current).Scan(&confirmed)
		return confirmed, err
	})
	before = slotLag(t, db, slot)
	got = gather(t, c)
	after = slotLag(t, db, slot)
	// Other tests' CREATE DATABASE can write megabytes of WAL meanwhile, so
	// only the bracket is exact.
	if v := got[lagSeries]; v < before || v > after {
		t.Errorf("%s after confirming = %v, want between %v and %v", lagSeries, v, before, after)
	}

	// The client goes away: the slot is inactive again.
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.Close(closeCtx); err != nil {
		t.Fatalf("close replication connection: %v", err)
	}
	waitSeries(t, c, "outboxpay_replication_slot_active", map[string]float64{activeSeries: 0})
}

func TestKafkaUnreachable(t *testing.T) {
	t.Parallel()
	kc := kafkaclustertest.Start(t, kafkacluster.Options{})
	db, _ := pgtest.NewDB(t)
	insertOutboxRow(t, db, "INIT", "5 minutes")
	produce(t, kc.Bootstrap(), map[string][]int{orderTopic: {1, 1, 1}})

	// Postgres is queried within the same deadline, which Kafka uses up.
	const timeout = 3 * time.Second
	c := newCollector(t, lag.Options{DB: db, Kafka: kafkaclient.Config{Bootstrap: kc.Bootstrap()}, Timeout: timeout})
	waitSeries(t, c, "outboxpay_topic_high_watermark", map[string]float64{
		`outboxpay_topic_high_watermark{partition="0",topic="outbox.event.order"}`: 1,
		`outboxpay_topic_high_watermark{partition="1",topic="outbox.event.order"}`: 1,
		`outboxpay_topic_high_watermark{partition="2",topic="outbox.event.order"}`: 1,
	})
	errorsBefore := gather(t, c)[`outboxpay_lag_exporter_errors_total{source="kafka"}`]

	if err := kc.SetOffline(true); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got := gather(t, c)
	took := time.Since(start)
	if took > timeout+10*time.Second {
		t.Errorf("scrape with Kafka down took %v, want about the %v timeout", took, timeout)
	}
	if v := got["outboxpay_lag_exporter_scrape_seconds"]; v <= 0 || v > took.Seconds() {
		t.Errorf("scrape_seconds = %v, want in (0, %v]", v, took.Seconds())
	}
	if v := got[`outboxpay_lag_exporter_errors_total{source="kafka"}`]; v != errorsBefore+1 {
		t.Errorf("kafka errors = %v, want %v", v, errorsBefore+1)
	}
	if v := got[`outboxpay_lag_exporter_errors_total{source="postgres"}`]; v != 0 {
		t.Errorf("postgres errors = %v, want 0", v)
	}
	if v, ok := got[`outboxpay_outbox_rows{status="INIT"}`]; !ok || v != 1 {
		t.Errorf("outbox INIT rows with Kafka down = %v (present %v), want 1", v, ok)
	}
	if _, ok := got["outboxpay_outbox_oldest_unfinished_age_seconds"]; !ok {
		t.Error("oldest unfinished age missing with Kafka down")
	}

	// Back online: the same client recovers.
	if err := kc.SetOffline(false); err != nil {
		t.Fatal(err)
	}
	waitSeries(t, c, "outboxpay_topic_high_watermark", map[string]float64{
		`outboxpay_topic_high_watermark{partition="0",topic="outbox.event.order"}`: 1,
		`outboxpay_topic_high_watermark{partition="1",topic="outbox.event.order"}`: 1,
		`outboxpay_topic_high_watermark{partition="2",topic="outbox.event.order"}`: 1,
	})
}

func TestPostgresUnreachable(t *testing.T) {
	t.Parallel()
	kc := kafkaclustertest.Start(t, kafkacluster.Options{})
	_, url := pgtest.NewDB(t)
	produce(t, kc.Bootstrap(), map[string][]int{orderTopic: {2, 0, 0}})

	bad, err := sql.Open("postgres", strings.Replace(url, "/test_", "/no_such_db_", 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bad.Close() })
	c := newCollector(t, lag.Options{DB: bad, Kafka: kafkaclient.Config{Bootstrap: kc.Bootstrap()}})
	waitSeries(t, c, "outboxpay_topic_high_watermark", map[string]float64{
		`outboxpay_topic_high_watermark{partition="0",topic="outbox.event.order"}`: 2,
		`outboxpay_topic_high_watermark{partition="1",topic="outbox.event.order"}`: 0,
		`outboxpay_topic_high_watermark{partition="2",topic="outbox.event.order"}`: 0,
	})
	got := gather(t, c)
	if v := got[`outboxpay_lag_exporter_errors_total{source="postgres"}`]; v < 2 {
		t.Errorf("postgres errors after at least 2 scrapes = %v, want at least 2", v)
	}
	if v := got[`outboxpay_lag_exporter_errors_total{source="kafka"}`]; v != 0 {
		t.Errorf("kafka errors = %v, want 0", v)
	}
	if s := filter(got, "outboxpay_outbox_"); len(s) > 0 {
		t.Errorf("outbox series without a database: %v", s)
	}
}

func TestNewAndClose(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("postgres", "postgres://127.0.0.1:1/none?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, opts := range map[string]lag.Options{
		"no db":            {Kafka: kafkaclient.Config{Bootstrap: "127.0.0.1:9092"}},
		"no bootstrap":     {DB: db},
		"negative timeout": {DB: db, Kafka: kafkaclient.Config{Bootstrap: "127.0.0.1:9092"}, Timeout: -time.Second},
	} {
		if _, err := lag.New(opts); err == nil {
			t.Errorf("%s: New succeeded, want an error", name)
		}
	}

	c, err := lag.New(lag.Options{DB: db, Kafka: kafkaclient.Config{Bootstrap: "127.0.0.1:1"}, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Close() // a second Close does nothing
	got := gather(t, c)
	if v := got[`outboxpay_lag_exporter_errors_total{source="kafka"}`]; v != 1 {
		t.Errorf("kafka errors after Close = %v, want 1", v)
	}
}

// newCollector creates a collector that logs to the test and is closed
// when the test ends.
func newCollector(t *testing.T, opts lag.Options) *lag.Collector {
	t.Helper()
	opts.Logger = logtest.T(t, slog.LevelInfo)
	c, err := lag.New(opts)
	if err != nil {
		t.Fatalf("new collector: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// produce writes counts[topic][partition] records to each partition and
// waits until Kafka has acknowledged them all.
func produce(t *testing.T, bootstrap string, counts map[string][]int) {
	t.Helper()
	produceAs(t, kafkaclient.Config{Bootstrap: bootstrap}, counts)
}

// produceAs is produce as kc's principal.
func produceAs(t *testing.T, kc kafkaclient.Config, counts map[string][]int) {
	t.Helper()
	cm := kc.ConfigMap()
	for k, v := range (kafka.ConfigMap{"acks": "all", "enable.metrics.push": false, "log.connection.close": false}) {
		cm[k] = v
	}
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	defer p.Close()
	reports := make(chan kafka.Event, 100)
	sent := 0
	for topic, perPartition := range counts {
		for partition, n := range perPartition {
			for i := range n {
				err := p.Produce(&kafka.Message{
					TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: int32(partition)},
					Key:            fmt.Appendf(nil, "%d", i),
					Value:          []byte(`{}`),
				}, reports)
				if err != nil {
					t.Fatalf("produce to %s[%d]: %v", topic, partition, err)
				}
				sent++
			}
		}
	}
	deadline := time.After(waitTimeout)
	for range sent {
		select {
		case ev := <-reports:
			if m, ok := ev.(*kafka.Message); !ok || m.TopicPartition.Error != nil {
				t.Fatalf("delivery: %v", ev)
			}
		case <-deadline:
			t.Fatalf("produce: no delivery report within %v", waitTimeout)
		}
	}
}

// deleteRecordsBefore moves a partition's low watermark to offset.
func deleteRecordsBefore(t *testing.T, bootstrap, topic string, partition int32, offset int64) {
	t.Helper()
	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "enable.metrics.push": false})
	if err != nil {
		t.Fatalf("new admin client: %v", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	res, err := admin.DeleteRecords(ctx, []kafka.TopicPartition{{Topic: &topic, Partition: partition, Offset: kafka.Offset(offset)}})
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}
	for _, r := range res.DeleteRecordsResults {
		if r.TopicPartition.Error != nil {
			t.Fatalf("delete records of %v: %v", r.TopicPartition, r.TopicPartition.Error)
		}
	}
}

// readN reads n records.
func readN(t *testing.T, c *kafka.Consumer, n int) []*kafka.Message {
	t.Helper()
	var got []*kafka.Message
	deadline := time.Now().Add(waitTimeout)
	for len(got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d records within %v", len(got), n, waitTimeout)
		}
		m, err := c.ReadMessage(100 * time.Millisecond)
		if err != nil {
			if kerr, ok := err.(kafka.Error); ok && kerr.IsTimeout() {
				continue
			}
			t.Fatalf("read: %v", err)
		}
		got = append(got, m)
	}
	return got
}

// commitOffsets commits offsets[topic][partition] for the consumer's group
// without joining it.
func commitOffsets(t *testing.T, c *kafka.Consumer, offsets map[string][]int64) {
	t.Helper()
	var tps []kafka.TopicPartition
	for topic, perPartition := range offsets {
		for p, off := range perPartition {
			tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: int32(p), Offset: kafka.Offset(off)})
		}
	}
	res, err := c.CommitOffsets(tps)
	if err != nil {
		t.Fatalf("commit offsets: %v", err)
	}
	for _, tp := range res {
		if tp.Error != nil {
			t.Fatalf("commit %v: %v", tp, tp.Error)
		}
	}
}

// insertOutboxRow inserts an outbox row with the status, created age ago
// (a Postgres interval).
func insertOutboxRow(t *testing.T, db *sql.DB, status, age string) {
	t.Helper()
	_, err := db.ExecContext(t.Context(), `
INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, created_at, status)
VALUES (gen_random_uuid(), 'order', '1', 'OrderPaid', '{}', now() - $1::interval, $2)`, age, status)
	if err != nil {
		t.Fatalf("insert %s outbox row: %v", status, err)
	}
}

// createSlot creates a logical slot in db, named after prefix and the
// database (slots are cluster-wide, test databases are not), and drops it
// when the test ends, before the database is dropped.
func createSlot(t *testing.T, db *sql.DB, prefix string) string {
	t.Helper()
	var dbname string
	if err := db.QueryRowContext(t.Context(), `SELECT current_database()`).Scan(&dbname); err != nil {
		t.Fatal(err)
	}
	slot := prefix + "_" + dbname
	if _, err := db.ExecContext(t.Context(), `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot); err != nil {
		t.Fatalf("create slot %s: %v", slot, err)
	}
	t.Cleanup(func() {
		// A walsender may still be letting go of the slot.
		err := eventually.Wait(waitTimeout, func() (bool, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := db.ExecContext(ctx, `SELECT pg_drop_replication_slot($1)`, slot)
			return err == nil, err
		})
		if err != nil {
			t.Errorf("drop slot %s: %v", slot, err)
		}
	})
	return slot
}

// slotLag is the slot's lag in bytes as Postgres computes it now.
func slotLag(t *testing.T, db *sql.DB, slot string) float64 {
	t.Helper()
	var v float64
	err := db.QueryRowContext(t.Context(), `
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::float8
  FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&v)
	if err != nil {
		t.Fatalf("slot lag of %s: %v", slot, err)
	}
	return v
}

// gather scrapes the collector once, through a pedantic registry (which
// also checks that what it collects matches what it describes), and returns
// every series as `name{label="value",...}` -> value, labels sorted.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatalf("register: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			key := mf.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			out[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return out
}

// waitSeries waits until the series of the metric are exactly want.
func waitSeries(t *testing.T, c prometheus.Collector, metric string, want map[string]float64) {
	t.Helper()
	eventually.True(t, waitTimeout, metric, func() (bool, error) {
		got := filter(gather(t, c), metric+"{")
		if maps.Equal(got, want) {
			return true, nil
		}
		return false, fmt.Errorf("got\n%s\nwant\n%s", format(got), format(want))
	})
}

// filter returns the series whose key contains sub.
func filter(series map[string]float64, sub string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range series {
		if strings.Contains(k, sub) {
			out[k] = v
		}
	}
	return out
}

// sumSeries adds the series whose key starts with prefix and ends with
// suffix.
func sumSeries(series map[string]float64, prefix, suffix string) float64 {
	sum := 0.0
	for k, v := range series {
		if strings.HasPrefix(k, prefix) && strings.HasSuffix(k, suffix) {
			sum += v
		}
	}
	return sum
}

// format prints series one a line, sorted.
func format(series map[string]float64) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(series)) {
		fmt.Fprintf(&b, "  %s %v\n", k, series[k])
	}
	return b.String()
}
