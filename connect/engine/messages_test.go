package engine_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
)

// kgoReader reads a topic from its start with franz-go, a client other
// than the engine's.
type kgoReader struct {
	t   *testing.T
	cl  *kgo.Client
	got []*kgo.Record
}

func newKgoReader(t *testing.T, bootstrap, topic string) *kgoReader {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &kgoReader{t: t, cl: cl}
}

// wait reads until it has n records (or more), at most timeout.
func (r *kgoReader) wait(n int, timeout time.Duration) []*kgo.Record {
	r.t.Helper()
	eventually.True(r.t, timeout, fmt.Sprintf("%d records", n), func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		fs := r.cl.PollFetches(ctx)
		fs.EachRecord(func(rec *kgo.Record) { r.got = append(r.got, rec) })
		return len(r.got) >= n, nil
	})
	return r.got
}

// millis parses a decimal number of a record, failing the test if it is not one.
func millis(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// With heartbeat.interval.ms set, a heartbeat record appears on
// __debezium-heartbeat.<topic.prefix> every interval while no change
// flows, exactly as Debezium's HeartbeatImpl and the StringConverter write
// it: partition 0, key Struct{serverName=outboxpay}, value
// Struct{ts_ms=<epoch millis>}, no headers.
func TestHeartbeatRecords(t *testing.T) {
	const interval = 300 * time.Millisecond
	r := newRig(t, map[string]string{"heartbeat.interval.ms": strconv.Itoa(int(interval.Milliseconds()))})
	start := time.Now().UnixMilli()
	r.start(nil)
	recs := newKgoReader(t, r.kafka.Bootstrap(), "__debezium-heartbeat.outboxpay").wait(4, time.Minute)
	end := time.Now().UnixMilli()

	value := regexp.MustCompile(`^Struct\{ts_ms=([0-9]+)\}$`)
	var prev int64
	for i, rec := range recs {
		if string(rec.Key) != "Struct{serverName=outboxpay}" || rec.Partition != 0 || len(rec.Headers) != 0 {
			t.Errorf("heartbeat %d: key %q, partition %d, headers %v", i, rec.Key, rec.Partition, rec.Headers)
		}
		// No timestamp of its own: the producer stamps it.
		if ms := rec.Timestamp.UnixMilli(); ms < start || ms > end {
			t.Errorf("heartbeat %d: timestamp %v outside the test", i, rec.Timestamp)
		}
		m := value.FindSubmatch(rec.Value)
		if m == nil {
			t.Fatalf("heartbeat %d: value %q", i, rec.Value)
		}
		ts := millis(t, string(m[1]))
		if ts < start || ts > end {
			t.Errorf("heartbeat %d: ts_ms %d outside the test's [%d, %d]", i, ts, start, end)
		}
		if i > 0 && (ts-prev < interval.Milliseconds() || ts-prev > interval.Milliseconds()+5000) {
			t.Errorf("heartbeat %d: %d ms after the previous one, want every %v", i, ts-prev, interval)
		}
		prev = ts
	}
}

// A logical decoding message whose prefix message.prefix.exclude.list does
// not exclude appears on <topic.prefix>.message as Debezium's
// LogicalDecodingMessageMonitor and the StringConverter write it (the
// Outbox Event Router passes it through); the excluded ones (the
// heartbeat's prefix) do not.
func TestMessageRecords(t *testing.T) {
	// No heartbeat.action.query: its messages would come between the test's.
	r := newRig(t, map[string]string{"message.prefix.exclude.list": "heartbeat,quiet.*",
		"heartbeat.interval.ms": "0", "heartbeat.action.query": ""})
	started := time.Now()
	r.start(nil)
	before := time.Now()
	for _, prefix := range []string{"heartbeat", "quiet.one"} {
		if _, err := r.db.Exec(`SELECT pg_logical_emit_message(false, $1, now()::text)`, prefix); err != nil {
			t.Fatal(err)
		}
	}
	var auditEnd string
	if err := r.db.QueryRow(`SELECT pg_logical_emit_message(false, 'audit', 'héllo')::text`).Scan(&auditEnd); err != nil {
		t.Fatal(err)
	}
	// A transactional message, with an outbox event in its transaction.
	tx, err := r.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var xid int64
	var txEnd string
	if err := tx.QueryRow(`SELECT txid_current()`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(`SELECT pg_logical_emit_message(true, 'audit.tx', '')::text`).Scan(&txEnd); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (gen_random_uuid(), 'order', '1', 'TestEvent', '{}')`); err != nil {
		t.Fatal(err)
	}
	beforeCommit := time.Now()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	afterCommit := time.Now()

	recs := newKgoReader(t, r.kafka.Bootstrap(), "outboxpay.message").wait(2, time.Minute)
	after := time.Now()
	// Once the slot is confirmed past the transaction, Kafka has every
	// record the engine wrote before it: the two, and none of the excluded.
	var lsnAfter string
	if err := r.db.QueryRow(`SELECT pg_current_wal_lsn()::text`).Scan(&lsnAfter); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, time.Minute, "slot confirmed past the messages", func() (bool, error) {
		var ok bool
		err := r.db.QueryRow(`SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1`, r.slot, lsnAfter).Scan(&ok)
		return ok, err
	})
	if n, err := kafkatest.Count(r.kafka.Bootstrap(), []string{"outboxpay.message"}); err != nil || n != 2 {
		t.Fatalf("outboxpay.message holds %d records (%v), want 2", n, err)
	}

	lsn := func(s string) int64 {
		l, err := pglogrepl.ParseLSN(s)
		if err != nil {
			t.Fatal(err)
		}
		return int64(l)
	}
	within := func(what string, v, lo, hi int64) {
		if v < lo || v > hi {
			t.Errorf("%s = %d, outside [%d, %d]", what, v, lo, hi)
		}
	}
	db := r.raw["database.dbname"]
	// Everything but the numbers is literal: the times and positions are
	// checked against what the test knows of them below.
	value := func(prefix, txID, size string) *regexp.Regexp {
		return regexp.MustCompile(`^Struct\{op=m,ts_ms=([0-9]+),source=Struct\{version=3\.0\.8\.Final,connector=postgresql,name=outboxpay,` +
			`ts_ms=([0-9]+),db=` + regexp.QuoteMeta(db) + `,sequence=\["([0-9]+)","([0-9]+)"\],ts_us=([0-9]+),ts_ns=([0-9]+),schema=,table=,` +
			txID + `lsn=([0-9]+)\},message=Struct\{prefix=` + regexp.QuoteMeta(prefix) +
			`,content=java\.nio\.HeapByteBuffer\[pos=0 lim=` + size + ` cap=` + size + `\]\}\}$`)
	}
	byKey := map[string]*kgo.Record{}
	for _, rec := range recs {
		byKey[string(rec.Key)] = rec
		if len(rec.Headers) != 0 {
			t.Errorf("record %q has headers %v", rec.Key, rec.Headers)
		}
	}
	check := func(key string, re *regexp.Regexp, at string, srcLo, srcHi time.Time) (lastCommit int64) {
		t.Helper()
		rec := byKey[key]
		if rec == nil {
			t.Fatalf("no record with key %s among %d", key, len(recs))
		}
		m := re.FindStringSubmatch(string(rec.Value))
		if m == nil {
			t.Fatalf("value of %s:\n%s\ndoes not match\n%s", key, rec.Value, re)
		}
		within("ts_ms", millis(t, m[1]), before.UnixMilli(), after.UnixMilli())
		srcMs, us, ns := millis(t, m[2]), millis(t, m[5]), millis(t, m[6])
		within("source.ts_ms", srcMs, srcLo.UnixMilli(), srcHi.UnixMilli())
		if us/1000 != srcMs || ns != us*1000 {
			t.Errorf("source ts_ms %d, ts_us %d, ts_ns %d disagree", srcMs, us, ns)
		}
		// The message's position is the end of its WAL record, which
		// pg_logical_emit_message returns.
		if want := lsn(at); millis(t, m[4]) != want || millis(t, m[7]) != want {
			t.Errorf("%s: sequence's second %s, lsn %s, want %d (%s)", key, m[4], m[7], want, at)
		}
		return millis(t, m[3])
	}
	// Non-transactional: its own commit; its source time is the last
	// transaction's (here: none in the session, so the session's start,
	// which may come after the slot exists and the message was written).
	if lastCommit := check("Struct{prefix=audit}", value("audit", "", "6"), auditEnd, started, after); lastCommit != lsn(auditEnd) {
		t.Errorf("audit: sequence starts with %d, want its own LSN", lastCommit)
	}
	// Transactional: its transaction's id and commit time; the last commit
	// is the audit message's.
	if lastCommit := check("Struct{prefix=audit.tx}", value("audit.tx", "txId="+strconv.FormatInt(xid, 10)+",", "0"), txEnd, beforeCommit, afterCommit); lastCommit != lsn(auditEnd) {
		t.Errorf("audit.tx: sequence starts with %d, want the audit message's %d", lastCommit, lsn(auditEnd))
	}
}
