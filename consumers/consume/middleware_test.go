package consume_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
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
			h := consume.Inbox(worker, event.GroupStock, func(ctx context.Context, tx *sql.Tx, got event.Message) error {
				calls++
				if got.ID != row.ID || got.Type != row.Type || got.AggregateID != row.AggregateID {
					t.Errorf("effect got %+v, want the row %+v", got, row)
				}
				if _, err := tx.ExecContext(ctx, `UPDATE product_details SET stock = stock + 1 WHERE id = $1`, detail); err != nil {
					return err
				}
				return tc.effect
			}, consume.NewMetrics(reg))
			if err := h(ctx, tc.rec(row)); !tc.want(err) {
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
			if err := h(ctx, tc.rec(row)); !errors.Is(err, consume.ErrDuplicate) || calls != 1 {
				t.Fatalf("redelivery: %v, effect called %d times; want ErrDuplicate, once", err, calls)
			}
			if _, err := db.Exec(`DELETE FROM outbox WHERE id = $1`, row.ID); err != nil {
				t.Fatal(err)
			}
			if err := h(ctx, tc.rec(row)); !errors.Is(err, consume.ErrDuplicate) || calls != 1 {
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
	h := consume.Chain(func(context.Context, consume.Record) error { called++; return nil },
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
		if err := h(context.Background(), consumetest.Record(row)); !errors.Is(err, tc.want) {
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
		return func(next consume.HandlerFunc) consume.HandlerFunc {
			return func(ctx context.Context, r consume.Record) error {
				order = append(order, name)
				return next(ctx, r)
			}
		}
	}
	h := consume.Chain(func(context.Context, consume.Record) error { order = append(order, "handler"); return nil },
		mw("outer"), mw("inner"))
	if err := h.Handle(context.Background(), consume.Record{}); err != nil || len(order) != 3 ||
		order[0] != "outer" || order[1] != "inner" || order[2] != "handler" {
		t.Fatalf("%v, %v", order, err)
	}
}
