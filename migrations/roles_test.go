package migrations_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"

	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/migrations"
)

// What each role must not do: every statement fails with
// insufficient_privilege (42501) and changes nothing.
func TestRolesCannot(t *testing.T) {
	admin, dbURL := pgtest.NewDB(t)
	mustExec(t, admin, `INSERT INTO users (name, balance) VALUES ('victim', 100)`)
	everyRole := []string{
		`CREATE TABLE stolen (v int)`,
		`ALTER TABLE users ADD COLUMN x int`,
		`DROP TABLE processed_events`,
		`TRUNCATE outbox`,
		`CREATE ROLE intruder`,
		`CREATE PUBLICATION p FOR TABLE users`,
		`ALTER PUBLICATION outbox_publication ADD TABLE users`,
		`UPDATE outbox SET payload = '{}'`,
		`UPDATE users SET name = 'renamed'`,
		`COPY (SELECT 1) TO PROGRAM 'id'`,
	}
	for _, tc := range []struct {
		role  string
		stmts []string
	}{
		{migrations.RoleCDC, []string{
			`UPDATE users SET balance = balance + 1000000`,
			`INSERT INTO users (name) VALUES ('forged')`,
			`DELETE FROM users`,
			`SELECT balance FROM users`,
			`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
			 VALUES ('00000000-0000-0000-0000-000000000001', 'order', '1', 'OrderPaid', '{}')`,
			`DELETE FROM outbox`,
			`UPDATE outbox SET status = 'COMPLETE'`,
			`SELECT * FROM idempotency_keys`,
		}},
		{migrations.RoleAPI, []string{
			`SELECT pg_create_logical_replication_slot('api_slot', 'pgoutput')`,
			`SELECT pg_logical_emit_message(false, 'heartbeat', 'forged')`,
			`DELETE FROM outbox`,
			`UPDATE outbox SET status = 'COMPLETE'`,
			`DELETE FROM users`,
			`INSERT INTO users (name) VALUES ('forged')`,
			`UPDATE product_details SET stock = 1000000`,
			`INSERT INTO processed_events (consumer_group, event_id) VALUES ('stock', gen_random_uuid())`,
			`SELECT * FROM connect_connectors`,
			`DELETE FROM idempotency_keys`,
			`UPDATE idempotency_keys SET fingerprint = ''`,
			`UPDATE idempotency_keys SET user_id = 1`,
		}},
		{migrations.RoleWorker, []string{
			`SELECT pg_create_logical_replication_slot('worker_slot', 'pgoutput')`,
			`SELECT pg_logical_emit_message(true, 'heartbeat', 'forged')`,
			`INSERT INTO users (name) VALUES ('forged')`,
			`DELETE FROM users`,
			`UPDATE outbox SET type = 'OrderPaid'`,
			`UPDATE product_details SET price = 1`,
			`SELECT * FROM idempotency_keys`,
			`SELECT response FROM idempotency_keys`,
			`SELECT fingerprint FROM idempotency_keys`,
			`INSERT INTO idempotency_keys (key, user_id, order_id, response) VALUES ('k', 1, 1, '{}')`,
			`UPDATE idempotency_keys SET response = '{}'`,
			`SELECT * FROM connect_connectors`,
			`DELETE FROM processed_events`,
			`INSERT INTO operator_audit (actor, action, target, reason, changed) VALUES ('w', 'park', 'x', 'r', true)`,
			`INSERT INTO dlq_redrives (topic, partition, "offset") VALUES ('t', 0, 0)`,
		}},
		{migrations.RoleOperator, []string{
			`SELECT pg_create_logical_replication_slot('operator_slot', 'pgoutput')`,
			`SELECT pg_logical_emit_message(true, 'heartbeat', 'forged')`,
			`SELECT * FROM users`,
			`SELECT * FROM payments`,
			`UPDATE payments SET status = 'REFUNDED'`,
			`INSERT INTO payments (order_id, user_id, amount, status) VALUES (1, 1, 1, 'PAID')`,
			`SELECT * FROM orders`,
			`SELECT * FROM idempotency_keys`,
			`SELECT * FROM connect_connectors`,
			`UPDATE product_details SET stock = 0`,
			`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
			 VALUES ('00000000-0000-0000-0000-000000000001', 'order', '1', 'OrderPaid', '{}')`,
			`DELETE FROM outbox`,
			`UPDATE outbox SET type = 'OrderPaid'`,
			`UPDATE outbox SET handled_by = '{}'`,
			`UPDATE outbox SET completed_at = now()`,
			`UPDATE outbox SET published_at = now()`,
			`INSERT INTO processed_events (consumer_group, event_id) VALUES ('stock', gen_random_uuid())`,
			`DELETE FROM processed_events`,
			`UPDATE operator_audit SET reason = 'rewritten'`,
			`DELETE FROM operator_audit`,
			`DELETE FROM dlq_redrives`,
			`UPDATE dlq_redrives SET redriven_at = now()`,
		}},
	} {
		t.Run(tc.role, func(t *testing.T) {
			db, _ := pgtest.AsRole(t, dbURL, tc.role)
			for _, stmt := range append(tc.stmts, everyRole...) {
				_, err := db.ExecContext(t.Context(), stmt)
				var pqErr *pq.Error
				if !errors.As(err, &pqErr) || pqErr.Code != "42501" {
					t.Errorf("%s: err = %v, want insufficient_privilege (42501)", stmt, err)
				}
			}
		})
	}
	var balance int
	if err := admin.QueryRow(`SELECT balance FROM users WHERE name = 'victim'`).Scan(&balance); err != nil || balance != 100 {
		t.Errorf("balance = %d (%v), want 100", balance, err)
	}
	var tables int
	if err := admin.QueryRow(`SELECT count(*) FROM pg_tables WHERE tablename = 'stolen'`).Scan(&tables); err != nil || tables != 0 {
		t.Errorf("%d tables named stolen (%v)", tables, err)
	}
}

