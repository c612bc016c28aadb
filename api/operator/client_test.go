package operator_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/api/operator"
	"github.com/outboxpay/outboxpay/internal/ops"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// TestClient: each of the client's methods makes its route's request, and
// decodes the answer; an error answer is an *operator.Error with the
// problem's status and detail.
func TestClient(t *testing.T) {
	e, rec := newServer(t, builtAssets)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	c := operator.NewClient(srv.URL+"/", user, password, srv.Client())

	s, err := c.Summary(ctx, 2*time.Minute)
	if err != nil || s.Outbox.Failed != 2 || s.Window.Seconds != 120 || !s.At.Equal(at) {
		t.Errorf("Summary: %+v, %v", s, err)
	}
	series, err := c.Series(ctx, 3, 10*time.Second)
	if err != nil || series.StepSeconds != 10 || len(series.Buckets) != 1 || series.Buckets[0].Completed != 3 {
		t.Errorf("Series: %+v, %v", series, err)
	}
	events, err := c.Search(ctx, ops.Query{OrderID: 5, Status: outbox.StatusFailed, OlderThan: time.Minute, Limit: 9})
	if err != nil || len(events) != 1 || events[0].ID != eventID || events[0].Status != outbox.StatusFailed {
		t.Errorf("Search: %+v, %v", events, err)
	}
	life, err := c.Life(ctx, eventID)
	if err != nil || life.Event.ID != eventID || string(life.Payload) != `{"orderId":1}` {
		t.Errorf("Life: %+v, %v", life, err)
	}
	for name, act := range map[string]func(context.Context, uuid.UUID, string) (ops.Result, error){
		"Retry": func(ctx context.Context, id uuid.UUID, r string) (ops.Result, error) { return c.Retry(ctx, id, r) },
		"Park":  func(ctx context.Context, id uuid.UUID, r string) (ops.Result, error) { return c.Park(ctx, id, r) },
		"Discard": func(ctx context.Context, id uuid.UUID, r string) (ops.Result, error) {
			return c.Discard(ctx, id, r)
		},
	} {
		if res, err := act(ctx, eventID, "because"); err != nil || res.AuditID == 0 {
			t.Errorf("%s: %+v, %v", name, res, err)
		}
	}
	records, err := c.DLQ(ctx, ops.DLQQuery{Topic: "outbox.event.payment.dlq"})
	if err != nil || len(records) != 1 || records[0].Offset != 4 {
		t.Errorf("DLQ: %+v, %v", records, err)
	}
	part, off := int32(1), int64(2)
	if res, err := c.Redrive(ctx, ops.Redrive{Topic: "outbox.event.payment.dlq", Partition: &part, Offset: &off}, "fixed"); err != nil || res.Redriven != 2 {
		t.Errorf("Redrive: %+v, %v", res, err)
	}
	if res, err := c.Connector(ctx, "pause", "maintenance"); err != nil || !res.Changed {
		t.Errorf("Connector: %+v, %v", res, err)
	}
	entries, err := c.Audit(ctx, ops.AuditQuery{Target: "outbox"})
	if err != nil || entries == nil || len(entries) != 0 {
		t.Errorf("Audit: %#v, %v (want an empty list)", entries, err)
	}

	var got string
	for _, c := range rec.all() {
		got += fmt.Sprintf("{%s %v} ", c.method, deref(c.args))
	}
	for _, want := range []string{
		"{Summary [2m0s]}", "{Series [3m0s 10s]}", "{Search [{5 00000000-0000-0000-0000-000000000000    FAILED 1m0s 0s 9}]}",
		"{Retry [{alice because} " + eventID.String() + "]}", "{Park [{alice because}", "{Discard [{alice because}",
		"{DLQ [{outbox.event.payment.dlq 00000000-0000-0000-0000-000000000000 0}]}",
		"{Redrive [{alice fixed} outbox.event.payment.dlq 1/2]}", "{Connector [{alice maintenance} connector-pause]}", "{Audit [{outbox 0}]}",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("calls %s\nlack %s", got, want)
		}
	}

	// Error answers.
	rec.err = fmt.Errorf("no event %s: %w", eventID, ops.ErrNotFound)
	_, err = c.Retry(ctx, eventID, "r")
	var oe *operator.Error
	if !errors.As(err, &oe) || oe.Status != http.StatusNotFound || oe.Detail != rec.err.Error() {
		t.Errorf("Retry of a missing event: %v", err)
	}
	_, err = c.Connector(ctx, "stop", "r")
	if !errors.As(err, &oe) || oe.Status != http.StatusBadRequest {
		t.Errorf("Connector stop: %v", err)
	}
	wrong := operator.NewClient(srv.URL, user, "wrong", srv.Client())
	_, err = wrong.Summary(ctx, 0)
	if !errors.As(err, &oe) || oe.Status != http.StatusUnauthorized {
		t.Errorf("wrong password: %v", err)
	}
}
