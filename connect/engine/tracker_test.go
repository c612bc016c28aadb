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
