package consume_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"slices"
	"testing"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/consumers/consume/consumetest"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/outbox"
	"github.com/outboxpay/outboxpay/migrations"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// Inbox applies an event's effect once, in the transaction that claims it
// and marks its row handled; whatever fails changes nothing: no claim, no
// mark, none of the effect's writes.
func TestInbox(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	worker, _ := pgtest.AsRole(t, dbURL, migrations.RoleWorker) // the consumers' role
	ctx := context.Background()
	errDown := errors.New("platform down")
	for i, tc := range []struct {
		name string
		// rec returns the record of row (inserted unless noRow).
		rec    func(row event.Message) consume.Record
		noRow  bool
		effect error // what the effect returns
		want   func(error) bool
		// applied: the effect's write and the claim remain, the row is COMPLETE.
		applied bool
	}{
		{name: "matching record", rec: consumetest.Record, want: isNil, applied: true},
		{name: "row not visible (yet): retried while recent, nothing claimed", rec: consumetest.Record, noRow: true,
			want: func(err error) bool {
				return errors.Is(err, consume.ErrNotYet) && errors.Is(err, outbox.ErrNotFound) && !consume.IsPermanent(err)
			}},
		{name: "record not matching its row", want: isMismatch, rec: func(row event.Message) consume.Record {
			r := consumetest.Record(row)
			r.Key = []byte("999")
			return r
		}},
		{name: "no id header", want: consume.IsPermanent, rec: func(row event.Message) consume.Record {
			r := consumetest.Record(row)
			r.Headers = r.Headers[1:]
			return r
		}},
		{name: "effect fails", rec: consumetest.Record, effect: errDown,
			want: func(err error) bool { return errors.Is(err, errDown) && !consume.IsPermanent(err) }},
		{name: "effect fails permanently", rec: consumetest.Record, effect: backoff.Permanent(errDown),
			want: func(err error) bool { return errors.Is(err, errDown) && consume.IsPermanent(err) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			row := consumetest.OrderPaid(t, int64(100+i), 1)
			if !tc.noRow {
				consumetest.Insert(t, db, row)
			}
			var detail int64
			if err := db.QueryRow(`WITH p AS (INSERT INTO products (name) VALUES ('p') RETURNING id)
				INSERT INTO product_details (product_id, option, price, stock) SELECT id, 'o', 1, 0 FROM p RETURNING id`).Scan(&detail); err != nil {
				t.Fatal(err)
			}
			calls := 0
			h := consume.Inbox(worker, event.GroupStock, func(ctx context.Context, tx *sql.Tx, rows []event.Message) error {
				calls++
				if len(rows) != 1 {
					t.Fatalf("effect got %d rows, want 1", len(rows))
				}
				got := rows[0]
				if got.ID != row.ID || got.Type != row.Type || got.AggregateID != row.AggregateID {
					t.Errorf("effect got %+v, want the row %+v", got, row)
				}
				if _, err := tx.ExecContext(ctx, `UPDATE product_details SET stock = stock + 1 WHERE id = $1`, detail); err != nil {
					return err
				}
				return tc.effect
			}, consume.NewMetrics(reg))
			if err := h.Handle(ctx, tc.rec(row)); !tc.want(err) {
				t.Fatalf("Handle: %v", err)
			}
			var stock int
			if err := db.QueryRow(`SELECT stock FROM product_details WHERE id = $1`, detail).Scan(&stock); err != nil {
				t.Fatal(err)
			}
			if claimed := consumetest.Claimed(t, db, event.GroupStock, row.ID); claimed != tc.applied || (stock == 1) != tc.applied {
				t.Fatalf("claimed %v, effect's write kept %v; want %v", claimed, stock == 1, tc.applied)
			}
			if completions(t, reg) != map[bool]uint64{true: 1}[tc.applied] {
				t.Errorf("completions observed: %d", completions(t, reg))
			}
			if tc.noRow {
				return
			}
			want := outbox.StatusInit
			if tc.applied {
				want = outbox.StatusComplete
			}
			if st := consumetest.Status(t, db, row.ID); st != want {
				t.Fatalf("row %s, want %s", st, want)
			}
			if !tc.applied {
				return
			}
			// Redelivered: a duplicate, applied no more; also once retention deleted the row.
			if err := h.Handle(ctx, tc.rec(row)); !errors.Is(err, consume.ErrDuplicate) || calls != 1 {
				t.Fatalf("redelivery: %v, effect called %d times; want ErrDuplicate, once", err, calls)
			}
			if _, err := db.Exec(`DELETE FROM outbox WHERE id = $1`, row.ID); err != nil {
				t.Fatal(err)
			}
			if err := h.Handle(ctx, tc.rec(row)); !errors.Is(err, consume.ErrDuplicate) || calls != 1 {
				t.Fatalf("redelivery after retention: %v, effect called %d times; want ErrDuplicate, once", err, calls)
			}
		})
	}
}

