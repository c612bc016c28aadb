package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/eventually"
	"github.com/outboxpay/outboxpay/internal/kafkatest"
)

// `outboxpay dev` (what make run runs) as a user sees it: it starts its own
// Postgres and Kafka, the CDC engine with the connector registered, prints
// where the API is, serves a charge -> order -> pay sequence that leaves a
// PAID order whose two events reach Kafka and become COMPLETE, and on
// SIGINT exits cleanly,
// leaving no Postgres behind; the next run reuses its credentials file.
func TestDevServesAPaymentAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	sys, err := launchDev(binary(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.kill() })
	url := sys.API

	post := func(path, body string, headers ...string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("POST", url+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		return call(t, req)
	}
	post("/users/1/balance/charge", `{"amount": 50000}`)
	order := post("/orders", `{"userId": 1, "items": [{"productDetailId": 1, "quantity": 2}]}`)
	id := order["orderId"]
	payment := post(fmt.Sprintf("/orders/%v/payment", id), `{"userId": 1}`, "Idempotency-Key", "dev-test")
	if payment["status"] != "PAID" {
		t.Fatalf("payment: %v", payment)
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/orders/%v", url, id), nil)
	view := call(t, req)
	events, _ := view["events"].([]any)
	if view["status"] != "PAID" || len(events) != 2 {
		t.Fatalf("order: %v", view)
	}
	// The engine streams both events to Kafka.
	bootstrap := sys.Kafka
	want := map[string]string{}
	for _, e := range events {
		e := e.(map[string]any)
		want[e["id"].(string)] = e["topic"].(string)
	}
	msgs := kafkatest.ReadAll(t, bootstrap, []string{"outbox.event.payment", "outbox.event.order"}, 2, time.Minute)
	for _, m := range msgs {
		if id := kafkatest.Header(m, "id"); want[id] == *m.TopicPartition.Topic {
			delete(want, id)
		}
	}
	if len(want) != 0 {
		t.Fatalf("events not on Kafka: %v (read %d records)", want, len(msgs))
	}

	// The consumers take it from there: every event of the order COMPLETE.
	eventually.True(t, time.Minute, "order COMPLETE", func() (bool, error) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/orders/%v", url, id), nil)
		view := call(t, req)
		events, _ := view["events"].([]any)
		for _, e := range events {
			if st := e.(map[string]any)["status"]; st != "COMPLETE" {
				return false, fmt.Errorf("event %v", e)
			}
		}
		return len(events) == 2, nil
	})

	pidFile := filepath.Join(dir, "data", "postgres", "postmaster.pid")
	pid := postmasterPID(t, pidFile)
	if err := sys.stop(); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("postgres (pid %d) still running after dev exited", pid)
	}

	// The next run reuses the generated credentials: it serves (its own
	// registration signed in with them) and the password is the same.
	again, err := launchDev(binary(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.kill() })
	if again.User != sys.User || again.Password != sys.Password {
		t.Error("the second run made new credentials")
	}
	if err := again.stop(); err != nil {
		t.Fatal(err)
	}
}

func call(t *testing.T, req *http.Request) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %v", req.Method, req.URL, resp.StatusCode, body)
	}
	return body
}

func postmasterPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return pid
}
