package connect

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestParseHeartbeat(t *testing.T) {
	accepted := []struct {
		query string
		want  Heartbeat
	}{
		{"SELECT pg_logical_emit_message(false, 'heartbeat', now()::varchar)", Heartbeat{Prefix: "heartbeat", ContentNow: true}},
		{"select PG_LOGICAL_EMIT_MESSAGE ( TRUE ,'hb',NOW ( ) :: TEXT ) ;", Heartbeat{Transactional: true, Prefix: "hb", ContentNow: true}},
		{"\n  SELECT pg_logical_emit_message(false,\n\t'heartbeat', 'alive');  ", Heartbeat{Prefix: "heartbeat", Content: "alive"}},
		{"SELECT pg_logical_emit_message(false, 'it''s', 'x''); DROP TABLE users; --')",
			Heartbeat{Prefix: "it's", Content: "x'); DROP TABLE users; --"}},
		{`SELECT pg_logical_emit_message(false, 'hb', '\')`, Heartbeat{Prefix: "hb", Content: `\`}},
	}
	for _, c := range accepted {
		got, err := ParseHeartbeat(c.query)
		if err != nil || got != c.want {
			t.Errorf("ParseHeartbeat(%q) = %+v, %v; want %+v", c.query, got, err, c.want)
		}
	}
	refused := []string{
		`DO $$ BEGIN UPDATE users SET balance = balance + 1000000; COPY (SELECT 1) TO PROGRAM 'id > /tmp/x'; END $$`,
		`SELECT 1; COPY (SELECT 1) TO PROGRAM 'id'`,
		`SELECT pg_logical_emit_message(false, 'heartbeat', now()::varchar); UPDATE users SET balance = 0`,
		`SELECT pg_logical_emit_message(false, 'heartbeat', now()::varchar); -- trailing`,
		`SELECT pg_logical_emit_message(false, 'x'); DROP TABLE users; --', now()::varchar)`,
		`SELECT pg_logical_emit_message(false, 'hb', 'x'); DROP TABLE users; --')`,
		`SELECT pg_sleep(10)`,
		`SELECT pg_read_file('/etc/passwd')`,
		`SELECT pg_logical_emit_message(false, 'hb', (SELECT string_agg(name, ',') FROM users))`,
		`SELECT pg_logical_emit_message(false, 'hb', current_setting('data_directory'))`,
		`SELECT pg_logical_emit_message(false, 'hb', now()::varchar) FROM users`,
		`SELECT pg_logical_emit_message(false, E'hb\x27', 'x')`,
		`SELECT pg_logical_emit_message(false, $$hb$$, 'x')`,
		`SELECT pg_logical_emit_message(false, 'hb', 'x') /* comment */`,
		`SELECT pg_logical_emit_message(1 = 1, 'hb', 'x')`,
		`SELECT pg_logical_emit_message(false, '', 'x')`,
		"SELECT pg_logical_emit_message(false, 'hb', 'line\nbreak')",
		`SELECT pg_logical_emit_message(false, 'hb', 'x');;`,
		`INSERT INTO outbox VALUES (1)`,
		`SELECT public.pg_logical_emit_message(false, 'hb', 'x')`,
	}
	for _, q := range refused {
		if h, err := ParseHeartbeat(q); err == nil {
			t.Errorf("ParseHeartbeat(%q) accepted it: %+v", q, h)
		}
		raw := shippedConfigResolved(t)
		raw["heartbeat.action.query"] = q
		_, err := ParseConfig(raw)
		var ce ConfigError
		if !errors.As(err, &ce) || !slices.Equal(ce.Keys(), []string{"heartbeat.action.query"}) {
			t.Errorf("ParseConfig with %q: %v, want a ConfigError naming heartbeat.action.query only", q, err)
		}
	}
}

func TestHeartbeatStatementBindsTheValues(t *testing.T) {
	h, err := ParseHeartbeat("SELECT pg_logical_emit_message(true, 'p''x', 'c''); DROP TABLE users; --')")
	if err != nil {
		t.Fatal(err)
	}
	sql, args := h.Statement()
	if sql != `SELECT pg_logical_emit_message($1::boolean, $2::text, $3::text)` ||
		!slices.Equal(args, []any{true, "p'x", "c'); DROP TABLE users; --"}) {
		t.Fatalf("Statement() = %q, %q", sql, args)
	}
	sql, args = Heartbeat{Prefix: "heartbeat", ContentNow: true}.Statement()
	if sql != `SELECT pg_logical_emit_message($1::boolean, $2::text, now()::text)` || !slices.Equal(args, []any{false, "heartbeat"}) {
		t.Fatalf("Statement() = %q, %q", sql, args)
	}
}

func TestEnvAllowlist(t *testing.T) {
	allow, err := CompileEnvAllowlist(DefaultEnvAllowlistPattern)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"OUTBOX_DB_PASSWORD": true, "OUTBOX_DB_HOST": true, "OUTBOX_DB_": true,
		"HOME": false, "PATH": false, "DATABASE_URL": false, "XOUTBOX_DB_HOST": false, "OUTBOX_DB_host": false, "OUTBOX_DBX": false,
	} {
		if got := allow.MatchString(name); got != want {
			t.Errorf("default allow-list matches %s: %v, want %v", name, got, want)
		}
	}
	// The pattern matches whole names, alternatives included.
	alt, err := CompileEnvAllowlist("A|B")
	if err != nil {
		t.Fatal(err)
	}
	if !alt.MatchString("A") || alt.MatchString("AB") || alt.MatchString("XB") {
		t.Error(`"A|B" is not a whole-name match`)
	}
	if _, err := CompileEnvAllowlist("("); err == nil {
		t.Error("an invalid pattern compiled")
	}
}

// A name outside the allow-list is refused with the same message whether or
// not it is set, without its value, and without being looked up.
func TestEnvRefusesNamesOutsideTheAllowlist(t *testing.T) {
	vars := map[string]string{"HOME": "/root", "PATH": "/usr/local/bin:/usr/bin", "OUTBOX_DB_PASSWORD": "pw"}
	var looked []string
	allow, err := CompileEnvAllowlist(DefaultEnvAllowlistPattern)
	if err != nil {
		t.Fatal(err)
	}
	e := Env{Allow: allow, Lookup: func(name string) (string, bool) {
		looked = append(looked, name)
		v, ok := vars[name]
		return v, ok
	}}
	message := func(name string) string {
		t.Helper()
		_, err := e.ResolveEnv(map[string]string{"database.password": "${env:" + name + "}"})
		var ce ConfigError
		if !errors.As(err, &ce) || !slices.Equal(ce.Keys(), []string{"database.password"}) {
			t.Fatalf("${env:%s}: %v, want a ConfigError naming database.password", name, err)
		}
		return ce[0].Message
	}
	home, path, unset := message("HOME"), message("PATH"), message("NOT_SET_ANYWHERE")
	if strings.Contains(home, "/root") || strings.Contains(path, "/usr") {
		t.Fatalf("messages echo values: %q, %q", home, path)
	}
	if strings.ReplaceAll(home, "HOME", "X") != strings.ReplaceAll(unset, "NOT_SET_ANYWHERE", "X") ||
		strings.ReplaceAll(path, "PATH", "X") != strings.ReplaceAll(unset, "NOT_SET_ANYWHERE", "X") {
		t.Fatalf("messages differ for set and unset names: %q, %q, %q", home, path, unset)
	}
	if len(looked) != 0 {
		t.Fatalf("looked up %v", looked)
	}
	if got, err := e.ResolveEnv(map[string]string{"database.password": "${env:OUTBOX_DB_PASSWORD}"}); err != nil || got["database.password"] != "pw" {
		t.Fatalf("allowed name: %v, %v", got, err)
	}
	looked = nil
	if _, err := (Env{Lookup: e.Lookup}).ParseConfig(shippedConfig(t)); err == nil || len(looked) != 0 {
		t.Fatalf("a nil allow-list: %v, looked up %v", err, looked)
	}
}

// Validation messages show a value that came from ${env:...} as its
// reference, never as what it resolved to.
func TestValidationNeverShowsResolvedValues(t *testing.T) {
	const secret = "s3cr3t-Value_42"
	vars := map[string]string{
		"OUTBOX_DB_HOST": "127.0.0.1", "OUTBOX_DB_PORT": "5432", "OUTBOX_DB_USER": "postgres",
		"OUTBOX_DB_PASSWORD": secret, "OUTBOX_DB_NAME": "outboxpay",
	}
	allow, err := CompileEnvAllowlist(DefaultEnvAllowlistPattern)
	if err != nil {
		t.Fatal(err)
	}
	e := Env{Allow: allow, Lookup: func(name string) (string, bool) { v, ok := vars[name]; return v, ok }}
	for _, key := range []string{
		"database.port", "plugin.name", "tasks.max", "database.sslmode", "slot.name", "publication.name",
		"table.include.list", "heartbeat.interval.ms", "heartbeat.action.query", "snapshot.mode",
		"transforms.outbox.route.topic.replacement", "transforms.outbox.table.fields.additional.placement",
		"transforms.outbox.route.by.field", "errors.max.retries", "connector.class",
	} {
		for _, ref := range []string{"${env:OUTBOX_DB_PASSWORD}", "x-${env:OUTBOX_DB_PASSWORD}-y"} {
			raw := shippedConfig(t)
			raw[key] = ref
			_, err := e.ParseConfig(raw)
			var ce ConfigError
			if !errors.As(err, &ce) || !slices.Contains(ce.Keys(), key) {
				t.Errorf("%s=%s: %v, want a ConfigError naming %s", key, ref, err, key)
				continue
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("%s=%s: the message shows the resolved value: %v", key, ref, err)
			}
		}
	}
	// A literal value is still quoted, so the operator sees what is wrong.
	raw := shippedConfig(t)
	raw["database.port"] = "fivefour"
	if _, err := e.ParseConfig(raw); err == nil || !strings.Contains(err.Error(), `"fivefour"`) {
		t.Errorf("literal value not shown: %v", err)
	}
}

// ${env:...} resolves only in the database keys: a secret resolved into a
// slot, publication or topic name, or a heartbeat, would show in logs,
// traces, pg_replication_slots or Kafka. A value that passes validation
// (slot.name of a password that is a valid identifier) is refused too.
func TestEnvReferencesOnlyInDatabaseKeys(t *testing.T) {
	const secret = "abcdef0123456789abcdef0123456789"
	vars := map[string]string{
		"OUTBOX_DB_HOST": "127.0.0.1", "OUTBOX_DB_PORT": "5432", "OUTBOX_DB_USER": "outboxpay_cdc",
		"OUTBOX_DB_PASSWORD": secret, "OUTBOX_DB_NAME": "outboxpay",
	}
	allow, err := CompileEnvAllowlist(DefaultEnvAllowlistPattern)
	if err != nil {
		t.Fatal(err)
	}
	var looked []string
	e := Env{Allow: allow, Lookup: func(name string) (string, bool) {
		looked = append(looked, name)
		v, ok := vars[name]
		return v, ok
	}}
	if _, err := e.ParseConfig(shippedConfig(t)); err != nil {
		t.Fatalf("the shipped config: %v", err)
	}
	for key, value := range map[string]string{
		"slot.name":                                 "${env:OUTBOX_DB_PASSWORD}",
		"publication.name":                          "${env:OUTBOX_DB_PASSWORD}",
		"table.include.list":                        "public.${env:OUTBOX_DB_PASSWORD}",
		"heartbeat.action.query":                    "SELECT pg_logical_emit_message(false, 'heartbeat', '${env:OUTBOX_DB_PASSWORD}')",
		"transforms.outbox.route.topic.replacement": "outbox.event.${env:OUTBOX_DB_PASSWORD}${routedByValue}",
	} {
		raw := shippedConfig(t)
		raw[key] = value
		looked = nil
		_, err := e.ParseConfig(raw)
		var ce ConfigError
		if !errors.As(err, &ce) || !slices.Equal(ce.Keys(), []string{key}) {
			t.Errorf("%s=%s: %v, want a ConfigError naming only %s", key, value, err, key)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the message shows the secret: %v", key, err)
		}
	}
}

// No database field can change the connection's other settings: sslmode
// stays what database.sslmode says.
func TestDatabaseURLKeepsSSLMode(t *testing.T) {
	for _, d := range []Database{
		{Host: "db", Port: 5432, User: "u", Password: "p", Name: "app?sslmode=disable"},
		{Host: "db", Port: 5432, User: "u", Password: "p&sslmode=disable", Name: "app"},
		{Host: "db", Port: 5432, User: "u?sslmode=disable", Password: "p", Name: "app#x"},
		{Host: "db/app?sslmode=disable", Port: 5432, User: "u", Password: "p", Name: "app"},
	} {
		d.SSLMode = "verify-full"
		c, err := pgconn.ParseConfig(d.URL())
		if err != nil {
			continue // refused outright: fine
		}
		if c.TLSConfig == nil || len(c.Fallbacks) != 0 {
			t.Errorf("%+v: the connection may go without verified TLS", d)
		}
		if c.Password != d.Password || c.User != d.User || c.Database != d.Name {
			t.Errorf("%+v parsed as user %q database %q", d, c.User, c.Database)
		}
	}
}