// Only the connector's role opens a replication connection; it creates a
// slot there and emits the heartbeat message.
func TestReplication(t *testing.T) {
	_, dbURL := pgtest.NewDB(t)
	for _, role := range []string{migrations.RoleAPI, migrations.RoleWorker} {
		_, roleURL := pgtest.AsRole(t, dbURL, role)
		conn, err := pgconn.Connect(t.Context(), replicationURL(t, roleURL))
		if err == nil {
			conn.Close(context.Background())
			t.Errorf("%s opened a replication connection", role)
		} else if !strings.Contains(err.Error(), "replication") {
			t.Errorf("%s: replication connection refused with %v, want a lack of the replication privilege", role, err)
		}
	}

	cdc, cdcURL := pgtest.AsRole(t, dbURL, migrations.RoleCDC)
	// Logical changes of its database, but no physical replication: no
	// base backup of the whole cluster.
	physical, err := url.Parse(cdcURL)
	if err != nil {
		t.Fatal(err)
	}
	q := physical.Query()
	q.Set("replication", "true")
	physical.RawQuery = q.Encode()
	if conn, err := pgconn.Connect(t.Context(), physical.String()); err == nil {
		conn.Close(context.Background())
		t.Errorf("%s opened a physical replication connection", migrations.RoleCDC)
	}
	conn, err := pgconn.Connect(t.Context(), replicationURL(t, cdcURL))
	if err != nil {
		t.Fatalf("%s: replication connection: %v", migrations.RoleCDC, err)
	}
	defer conn.Close(context.Background())
	if _, err := pglogrepl.CreateReplicationSlot(t.Context(), conn, "cdc_role_test", "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true}); err != nil {
		t.Errorf("%s: create slot: %v", migrations.RoleCDC, err)
	}
	if _, err := cdc.ExecContext(t.Context(), `SELECT pg_logical_emit_message(false, 'heartbeat', '')`); err != nil {
		t.Errorf("%s: heartbeat: %v", migrations.RoleCDC, err)
	}
	var n int
	if err := cdc.QueryRowContext(t.Context(), `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		t.Errorf("%s: read the outbox: %v", migrations.RoleCDC, err)
	}
}

func replicationURL(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("replication", "database")
	u.RawQuery = q.Encode()
	return u.String()
}

// The roles log in, with nothing but what the migration grants: no
// superuser, no role or database creation, and replication for the
// connector only. No authentication rule of the cluster is trust.
func TestRoleAttributes(t *testing.T) {
	admin, dbURL := pgtest.NewDB(t)
	for _, role := range migrations.Roles() {
		db, _ := pgtest.AsRole(t, dbURL, role)
		var user string
		if err := db.QueryRowContext(t.Context(), `SELECT current_user`).Scan(&user); err != nil || user != role {
			t.Errorf("logged in as %q (%v), want %s", user, err, role)
		}
		var super, createRole, createDB, replication, bypassRLS bool
		err := admin.QueryRow(`SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls
			FROM pg_roles WHERE rolname = $1`, role).Scan(&super, &createRole, &createDB, &replication, &bypassRLS)
		if err != nil {
			t.Fatal(err)
		}
		if super || createRole || createDB || bypassRLS || replication != (role == migrations.RoleCDC) {
			t.Errorf("%s: superuser=%v createrole=%v createdb=%v replication=%v bypassrls=%v",
				role, super, createRole, createDB, replication, bypassRLS)
		}
	}
	var trust int
	if err := admin.QueryRow(`SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust'`).Scan(&trust); err != nil || trust != 0 {
		t.Errorf("%d trust rules in pg_hba.conf (%v)", trust, err)
	}
}

