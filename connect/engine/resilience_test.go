package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
)

// writer commits outbox rows one per transaction in the background, retrying
// through outages, and remembers the ids whose commit it saw succeed.
type writer struct {
	r    *rig
	mu   sync.Mutex
	ids  []string
	stop chan struct{}
	done chan struct{}
}

func (r *rig) startWriter() *writer {
	w := &writer{r: r, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			id := uuid.NewString()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := r.db.ExecContext(ctx, `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
				VALUES ($1, 'order', $2, 'TestEvent', '{}')`, id, fmt.Sprint(i%10))
			cancel()
			if err == nil {
				w.mu.Lock()
				w.ids = append(w.ids, id)
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ids)
}

// waitFor waits until at least n more rows have been committed.
func (w *writer) waitFor(t *testing.T, n int) {
	t.Helper()
	target := w.count() + n
	eventually.True(t, time.Minute, fmt.Sprintf("%d rows committed", target), func() (bool, error) {
		return w.count() >= target, nil
	})
}

func (w *writer) finish() []string {
	close(w.stop)
	<-w.done
	return w.ids
}

// Streaming survives a Postgres restart: it resumes from the slot and every
// committed event reaches Kafka.
func TestSurvivesPostgresRestart(t *testing.T) {
	r := newRig(t, nil)
	r.start(nil)
	w := r.startWriter()
	w.waitFor(t, 200)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pgtest.Cluster(t).Restart(ctx); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, 200)
	ids := w.finish()
	_, dups := r.waitIDs([]string{"outbox.event.order"}, ids, time.Minute)
	t.Logf("%d events across a Postgres restart, %d delivered twice", len(ids), dups)
}

// Streaming survives Kafka being unreachable: nothing is confirmed past
// what Kafka acknowledged, and every event arrives once it is back.
func TestSurvivesKafkaOutage(t *testing.T) {
	r := newRig(t, nil)
	r.start(nil)
	w := r.startWriter()
	w.waitFor(t, 200)
	if err := r.kafka.SetOffline(true); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, 300) // written while Kafka is away
	if err := r.kafka.SetOffline(false); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, 200)
	ids := w.finish()
	_, dups := r.waitIDs([]string{"outbox.event.order"}, ids, time.Minute)
	t.Logf("%d events across a Kafka outage, %d delivered twice", len(ids), dups)
}

// With no outbox traffic and steady writes elsewhere in the database, the
// slot keeps up: heartbeats and keepalives let it confirm past WAL that
// carries no events, so it does not pin WAL.
func TestIdleOutboxDoesNotPinWAL(t *testing.T) {
	r := newRig(t, map[string]string{"heartbeat.interval.ms": "200"})
	r.start(nil)
	lag := func() (int64, error) {
		var n int64
		err := r.db.QueryRow(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
			FROM pg_replication_slots WHERE slot_name = $1`, r.slot).Scan(&n)
		return n, err
	}
	var before string
	if err := r.db.QueryRow(`SELECT pg_current_wal_lsn()::text`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		if _, err := r.db.Exec(`INSERT INTO users (name, balance) VALUES ($1, 0)`, fmt.Sprint("u", i)); err != nil {
			t.Fatal(err)
		}
	}
	var written int64
	if err := r.db.QueryRow(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint`, before).Scan(&written); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 30*time.Second, "slot confirmed past the other tables' WAL", func() (bool, error) {
		n, err := lag()
		return err == nil && n < 64<<10, err
	})
	n, _ := lag()
	t.Logf("%d bytes of WAL written elsewhere; slot lag now %d bytes", written, n)
}
