package inbox_test

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/inbox"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/migrations"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// A group claims an event once; another group claims it for itself; a
// claim rolled back leaves the event unclaimed; a concurrent claim waits
// for the first to commit and then finds it taken.
func TestClaim(t *testing.T) {
	_, dbURL := pgtest.NewDB(t)
	db, _ := pgtest.AsRole(t, dbURL, migrations.RoleWorker) // the consumers' role claims
	ctx := context.Background()
	id := uuid.New()
	claim := func(group string, commit bool) (claimed bool) {
		t.Helper()
		inTx(t, db, commit, func(tx *sql.Tx) (err error) {
			claimed, err = inbox.Claim(ctx, tx, group, id)
			return err
		})
		return claimed
	}
	for i, step := range []struct {
		group  string
		commit bool
		want   bool
	}{
		{event.GroupStock, false, true},       // rolled back
		{event.GroupStock, true, true},        // claimed
		{event.GroupStock, true, false},       // claimed before
		{event.GroupDataPlatform, true, true}, // another group's claim
	} {
		if got := claim(step.group, step.commit); got != step.want {
			t.Fatalf("step %d (%s, commit %v): claimed %v, want %v", i, step.group, step.commit, got, step.want)
		}
	}

	// Concurrent claims of a new event: the second waits for the first.
	id = uuid.New()
	first, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Rollback()
	if ok, err := inbox.Claim(ctx, first, event.GroupStock, id); err != nil || !ok {
		t.Fatalf("first claim: %v, %v", ok, err)
	}
	second := make(chan bool, 1)
	go func() {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Error(err)
			second <- true
			return
		}
		defer tx.Rollback()
		ok, err := inbox.Claim(ctx, tx, event.GroupStock, id)
		if err != nil {
			t.Error(err)
		}
		second <- ok
	}()
	eventually.True(t, 10*time.Second, "the second claim waits for the first's lock", func() (bool, error) {
		select {
		case ok := <-second:
			t.Fatalf("the second claim did not wait for the first (claimed %v)", ok)
		default:
		}
		var waiting int
		err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
		return waiting == 1, err
	})
	if err := first.Commit(); err != nil {
		t.Fatal(err)
	}
	if ok := <-second; ok {
		t.Fatal("the second claim succeeded after the first committed")
	}
}

// ClaimAll claims a batch in one statement: the ids claimed before (by this
// group) and an id repeated in the batch are not claimed again, another
// group's claims do not count, and a batch rolled back claims nothing.
func TestClaimAll(t *testing.T) {
	_, dbURL := pgtest.NewDB(t)
	db, _ := pgtest.AsRole(t, dbURL, migrations.RoleWorker)
	ctx := context.Background()
	before, other, fresh1, fresh2 := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	claimAll := func(group string, commit bool, ids ...uuid.UUID) (claimed map[uuid.UUID]bool) {
		t.Helper()
		inTx(t, db, commit, func(tx *sql.Tx) (err error) {
			claimed, err = inbox.ClaimAll(ctx, tx, group, ids)
			return err
		})
		return claimed
	}
	claimAll(event.GroupStock, true, before)
	claimAll(event.GroupDataPlatform, true, other)
	claimAll(event.GroupStock, false, fresh1) // rolled back
	got := claimAll(event.GroupStock, true, fresh2, before, other, fresh1, fresh2)
	want := map[uuid.UUID]bool{fresh1: true, fresh2: true, other: true}
	if len(got) != len(want) || !got[fresh1] || !got[fresh2] || !got[other] {
		t.Fatalf("claimed %v, want %v", got, want)
	}
	if again := claimAll(event.GroupStock, true, fresh1, fresh2, before, other); len(again) != 0 {
		t.Fatalf("redelivered batch claimed %v, want none", again)
	}
	if none := claimAll(event.GroupStock, true); len(none) != 0 {
		t.Fatalf("empty batch claimed %v", none)
	}
}

// inTx runs f in a transaction of db, then commits it or, unless commit,
// rolls it back; an error fails the test.
func inTx(t *testing.T, db *sql.DB, commit bool, f func(tx *sql.Tx) error) {
	t.Helper()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		t.Fatal(err)
	}
	if commit {
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}