func TestSetRolePasswordsRejects(t *testing.T) {
	admin, _ := pgtest.NewDB(t)
	for _, tc := range []struct {
		passwords map[string]string
		want      error
	}{
		{map[string]string{"postgres": "x"}, migrations.ErrUnknownRole},
		{map[string]string{migrations.RoleAPI: ""}, migrations.ErrEmptyPassword},
		{map[string]string{migrations.RoleAPI: "pässwort"}, migrations.ErrPasswordCharacters},
		{map[string]string{migrations.RoleAPI: "tab\there"}, migrations.ErrPasswordCharacters},
	} {
		err := migrations.SetRolePasswords(t.Context(), admin, tc.passwords)
		if !errors.Is(err, tc.want) {
			t.Errorf("SetRolePasswords(%v) = %v, want %v", tc.passwords, err, tc.want)
		}
	}
	// Errors never carry the password.
	err := migrations.SetRolePasswords(t.Context(), admin, map[string]string{"nobody": "s3cret-value"})
	if err == nil || strings.Contains(err.Error(), "s3cret-value") {
		t.Errorf("err = %v", err)
	}
}

// Roles belong to the cluster: several databases of a new cluster, migrating
// at once, race to create them, and all succeed.
func TestConcurrentMigrationsOfOneCluster(t *testing.T) {
	cluster := pgtest.NewCluster(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	dbs := make([]*sql.DB, len(errs))
	for i := range errs {
		name := fmt.Sprintf("concurrent_%d", i)
		if err := cluster.CreateDatabase(t.Context(), name, ""); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("postgres", cluster.URL(name))
		if err != nil {
			t.Fatal(err)
		}
		dbs[i] = db
		t.Cleanup(func() { db.Close() })
	}
	for i, db := range dbs {
		wg.Go(func() { errs[i] = migrations.Up(t.Context(), db) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migration %d: %v", i, err)
		}
	}
	var roles int
	if err := dbs[0].QueryRow(`SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)`, pq.Array(migrations.Roles())).Scan(&roles); err != nil || roles != len(migrations.Roles()) {
		t.Errorf("%d roles (%v), want %d", roles, err, len(migrations.Roles()))
	}
	// What belongs to a database itself (copies of a template do not
	// inherit it, so it is checked here): no role makes temporary tables.
	for _, role := range migrations.Roles() {
		var temp bool
		if err := dbs[0].QueryRow(`SELECT has_database_privilege($1, current_database(), 'TEMPORARY')`, role).Scan(&temp); err != nil || temp {
			t.Errorf("%s may create temporary tables (%v)", role, err)
		}
	}
}

func mustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, stmt := range stmts {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

// Sessions of the API's and the operator's roles have a statement timeout
// and an idle-in-transaction timeout; the other roles' sessions keep the
// server's defaults (the worker's batches and the connector's stream run
// long).
func TestAPIRoleTimeouts(t *testing.T) {
	_, dbURL := pgtest.NewDB(t)
	want := map[string][2]string{
		migrations.RoleAPI:      {"5s", "10s"},
		migrations.RoleWorker:   {"0", "0"},
		migrations.RoleCDC:      {"0", "0"},
		migrations.RoleOperator: {"10s", "10s"},
	}
	for role, w := range want {
		db, _ := pgtest.AsRole(t, dbURL, role)
		var got [2]string
		if err := db.QueryRowContext(t.Context(), `SELECT current_setting('statement_timeout'),
			current_setting('idle_in_transaction_session_timeout')`).Scan(&got[0], &got[1]); err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("%s: (statement_timeout, idle_in_transaction_session_timeout) = %v, want %v", role, got, w)
		}
	}
}

// The operator's role does what the console needs: it reads the outbox and
// the inbox, moves a row's status with the delivery columns a retry resets,
// and appends audit and re-drive rows.
func TestOperatorRoleCan(t *testing.T) {
	admin, dbURL := pgtest.NewDB(t)
	mustExec(t, admin, `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
		VALUES ('00000000-0000-0000-0000-000000000001', 'order', '1', 'OrderPaid', '{"orderId": 1}')`)
	op, _ := pgtest.AsRole(t, dbURL, migrations.RoleOperator)
	mustExec(t, op,
		`SELECT id, payload, handled_by FROM outbox`,
		`SELECT * FROM processed_events`,
		`UPDATE outbox SET status = 'PARKED', attempts = 0, failed_at = NULL, last_error = NULL, updated_at = now()`,
		`UPDATE outbox SET status = 'DISCARDED'`,
		`INSERT INTO operator_audit (actor, action, target, reason, changed) VALUES ('ops', 'park', 'x', 'why', true)`,
		`INSERT INTO dlq_redrives (topic, partition, "offset", audit_id) SELECT 't', 0, 1, max(id) FROM operator_audit`,
		`SELECT * FROM operator_audit`,
		`SELECT * FROM dlq_redrives`,
	)
	var status string
	if err := admin.QueryRow(`SELECT status FROM outbox`).Scan(&status); err != nil || status != "DISCARDED" {
		t.Errorf("status = %q (%v), want DISCARDED", status, err)
	}
}
