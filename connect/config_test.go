package connect

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// testEnv fills the ${env:...} placeholders of outbox-connector.json.
var testEnv = map[string]string{
	"OUTBOX_DB_HOST": "127.0.0.1", "OUTBOX_DB_PORT": "5432", "OUTBOX_DB_USER": "postgres",
	"OUTBOX_DB_PASSWORD": "", "OUTBOX_DB_NAME": "outboxpay",
}

func lookup(k string) (string, bool) { v, ok := testEnv[k]; return v, ok }

// testResolver resolves with testEnv and the default allow-list.
func testResolver(t *testing.T) Env {
	t.Helper()
	allow, err := CompileEnvAllowlist(DefaultEnvAllowlistPattern)
	if err != nil {
		t.Fatal(err)
	}
	return Env{Lookup: lookup, Allow: allow}
}

func shippedConfig(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("outbox-connector.json")
	if err != nil {
		t.Fatal(err)
	}
	var req CreateRequest
	if err := json.Unmarshal(b, &req); err != nil {
		t.Fatalf("outbox-connector.json: %v", err)
	}
	if req.Name != "outbox" {
		t.Fatalf("connector name %q", req.Name)
	}
	return req.Config
}

// shippedConfigResolved is shippedConfig with its ${env:...} resolved by
// testResolver.
func shippedConfigResolved(t *testing.T) map[string]string {
	t.Helper()
	raw, err := testResolver(t).ResolveEnv(shippedConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// shippedConfigChanged is shippedConfigResolved with change applied: each
// key set to its value, or deleted if the value is empty.
func shippedConfigChanged(t *testing.T, change map[string]string) map[string]string {
	t.Helper()
	raw := shippedConfigResolved(t)
	for k, v := range change {
		if v == "" {
			delete(raw, k)
		} else {
			raw[k] = v
		}
	}
	return raw
}

// The shipped connector config is accepted and carries the Debezium keys
// that docs/EVENT-CONTRACT.md requires.
func TestShippedConfig(t *testing.T) {
	raw := shippedConfig(t)
	required := map[string]string{
		"connector.class":             PostgresConnectorClass,
		"plugin.name":                 "pgoutput",
		"publication.autocreate.mode": "disabled",
		"tombstones.on.delete":        "false",
		"transforms":                  "outbox",
		"transforms.outbox.type":      EventRouterType,
		"transforms.outbox.table.fields.additional.placement": "type:header:eventType",
		"transforms.outbox.table.op.invalid.behavior":         "warn",
		"key.converter":   StringConverter,
		"value.converter": StringConverter,
	}
	for k, want := range required {
		if raw[k] != want {
			t.Errorf("%s = %q, want %q", k, raw[k], want)
		}
	}
	for _, k := range []string{"slot.name", "publication.name", "table.include.list", "heartbeat.interval.ms", "heartbeat.action.query"} {
		if raw[k] == "" {
			t.Errorf("%s is not set", k)
		}
	}
	resolved, err := testResolver(t).ResolveEnv(raw)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(resolved)
	if err != nil {
		t.Fatalf("the embedded engine rejects outbox-connector.json: %v", err)
	}
	if cfg.Table != (Table{"public", "outbox"}) || cfg.SlotName != "outbox_slot" || cfg.PublicationName != "outbox_publication" ||
		cfg.CreatePublication || cfg.HeartbeatInterval != 10*time.Second || cfg.Database.Port != 5432 {
		t.Errorf("parsed config: %+v", cfg)
	}
	if got := cfg.Router; got.TopicTemplate != DefaultRouter.TopicTemplate || !slices.Equal(got.Headers, DefaultRouter.Headers) {
		t.Errorf("router %+v, want %+v", got, DefaultRouter)
	}
}

func TestParseConfigRejects(t *testing.T) {
	cases := []struct {
		name   string
		change map[string]string // "" deletes the key
		key    string            // the key the error must name
	}{
		{"unknown option", map[string]string{"snapshot.select.statement.overrides": "x"}, "snapshot.select.statement.overrides"},
		{"other connector", map[string]string{"connector.class": "io.debezium.connector.mysql.MySqlConnector"}, "connector.class"},
		{"missing connector class", map[string]string{"connector.class": ""}, "connector.class"},
		{"two tasks", map[string]string{"tasks.max": "2"}, "tasks.max"},
		{"decoderbufs", map[string]string{"plugin.name": "decoderbufs"}, "plugin.name"},
		{"plugin left to its default", map[string]string{"plugin.name": ""}, "plugin.name"},
		{"port not a number", map[string]string{"database.port": "fivefour"}, "database.port"},
		{"initial snapshot", map[string]string{"snapshot.mode": "initial"}, "snapshot.mode"},
		{"tombstones", map[string]string{"tombstones.on.delete": "true"}, "tombstones.on.delete"},
		{"all-tables publication", map[string]string{"publication.autocreate.mode": "all_tables"}, "publication.autocreate.mode"},
		{"no-tables publication", map[string]string{"publication.autocreate.mode": "no_tables"}, "publication.autocreate.mode"},
		{"two tables", map[string]string{"table.include.list": "public.outbox,public.users"}, "table.include.list"},
		{"table pattern", map[string]string{"table.include.list": "public.out.*"}, "table.include.list"},
		{"json value converter", map[string]string{"value.converter": "org.apache.kafka.connect.json.JsonConverter"}, "value.converter"},
		{"other transform", map[string]string{"transforms.outbox.type": "org.apache.kafka.connect.transforms.InsertField$Value"}, "transforms.outbox.type"},
		{"envelope placement", map[string]string{"transforms.outbox.table.fields.additional.placement": "type:envelope:eventType"}, "transforms.outbox.table.fields.additional.placement"},
		{"event timestamp column", map[string]string{"transforms.outbox.table.field.event.timestamp": "created_at"}, "transforms.outbox.table.field.event.timestamp"},
		{"fatal on update", map[string]string{"transforms.outbox.table.op.invalid.behavior": "fatal"}, "transforms.outbox.table.op.invalid.behavior"},
		{"topic without routing", map[string]string{"transforms.outbox.route.topic.replacement": "events"}, "transforms.outbox.route.topic.replacement"},
		{"negative heartbeat", map[string]string{"heartbeat.interval.ms": "-1"}, "heartbeat.interval.ms"},
		{"heartbeat query without interval", map[string]string{"heartbeat.interval.ms": "0"}, "heartbeat.action.query"},
		{"bad slot name", map[string]string{"slot.name": "Outbox-Slot"}, "slot.name"},
		{"missing topic prefix", map[string]string{"topic.prefix": ""}, "topic.prefix"},
		{"topic prefix not a topic name", map[string]string{"topic.prefix": "outbox pay"}, "topic.prefix"},
		{"message prefix not a regular expression", map[string]string{"message.prefix.exclude.list": "heartbeat,(x"}, "message.prefix.exclude.list"},
		{"message prefix lists together", map[string]string{"message.prefix.include.list": "audit"}, "message.prefix.include.list"},
		{"Debezium Engine's initial retry delay", map[string]string{"errors.retry.delay.initial.ms": "300"}, "errors.retry.delay.initial.ms"},
		{"Connect's converter retry delay", map[string]string{"errors.retry.delay.max.ms": "10000"}, "errors.retry.delay.max.ms"},
		{"zero restart wait", map[string]string{"retriable.restart.connector.wait.ms": "0"}, "retriable.restart.connector.wait.ms"},
		{"negative restart wait", map[string]string{"retriable.restart.connector.wait.ms": "-1"}, "retriable.restart.connector.wait.ms"},
		{"retries below -1", map[string]string{"errors.max.retries": "-2"}, "errors.max.retries"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig(shippedConfigChanged(t, c.change))
			var ce ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want a ConfigError", err)
			}
			if !slices.Contains(ce.Keys(), c.key) {
				t.Fatalf("error names %v, want %s: %v", ce.Keys(), c.key, err)
			}
		})
	}
}

