package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
// leaving no Postgres behind.
func TestDevServesAPaymentAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	// The postgres user runs the server when the test runs as root: it must
	// be able to enter the folder.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(binary(t), "dev")
	cmd.Env = append(os.Environ(), "DATA_DIR="+filepath.Join(dir, "data"), "API_ADDR=127.0.0.1:0",
		"CONNECT_ADDR=127.0.0.1:0", "KAFKA_PORTS=0,0,0", "PLATFORM_MOCK_ADDR=127.0.0.1:0", "DATABASE_URL=", "KAFKA_BOOTSTRAP_SERVERS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	base, kafkaAddr := make(chan string, 1), make(chan string, 1)
	go func() {
		apiRE := regexp.MustCompile(`API\s+(http://\S+)`)
		kafkaRE := regexp.MustCompile(`Kafka\s+(\d\S+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := apiRE.FindStringSubmatch(sc.Text()); m != nil {
				base <- m[1]
			}
			if m := kafkaRE.FindStringSubmatch(sc.Text()); m != nil {
				kafkaAddr <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	var url string
	select {
	case url = <-base:
	case err := <-exited:
		t.Fatalf("dev exited before serving: %v\n%s", err, stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("dev printed no API URL within 2 minutes\n%s", stderr.String())
	}

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
	bootstrap := <-kafkaAddr
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
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("dev exited with %v after SIGINT\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("dev still running a minute after SIGINT")
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("postgres (pid %d) still running after dev exited", pid)
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
