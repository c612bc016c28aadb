package engine

import (
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// The slot is confirmed only over transactions that are committed and fully
// acknowledged, in commit order, whatever order Kafka acknowledges them in.
func TestTrackerConfirmsInCommitOrder(t *testing.T) {
	tr := newTracker(100)
	now := time.Now()
	a, b, c := tr.begin(now), tr.begin(now), tr.begin(now)
	steps := []struct {
		name string
		do   func()
		want pglogrepl.LSN
	}{
		{"nothing done", func() {}, 100},
		{"a produces two records", func() { tr.produced(a); tr.produced(a) }, 100},
		{"a commits with records unacknowledged", func() { tr.commit(a, 200) }, 100},
		{"b produces one, commits, is acknowledged first", func() { tr.produced(b); tr.commit(b, 300); tr.ack(b) }, 100},
		{"one of a's records acknowledged", func() { tr.ack(a) }, 100},
		{"a's last record acknowledged: a and b are done", func() { tr.ack(a) }, 300},
		{"c has no records but has not committed", func() {}, 300},
		{"a keepalive after c waits for c", func() { tr.add(500) }, 300},
		{"c commits empty", func() { tr.commit(c, 400) }, 500},
		{"an older keepalive does not move back", func() { tr.add(450) }, 500},
	}
	for _, s := range steps {
		s.do()
		if got, _ := tr.position(); got != s.want {
			t.Fatalf("%s: confirmed %s, want %s", s.name, got, s.want)
		}
	}
	if _, idle := tr.position(); !idle {
		t.Fatal("tracker not idle after everything was confirmed")
	}
}

// A heartbeat record confirms what was received before it, and only once
// Kafka has acknowledged it.
func TestTrackerHeartbeatConfirmsOnAck(t *testing.T) {
	tr := newTracker(100)
	open := tr.begin(time.Now())
	var hb *txn
	steps := []struct {
		name string
		do   func()
		want pglogrepl.LSN
	}{
		{"a keepalive", func() { tr.add(150) }, 100},
		{"the open transaction commits", func() { tr.commit(open, 200) }, 200},
		{"a heartbeat produced", func() { hb = tr.begin(time.Time{}); tr.produced(hb); tr.commitAtLast(hb) }, 200},
		{"a keepalive after it waits for it", func() { tr.add(300) }, 200},
		{"the heartbeat acknowledged", func() { tr.ack(hb) }, 300},
	}
	for _, s := range steps {
		s.do()
		if got, _ := tr.position(); got != s.want {
			t.Fatalf("%s: confirmed %s, want %s", s.name, got, s.want)
		}
	}
	if hb.end != 200 {
		t.Fatalf("heartbeat committed at %s, want the last position received before it, 200", hb.end)
	}
}
