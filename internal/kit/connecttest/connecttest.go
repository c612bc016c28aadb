// Package connecttest holds the fixtures of the connect worker's tests: the
// outbox connector's config and an environment its placeholders resolve in.
package connecttest

import (
	"testing"

	"github.com/outboxpay/outboxpay/connect"
)

// WorkerID is the worker id the tests give their worker.
const WorkerID = "127.0.0.1:8083"

// Env returns, in a new map, the OUTBOX_DB_* that the outbox connector's
// ${env:...} placeholders name, with made-up values: host localhost, port
// 5432, user outboxpay, password secret, database outboxpay.
func Env() map[string]string {
	return map[string]string{
		"OUTBOX_DB_HOST": "localhost", "OUTBOX_DB_PORT": "5432", "OUTBOX_DB_USER": "outboxpay",
		"OUTBOX_DB_PASSWORD": "secret", "OUTBOX_DB_NAME": "outboxpay",
	}
}

// Lookup looks name up in Env, as worker.Options.Lookup.
func Lookup(name string) (string, bool) {
	v, ok := Env()[name]
	return v, ok
}

// OutboxConfig returns connect/outbox-connector.json's config, placeholders
// kept; it fails the test if that cannot be read.
func OutboxConfig(t testing.TB) map[string]string {
	t.Helper()
	req, err := connect.OutboxConnector()
	if err != nil {
		t.Fatalf("connecttest: outbox connector: %v", err)
	}
	return req.Config
}