// The retry options that do nothing for a Debezium connector's own errors
// on Kafka Connect are refused with what to set instead; the shipped
// config sets Debezium's own.
func TestRetryOptions(t *testing.T) {
	raw := shippedConfig(t)
	for _, k := range []string{"errors.retry.delay.initial.ms", "errors.retry.delay.max.ms", "errors.retry.timeout"} {
		if _, ok := raw[k]; ok {
			t.Errorf("outbox-connector.json sets %s, which Debezium's connector on Kafka Connect does not use", k)
		}
	}
	cfg, err := ParseConfig(shippedConfigResolved(t))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RestartWait != 3*time.Second || cfg.MaxRetries != -1 {
		t.Errorf("shipped: restart wait %v, max retries %d; want 3s, -1", cfg.RestartWait, cfg.MaxRetries)
	}
	for _, k := range []string{"errors.retry.delay.initial.ms", "errors.retry.delay.max.ms"} {
		_, err := ParseConfig(shippedConfigChanged(t, map[string]string{k: "1000"}))
		var ce ConfigError
		if !errors.As(err, &ce) || len(ce) != 1 || ce[0].Key != k ||
			!strings.Contains(ce[0].Message, "after a retriable error the task restarts after retriable.restart.connector.wait.ms") {
			t.Errorf("%s: %v, want one error saying what to set instead", k, err)
		}
	}
}

