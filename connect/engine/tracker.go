package engine

import (
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
)

// tracker decides how far the slot may be confirmed. Transactions are queued
// in commit order as they arrive; each counts its records that Kafka has not
// acknowledged yet. The confirmed position advances over the longest prefix
// of transactions that are committed and fully acknowledged, so a crash at
// any moment replays at most the unconfirmed tail and loses nothing.
type tracker struct {
	mu        sync.Mutex
	pending   []*txn // arrival (= commit) order; head is the oldest unconfirmed
	confirmed pglogrepl.LSN
	last      pglogrepl.LSN // the highest end queued so far
}

// txn is one transaction on its way to Kafka.
type txn struct {
	end        pglogrepl.LSN // end of its commit record; 0 until the commit is received
	remaining  int           // records produced and not yet acknowledged
	commitTime time.Time
}

func newTracker(confirmed pglogrepl.LSN) *tracker {
	return &tracker{confirmed: confirmed, last: confirmed}
}

// begin queues a transaction, committed at commitTime, whose records are
// about to arrive.
func (t *tracker) begin(commitTime time.Time) *txn {
	t.mu.Lock()
	defer t.mu.Unlock()
	x := &txn{commitTime: commitTime}
	t.pending = append(t.pending, x)
	return x
}

// produced counts one more record of x handed to Kafka.
func (t *tracker) produced(x *txn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	x.remaining++
}

// ack records that Kafka acknowledged one record of x.
func (t *tracker) ack(x *txn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	x.remaining--
	t.advance()
}

// commit records that all of x's records have been produced and that its
// commit record ends at end.
func (t *tracker) commit(x *txn, end pglogrepl.LSN) {
	t.mu.Lock()
	defer t.mu.Unlock()
	x.end = end
	t.last = max(t.last, end)
	t.advance()
}

// commitAtLast commits x at the highest position queued so far: a record
// that belongs to no transaction (a heartbeat) confirms what was received
// before it once Kafka has it, and nothing more.
func (t *tracker) commitAtLast(x *txn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	x.end = t.last
	t.advance()
}

// add queues a position with nothing to deliver before it (a keepalive's
// end of WAL, a heartbeat message): it is confirmed as soon as everything
// queued before it is.
func (t *tracker) add(end pglogrepl.LSN) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = append(t.pending, &txn{end: end})
	t.last = max(t.last, end)
	t.advance()
}

func (t *tracker) advance() {
	i := 0
	for ; i < len(t.pending) && t.pending[i].end != 0 && t.pending[i].remaining == 0; i++ {
		if t.pending[i].end > t.confirmed {
			t.confirmed = t.pending[i].end
		}
	}
	if i > 0 {
		clear(t.pending[:i])
		t.pending = t.pending[i:]
	}
}

// position returns the confirmable position and whether nothing is waiting
// for Kafka.
func (t *tracker) position() (confirmed pglogrepl.LSN, idle bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.confirmed, len(t.pending) == 0
}