func isNil(err error) bool { return err == nil }

func isMismatch(err error) bool {
	return errors.Is(err, consume.ErrMismatch) && consume.IsPermanent(err)
}

// completions is how many completions reg's commit-to-complete histogram
// holds, of every type.
func completions(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == "outboxpay_outbox_commit_to_complete_seconds" {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

// OnlyTypes hands on the records of its types and skips the others.
func TestOnlyTypes(t *testing.T) {
	called := 0
	h := consume.Chain(func(_ context.Context, recs []consume.Record) error { called += len(recs); return nil },
		consume.OnlyTypes(event.TypePaymentCompleted, event.TypePaymentRefunded))
	for _, tc := range []struct {
		typ  string
		want error
	}{
		{event.TypePaymentCompleted, nil},
		{event.TypePaymentRefunded, nil},
		{event.TypeOrderPaid, consume.ErrSkipped},
		{"", consume.ErrSkipped},
	} {
		row := consumetest.OrderPaid(t, 1, 1)
		row.Type = tc.typ
		if err := h.Handle(context.Background(), consumetest.Record(row)); !errors.Is(err, tc.want) {
			t.Errorf("%q: %v, want %v", tc.typ, err, tc.want)
		}
	}
	if called != 2 {
		t.Errorf("handler called %d times, want 2", called)
	}
}

// Chain puts the first middleware outermost.
func TestChain(t *testing.T) {
	var order []string
	mw := func(name string) consume.Middleware {
		return func(next consume.BatchFunc) consume.BatchFunc {
			return func(ctx context.Context, recs []consume.Record) error {
				order = append(order, name)
				return next(ctx, recs)
			}
		}
	}
	h := consume.Chain(func(context.Context, []consume.Record) error { order = append(order, "handler"); return nil },
		mw("outer"), mw("inner"))
	if err := h.Handle(context.Background(), consume.Record{}); err != nil || len(order) != 3 ||
		order[0] != "outer" || order[1] != "inner" || order[2] != "handler" {
		t.Fatalf("%v, %v", order, err)
	}
}

// Inbox handles a batch in one transaction: the effect gets the rows
// claimed now, in offset order, once each (an event handled before, one
// whose row retention deleted, a repeat within the batch get nothing); the
// batch redelivered applies nothing; a record not matching its row, or a
// row not visible, fails the whole batch and claims nothing.
func TestInboxBatch(t *testing.T) {
	db, dbURL := pgtest.NewDB(t)
	worker, _ := pgtest.AsRole(t, dbURL, migrations.RoleWorker)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	var got [][]event.Message
	h := consume.Inbox(worker, event.GroupStock, func(_ context.Context, _ *sql.Tx, rows []event.Message) error {
		got = append(got, rows)
		return nil
	}, consume.NewMetrics(reg))
	rows := make([]event.Message, 8)
	recs := make([]consume.Record, len(rows))
	for i := range rows {
		rows[i] = consumetest.OrderPaid(t, int64(200+i), 1)
		recs[i] = consumetest.Record(rows[i])
		consumetest.Insert(t, db, rows[i])
	}
	// 0 handled before; 1 handled before, its row since deleted.
	for _, i := range []int{0, 1} {
		if err := h.Handle(ctx, recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`DELETE FROM outbox WHERE id = $1`, rows[1].ID); err != nil {
		t.Fatal(err)
	}
	got = nil

	batch := []consume.Record{recs[3], recs[0], recs[2], recs[1], recs[3], recs[4]}
	if err := h.HandleBatch(ctx, batch); err != nil {
		t.Fatalf("HandleBatch: %v", err)
	}
	if len(got) != 1 || len(got[0]) != 3 || got[0][0].ID != rows[3].ID || got[0][1].ID != rows[2].ID || got[0][2].ID != rows[4].ID {
		t.Fatalf("effect got %v, want one call with rows 3, 2, 4", ids(got))
	}
	for _, i := range []int{2, 3, 4} {
		if st := consumetest.Status(t, db, rows[i].ID); st != outbox.StatusComplete {
			t.Fatalf("row %d %s, want COMPLETE", i, st)
		}
	}
	if n := completions(t, reg); n != 5 { // 0 and 1 before, then 2, 3, 4
		t.Errorf("completions observed: %d, want 5", n)
	}
	if err := h.HandleBatch(ctx, batch); !errors.Is(err, consume.ErrDuplicate) || len(got) != 1 {
		t.Fatalf("redelivered batch: %v, effect called %d times; want ErrDuplicate, once", err, len(got))
	}

	forged := consumetest.Record(rows[6])
	forged.Key = []byte("999")
	unknown := consumetest.OrderPaid(t, 299, 1) // no row
	for _, tc := range []struct {
		name  string
		batch []consume.Record
		want  func(error) bool
	}{
		{"a record not matching its row", []consume.Record{recs[5], forged, recs[7]}, isMismatch},
		{"a row not visible", []consume.Record{recs[5], consumetest.Record(unknown), recs[7]}, func(err error) bool {
			return errors.Is(err, consume.ErrNotYet) && errors.Is(err, outbox.ErrNotFound) && !consume.IsPermanent(err)
		}},
	} {
		if err := h.HandleBatch(ctx, tc.batch); !tc.want(err) {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, i := range []int{5, 6, 7} {
			if consumetest.Claimed(t, db, event.GroupStock, rows[i].ID) || consumetest.Status(t, db, rows[i].ID) != outbox.StatusInit {
				t.Fatalf("%s: row %d claimed or marked", tc.name, i)
			}
		}
	}
	if len(got) != 1 {
		t.Fatalf("effect called %d times, want once", len(got))
	}
}

func ids(calls [][]event.Message) [][]string {
	out := make([][]string, len(calls))
	for i, rows := range calls {
		for _, r := range rows {
			out[i] = append(out[i], r.AggregateID)
		}
	}
	return out
}

// OnlyTypes hands on a batch's records of its types, in order, and leaves
// the others out.
func TestOnlyTypesBatch(t *testing.T) {
	var got []string
	h := consume.Chain(func(_ context.Context, recs []consume.Record) error {
		for _, r := range recs {
			got = append(got, string(r.Key))
		}
		return nil
	}, consume.OnlyTypes(event.TypeOrderPaid))
	var batch []consume.Record
	for i, typ := range []string{event.TypeOrderPaid, event.TypePaymentCompleted, event.TypeOrderPaid, "", event.TypeOrderPaid} {
		row := consumetest.OrderPaid(t, int64(i), 1)
		row.Type = typ
		batch = append(batch, consumetest.Record(row))
	}
	if err := h.HandleBatch(context.Background(), batch); err != nil || !slices.Equal(got, []string{"0", "2", "4"}) {
		t.Fatalf("%v, handed on %v; want 0 2 4", err, got)
	}
	if err := h.HandleBatch(context.Background(), batch[1:2]); !errors.Is(err, consume.ErrSkipped) {
		t.Fatalf("a batch of other types: %v, want ErrSkipped", err)
	}
}