// Options left out take Debezium's defaults: CommonConnectorConfig's
// retriable.restart.connector.wait.ms (10000) and errors.max.retries (-1),
// PostgresConnectorConfig's database.sslmode (prefer).
func TestDebeziumDefaults(t *testing.T) {
	cfg, err := ParseConfig(shippedConfigChanged(t, map[string]string{
		"retriable.restart.connector.wait.ms": "", "errors.max.retries": "", "database.sslmode": "",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RestartWait != 10*time.Second || cfg.MaxRetries != -1 || cfg.Database.SSLMode != "prefer" {
		t.Errorf("restart wait %v, max retries %d, sslmode %q; want 10s, -1, prefer", cfg.RestartWait, cfg.MaxRetries, cfg.Database.SSLMode)
	}
	if u := cfg.Database.URL(); !strings.Contains(u, "sslmode=prefer") {
		t.Errorf("connection URL %q does not ask for sslmode=prefer", u)
	}
}

func TestResolveEnv(t *testing.T) {
	got, err := testResolver(t).ResolveEnv(map[string]string{"database.hostname": "x${env:OUTBOX_DB_HOST}y", "b": "plain"})
	if err != nil || got["database.hostname"] != "x127.0.0.1y" || got["b"] != "plain" {
		t.Fatalf("got %v, %v", got, err)
	}
	_, err = testResolver(t).ResolveEnv(map[string]string{"database.password": "${env:OUTBOX_DB_NOPE}"})
	var ce ConfigError
	if !errors.As(err, &ce) || ce[0].Key != "database.password" {
		t.Fatalf("unset variable: %v", err)
	}
}

// An outbox row becomes the record of docs/EVENT-CONTRACT.md, stamped with
// the time it is processed.
func TestRoute(t *testing.T) {
	processed := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)
	row := Columns{
		"id": "5F0C7E0A-1D2B-4C3D-9E8F-0A1B2C3D4E5F", "aggregatetype": "order", "aggregateid": "42",
		"type": "OrderPaid", "payload": `{"orderId": 42, "items": [{"quantity": 1, "productDetailId": 7}]}`,
		"created_at": "2026-11-25 09:00:00+00", "status": "INIT",
	}
	rec, err := DefaultRouter.Route(row, processed)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Topic != "outbox.event.order" || string(rec.Key) != "42" || string(rec.Value) != row["payload"] ||
		!rec.Timestamp.Equal(time.Date(2026, 11, 25, 10, 0, 0, 123000000, time.UTC)) {
		t.Fatalf("record %+v", rec)
	}
	want := []Header{{Key: "id", Value: []byte("5f0c7e0a-1d2b-4c3d-9e8f-0a1b2c3d4e5f")}, {Key: "eventType", Value: []byte("OrderPaid")}}
	if !slices.EqualFunc(rec.Headers, want, Header.Equal) {
		t.Fatalf("headers %q", rec.Headers)
	}
	delete(row, "payload")
	if _, err := DefaultRouter.Route(row, processed); err == nil {
		t.Fatal("a row without payload was routed")
	}
}

// A column placed as a header gives it a null value when NULL (as Debezium's
// EventRouterDelegate adds it), an empty one when the empty string.
func TestRouteNullHeader(t *testing.T) {
	r := DefaultRouter
	r.Headers = append(slices.Clone(r.Headers), HeaderPlacement{Column: "note", Header: "note"})
	row := Columns{"id": "5f0c7e0a-1d2b-4c3d-9e8f-0a1b2c3d4e5f", "aggregatetype": "order", "aggregateid": "42", "payload": "{}"}
	cases := []struct {
		name      string
		typ, note *string
		want      []Header
	}{
		{"both NULL", nil, nil, []Header{{Key: "eventType"}, {Key: "note"}}},
		{"empty and NULL", ptr(""), nil, []Header{{Key: "eventType", Value: []byte{}}, {Key: "note"}}},
		{"values", ptr("OrderPaid"), ptr(""), []Header{{Key: "eventType", Value: []byte("OrderPaid")}, {Key: "note", Value: []byte{}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			row := maps.Clone(row)
			for col, v := range map[string]*string{"type": c.typ, "note": c.note} {
				if v != nil {
					row[col] = *v
				}
			}
			rec, err := r.Route(row, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			want := append([]Header{{Key: "id", Value: []byte(row["id"])}}, c.want...)
			if !slices.EqualFunc(rec.Headers, want, Header.Equal) {
				t.Fatalf("headers %v, want %v", rec.Headers, want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestMessageFilter(t *testing.T) {
	cases := []struct {
		name     string
		change   map[string]string // "" deletes the key
		captured []string
		ignored  []string
	}{
		{"shipped: heartbeats excluded", nil, []string{"audit", "heartbeat2", "Heartbeat"}, []string{"heartbeat"}},
		{"exclude patterns", map[string]string{"message.prefix.exclude.list": "heartbeat, audit\\..*"}, []string{"audit", "other"}, []string{"heartbeat", "audit.x"}},
		{"include list", map[string]string{"message.prefix.exclude.list": "", "message.prefix.include.list": "audit,trace.*"}, []string{"audit", "trace-1"}, []string{"heartbeat", "audits"}},
		// As in Debezium, a config may capture the heartbeat.action.query's
		// messages: they are published like any other.
		{"heartbeats captured: no list", map[string]string{"message.prefix.exclude.list": ""}, []string{"heartbeat", "audit"}, nil},
		{"heartbeats captured: include list", map[string]string{"message.prefix.exclude.list": "", "message.prefix.include.list": "heart.*"}, []string{"heartbeat"}, []string{"audit"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseConfig(shippedConfigChanged(t, c.change))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range c.captured {
				if !cfg.Messages.Captures(p) {
					t.Errorf("prefix %q not captured", p)
				}
			}
			for _, p := range c.ignored {
				if cfg.Messages.Captures(p) {
					t.Errorf("prefix %q captured", p)
				}
			}
			if got := cfg.MessageTopic(); got != "outboxpay.message" {
				t.Errorf("MessageTopic() = %q, want outboxpay.message", got)
			}
		})
	}
}

// Debezium's all_tables (its default) is refused with what to set instead.
func TestAllTablesPublicationRefused(t *testing.T) {
	_, err := ParseConfig(shippedConfigChanged(t, map[string]string{"publication.autocreate.mode": ""}))
	var ce ConfigError
	if !errors.As(err, &ce) || len(ce) != 1 || !strings.Contains(ce[0].Message, `FOR ALL TABLES (all_tables, Debezium's default); set "filtered"`) {
		t.Fatalf("got %v, want the default all_tables refused with what to set", err)
	}
}
