package migrations_test

import (
	"context"
	"database/sql"
	"os"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/migrations"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func TestUpIsIdempotent(t *testing.T) {
	db, _ := pgtest.NewDB(t) // already migrated once
	ctx := context.Background()
	before, err := migrations.Version(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if before < 1 {
		t.Fatalf("schema version %d after migrating", before)
	}
	if err := migrations.Up(ctx, db); err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if after, _ := migrations.Version(ctx, db); after != before {
		t.Fatalf("version %d after a second Up, want %d", after, before)
	}
}

// The outbox publication exists, covers only the outbox, and publishes
// inserts only: updates and deletes of outbox rows (status tracking,
// retention) never leave through CDC.
func TestOutboxPublicationIsInsertOnly(t *testing.T) {
	db, _ := pgtest.NewDB(t)
	var insert, update, del, truncate bool
	err := db.QueryRow(`SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication
		WHERE pubname = 'outbox_publication'`).Scan(&insert, &update, &del, &truncate)
	if err != nil {
		t.Fatalf("read publication: %v", err)
	}
	if !insert || update || del || truncate {
		t.Fatalf("publication publishes insert=%v update=%v delete=%v truncate=%v; want inserts only",
			insert, update, del, truncate)
	}
	var tables []string
	rows, err := db.Query(`SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = 'outbox_publication'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if len(tables) != 1 || tables[0] != "public.outbox" {
		t.Fatalf("publication covers %v, want [public.outbox]", tables)
	}

	// What pgoutput actually sends for this publication: only the insert.
	slot := "publication_test"
	if _, err := db.Exec(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot); err != nil {
		t.Fatalf("create slot: %v", err)
	}
	t.Cleanup(func() { _, _ = db.Exec(`SELECT pg_drop_replication_slot($1)`, slot) })
	for _, stmt := range []string{
		`INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
		 VALUES ('00000000-0000-0000-0000-000000000001', 'order', '1', 'OrderPaid', '{"orderId": 1}')`,
		`UPDATE outbox SET status = 'PUBLISHED'`,
		`DELETE FROM outbox`,
		`INSERT INTO users (name) VALUES ('not in the publication')`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	got := decodedMessageTypes(t, db, slot)
	if got['I'] != 1 || got['U'] != 0 || got['D'] != 0 || got['T'] != 0 {
		t.Fatalf("pgoutput sent messages %v (by type byte); want exactly one insert and no update, delete or truncate", got)
	}
}

// decodedMessageTypes counts the pgoutput messages in the slot by type byte.
func decodedMessageTypes(t *testing.T, db *sql.DB, slot string) map[byte]int {
	t.Helper()
	rows, err := db.Query(`SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
		'proto_version', '1', 'publication_names', 'outbox_publication')`, slot)
	if err != nil {
		t.Fatalf("peek slot: %v", err)
	}
	defer rows.Close()
	counts := map[byte]int{}
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			t.Fatal(err)
		}
		if len(data) > 0 {
			counts[data[0]]++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}
