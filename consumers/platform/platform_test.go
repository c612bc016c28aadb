package platform_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/consumers/consume/consumetest"
	"github.com/outboxpay/outboxpay/consumers/platform"
	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/kit/platformmock"
	"github.com/outboxpay/outboxpay/internal/outbox"
	"github.com/outboxpay/outboxpay/internal/shop"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// The data-platform handler POSTs the payload of the event's outbox row,
// and only for a record that matches the row: a forged or mismatched record
// reaches neither the platform nor the inbox, and one whose row does not
// exist is retried while recent.
func TestHandlerTrustsTheRow(t *testing.T) {
	db, _ := pgtest.NewDB(t)
	ctx := context.Background()
	mock := platformmock.New(platformmock.Config{Seed: 1})
	srv := httptest.NewServer(mock)
	t.Cleanup(srv.Close)
	h := platform.New(db, platform.Config{URL: srv.URL, MaxTries: 1}, consume.NewMetrics(prometheus.NewRegistry()), nil)

	// A paid order: its PaymentCompleted row.
	svc := shop.New(db)
	var user, detail int64
	if err := db.QueryRow(`INSERT INTO users (name, balance) VALUES ('u', 1000) RETURNING id`).Scan(&user); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`WITH p AS (INSERT INTO products (name) VALUES ('p') RETURNING id)
		INSERT INTO product_details (product_id, option, price, stock) SELECT id, 'o', 300, 5 FROM p RETURNING id`).Scan(&detail); err != nil {
		t.Fatal(err)
	}
	o, err := svc.PlaceOrder(ctx, user, []shop.OrderLine{{ProductDetailID: detail, Quantity: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Pay(ctx, shop.PayRequest{OrderID: o.OrderID, UserID: user}); err != nil {
		t.Fatal(err)
	}
	paid, err := outbox.Load(ctx, db, paymentCompletedID(t, db))
	if err != nil {
		t.Fatal(err)
	}

	forgedValue := fmt.Appendf(nil, `{"paymentId":1,"orderId":%d,"userId":%d,"amount":1000000}`, o.OrderID, user)
	forged := func(change func(*event.Message)) consume.Record {
		row := paid
		row.Payload = forgedValue
		change(&row)
		return consumetest.Record(row)
	}
	for _, tc := range []struct {
		name   string
		rec    consume.Record
		reason string
	}{
		{"another type", forged(func(m *event.Message) { m.Type = event.TypePaymentRefunded }),
			`eventType header "PaymentRefunded", row type is "PaymentCompleted"`},
		{"another key", forged(func(m *event.Message) { m.AggregateID = "999" }), `key "999"`},
		{"another topic", forged(func(m *event.Message) { m.AggregateType = event.AggregateOrder }), `topic "outbox.event.order"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := h.Handle(ctx, tc.rec)
			if !consume.IsPermanent(err) || !errors.Is(err, consume.ErrMismatch) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Handle: %v; want a permanent ErrMismatch naming %q", err, tc.reason)
			}
		})
	}
	t.Run("unknown id", func(t *testing.T) {
		err := h.Handle(ctx, forged(func(m *event.Message) { m.ID = uuid.New() }))
		if !errors.Is(err, consume.ErrNotYet) || !errors.Is(err, outbox.ErrNotFound) || consume.IsPermanent(err) {
			t.Fatalf("Handle: %v; want outbox.ErrNotFound, retried while recent", err)
		}
	})
	if st := mock.Stats(); st.Received != 0 || st.Invalid != 0 {
		t.Fatalf("the platform got %+v from records that do not match their row", st)
	}

	t.Run("another payload", func(t *testing.T) {
		if err := h.Handle(ctx, forged(func(*event.Message) {})); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		got, ok := mock.Event(paid.ID.String())
		if !ok {
			t.Fatal("the platform did not receive the event")
		}
		var p event.PaymentCompleted
		if err := json.Unmarshal(got.Body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Amount != 300 || p.OrderID != o.OrderID || p.UserID != user {
			t.Fatalf("the platform received %s; want the row's payload (amount 300), not the record's", got.Body)
		}
		if st := consumetest.Status(t, db, paid.ID); st != outbox.StatusComplete {
			t.Fatalf("row %s, want COMPLETE", st)
		}
	})
}

func paymentCompletedID(t *testing.T, db *sql.DB) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	if err := db.QueryRow(`SELECT id FROM outbox WHERE type = $1`, event.TypePaymentCompleted).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// request is what the platform received.
type request struct {
	key, eventType, contentType string
	body                        []byte
}

// One POST per attempt, with the event id as Idempotency-Key and the row's
// payload as body: a 2xx records the event handled, a 4xx is permanent, a
// 5xx or a timeout is retried up to MaxTries (by the group); a payload
// without its required fields, or an event of another type, is not POSTed.
func TestDeliver(t *testing.T) {
	db, _ := pgtest.NewDB(t)
	ctx := context.Background()
	completed := func(t *testing.T) event.Message {
		m, err := event.NewPaymentCompleted(event.PaymentCompleted{PaymentID: 1, OrderID: 2, UserID: 3, Amount: 400})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		row    func(t *testing.T) event.Message
		answer int // 0: no answer before the client's timeout
		posts  int
		want   func(error) bool
		done   bool // recorded as handled: claimed, row COMPLETE
	}{
		{name: "accepted", row: completed, answer: http.StatusCreated, posts: 1, want: isNil, done: true},
		{name: "a refund", answer: http.StatusOK, posts: 1, want: isNil, done: true, row: func(t *testing.T) event.Message {
			m, err := event.NewPaymentRefunded(event.PaymentRefunded{PaymentID: 1, OrderID: 2, UserID: 3, Amount: 400, Reason: "short"})
			if err != nil {
				t.Fatal(err)
			}
			return m
		}},
		{name: "refused", row: completed, answer: http.StatusUnprocessableEntity, posts: 1,
			want: func(err error) bool {
				return consume.IsPermanent(err) && strings.Contains(err.Error(), "refused by the data platform")
			}},
		{name: "failing", row: completed, answer: http.StatusServiceUnavailable, posts: 1,
			want: func(err error) bool { return !consume.IsPermanent(err) && strings.Contains(err.Error(), "503") }},
		{name: "timing out", row: completed, posts: 1,
			want: func(err error) bool { return !consume.IsPermanent(err) && strings.Contains(err.Error(), "deliver") }},
		{name: "payload lacks amount", answer: http.StatusCreated, want: consume.IsPermanent, row: func(t *testing.T) event.Message {
			m := completed(t)
			m.Payload = []byte(`{"paymentId":1,"orderId":2,"userId":3}`)
			return m
		}},
		{name: "not a payment event", answer: http.StatusCreated, want: func(err error) bool { return errors.Is(err, consume.ErrSkipped) },
			row: func(t *testing.T) event.Message { return consumetest.OrderPaid(t, 1, 1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu   sync.Mutex
				reqs []request
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				reqs = append(reqs, request{r.Header.Get("Idempotency-Key"), r.Header.Get("X-Event-Type"), r.Header.Get("Content-Type"), body})
				mu.Unlock()
				if tc.answer == 0 {
					<-r.Context().Done() // the client gives up
					return
				}
				w.WriteHeader(tc.answer)
			}))
			t.Cleanup(srv.Close)
			h := platform.New(db, platform.Config{URL: srv.URL, Timeout: 300 * time.Millisecond, MaxTries: 3},
				consume.NewMetrics(prometheus.NewRegistry()), nil)
			row := tc.row(t)
			consumetest.Insert(t, db, row)
			if err := h.Handle(ctx, consumetest.Record(row)); !tc.want(err) {
				t.Fatalf("Handle: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(reqs) != tc.posts {
				t.Fatalf("%d POSTs, want %d", len(reqs), tc.posts)
			}
			for _, r := range reqs {
				if r.key != row.ID.String() || r.eventType != row.Type || r.contentType != "application/json" || string(r.body) != string(loadPayload(t, db, row)) {
					t.Errorf("POST %+v, want the row's payload with Idempotency-Key %s and X-Event-Type %s", r, row.ID, row.Type)
				}
			}
			want := outbox.StatusInit
			if tc.done {
				want = outbox.StatusComplete
			}
			if st, claimed := consumetest.Status(t, db, row.ID), consumetest.Claimed(t, db, event.GroupDataPlatform, row.ID); st != want || claimed != tc.done {
				t.Fatalf("row %s, claimed %v; want %s, %v", st, claimed, want, tc.done)
			}
		})
	}
}

func isNil(err error) bool { return err == nil }

// loadPayload is the payload of row as the outbox stores it.
func loadPayload(t *testing.T, db *sql.DB, row event.Message) []byte {
	t.Helper()
	m, err := outbox.Load(context.Background(), db, row.ID)
	if err != nil {
		t.Fatal(err)
	}
	return m.Payload
}

// A batch's POSTs: one aggregate's events one after the other in offset
// order, different aggregates concurrently, never more than InFlight at
// once; each event POSTed once and recorded handled. A 5xx fails the whole
// batch (retried) and a 4xx fails it permanently (split by the group),
// recording nothing.
func TestDeliverBatch(t *testing.T) {
	db, _ := pgtest.NewDB(t)
	ctx := context.Background()
	const keys, perKey, inFlight = 8, 3, 4
	var (
		mu       sync.Mutex
		posted   = map[string][]string{} // X-Key -> Idempotency-Keys in arrival order
		inflight int
		most     int
		answer   = http.StatusCreated
	)
	full := make(chan struct{}) // closed once inFlight POSTs were in flight together
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct{ UserID int64 }
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &p)
		mu.Lock()
		inflight++
		most = max(most, inflight)
		if inflight >= inFlight {
			once.Do(func() { close(full) })
		}
		status := answer
		mu.Unlock()
		// The first POSTs wait until inFlight of them are in flight: the
		// handler must have them in flight together to get past this.
		select {
		case <-full:
		case <-r.Context().Done():
		}
		mu.Lock()
		inflight--
		posted[fmt.Sprint(p.UserID)] = append(posted[fmt.Sprint(p.UserID)], r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	h := platform.New(db, platform.Config{URL: srv.URL, Timeout: 30 * time.Second, MaxTries: 3, InFlight: inFlight},
		consume.NewMetrics(prometheus.NewRegistry()), nil)
	newBatch := func(firstPayment int64) ([]consume.Record, map[string][]string) {
		want := map[string][]string{}
		var recs []consume.Record
		for i := range perKey { // round robin: the keys' events interleave
			for k := range int64(keys) {
				m, err := event.NewPaymentCompleted(event.PaymentCompleted{PaymentID: firstPayment + int64(i)*keys + k, OrderID: 1, UserID: 1000 + k, Amount: 1})
				if err != nil {
					t.Fatal(err)
				}
				consumetest.Insert(t, db, m)
				recs = append(recs, consumetest.Record(m))
				want[m.AggregateID] = append(want[m.AggregateID], m.ID.String())
			}
		}
		return recs, want
	}
	recs, want := newBatch(1)
	if err := h.HandleBatch(ctx, recs); err != nil {
		t.Fatalf("HandleBatch: %v", err)
	}
	mu.Lock()
	if most != inFlight {
		t.Errorf("at most %d POSTs in flight, want %d", most, inFlight)
	}
	if fmt.Sprint(posted) != fmt.Sprint(want) {
		t.Errorf("POSTed per key %v, want %v (each key's events once, in offset order)", posted, want)
	}
	mu.Unlock()
	for _, r := range recs {
		id, _ := r.EventID()
		if st := consumetest.Status(t, db, id); st != outbox.StatusComplete {
			t.Fatalf("row %s %s, want COMPLETE", id, st)
		}
	}

	for _, tc := range []struct {
		answer    int
		permanent bool
	}{{http.StatusServiceUnavailable, false}, {http.StatusBadRequest, true}} {
		mu.Lock()
		answer = tc.answer
		mu.Unlock()
		recs, _ := newBatch(int64(100 * tc.answer))
		err := h.HandleBatch(ctx, recs)
		if err == nil || consume.IsPermanent(err) != tc.permanent {
			t.Fatalf("answer %d: %v, want permanent %v", tc.answer, err, tc.permanent)
		}
		for _, r := range recs {
			id, _ := r.EventID()
			if consumetest.Claimed(t, db, event.GroupDataPlatform, id) {
				t.Fatalf("answer %d: event %s recorded as handled", tc.answer, id)
			}
		}
	}
}
