package engine_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/engine"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/logtest"
	"github.com/outboxpay/outboxpay/internal/kit/runtest"
)

// publication is a row of pg_publication and the tables it publishes.
type publication struct {
	allTables, insert, update, delete, truncate bool
	tables                                      string // schema.table, comma-separated, sorted
}

func (r *rig) publication(name string) (publication, error) {
	var p publication
	err := r.db.QueryRow(`SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate,
			coalesce((SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY schemaname, tablename)
				FROM pg_publication_tables WHERE pubname = $1), '')
		FROM pg_publication WHERE pubname = $1`, name).
		Scan(&p.allTables, &p.insert, &p.update, &p.delete, &p.truncate, &p.tables)
	return p, err
}

// filtered returns overrides for publication.autocreate.mode=filtered with
// the publication name, connecting as the superuser, who may create
// publications for the outbox (the connector's role may not).
func (r *rig) filtered(name string) {
	pw, _ := r.superuser.Password()
	r.raw["publication.autocreate.mode"] = "filtered"
	r.raw["publication.name"] = name
	r.raw["database.user"] = r.superuser.Username()
	r.raw["database.password"] = pw
}

// With publication.autocreate.mode=filtered the engine sets up the
// publication as Debezium's PostgresReplicationConnection does: created FOR
// TABLE the outbox with every operation when missing; an existing one's
// table list set to the outbox (its operations kept); FOR ALL TABLES
// refused.
func TestFilteredPublicationSetUp(t *testing.T) {
	cases := []struct {
		name   string
		before string // SQL run before the engine starts; %s is the publication
		want   publication
	}{
		{"missing: created with every operation", "",
			publication{insert: true, update: true, delete: true, truncate: true, tables: "public.outbox"}},
		{"other tables: altered to the outbox", "CREATE PUBLICATION %s FOR TABLE users, processed_events WITH (publish = 'insert, delete')",
			publication{insert: true, delete: true, tables: "public.outbox"}},
		{"the outbox and another: altered to the outbox", "CREATE PUBLICATION %s FOR TABLE outbox, users",
			publication{insert: true, update: true, delete: true, truncate: true, tables: "public.outbox"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.filtered("pub_filtered")
			if c.before != "" {
				if _, err := r.db.Exec(fmt.Sprintf(c.before, "pub_filtered")); err != nil {
					t.Fatal(err)
				}
			}
			r.start(nil)
			got, err := r.publication("pub_filtered")
			if err != nil || got != c.want {
				t.Fatalf("publication %+v (%v), want %+v", got, err, c.want)
			}
			ids := r.insert("order", "k", 2)
			r.waitIDs([]string{"outbox.event.order"}, ids, time.Minute)
		})
	}
	t.Run("for all tables: refused", func(t *testing.T) {
		r := newRig(t, map[string]string{"errors.max.retries": "-1"})
		r.filtered("pub_all")
		if _, err := r.db.Exec(`CREATE PUBLICATION pub_all FOR ALL TABLES`); err != nil {
			t.Fatal(err)
		}
		err := runToFailure(t, r)
		if !strings.Contains(err.Error(), "publication pub_all is FOR ALL TABLES and cannot be altered") {
			t.Fatalf("error %q does not say the publication cannot be altered", err)
		}
	})
}

// A filtered publication sends the outbox's updates and deletes too: they
// produce no record (the EventRouter's table.op.invalid.behavior=warn), the
// stream goes on and the slot is confirmed past them (and a truncate,
// which Debezium's skipped.operations=t drops), and the updates are
// logged as one warning with a count, not one line each.
func TestFilteredPublicationSkipsUpdatesAndDeletes(t *testing.T) {
	r := newRig(t, nil)
	r.filtered("pub_filtered")
	cfg, err := connect.ParseConfig(r.raw)
	if err != nil {
		t.Fatal(err)
	}
	logger, logs := logtest.New()
	e := engine.New("outbox", cfg, engine.Options{Kafka: kafkaclient.Config{Bootstrap: r.kafka.Bootstrap()},
		ProducerConfig: map[string]any{"broker.address.family": "v4"}, Logger: logger})
	stop := runtest.Background(t, e.Run)
	r.waitStreaming()

	const rows, rounds = 50, 10
	ids := r.insert("order", "a", rows)
	for range rounds {
		if _, err := r.db.Exec(`UPDATE outbox SET attempts = attempts + 1`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.db.Exec(`DELETE FROM outbox WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // id: value, as Postgres prints the jsonb
	keys := map[string]string{}
	for _, id := range ids {
		keys[id] = "a"
	}
	for _, id := range ids[1:] {
		var v string
		if err := r.db.QueryRow(`SELECT payload::text FROM outbox WHERE id = $1`, id).Scan(&v); err != nil {
			t.Fatal(err)
		}
		want[id] = v
	}
	want[ids[0]] = `{"key": "a", "seq": 0}`
	if _, err := r.db.Exec(`TRUNCATE outbox`); err != nil {
		t.Fatal(err)
	}
	for _, id := range r.insert("order", "b", 5) {
		keys[id] = "b"
		var v string
		if err := r.db.QueryRow(`SELECT payload::text FROM outbox WHERE id = $1`, id).Scan(&v); err != nil {
			t.Fatal(err)
		}
		want[id] = v
	}

	var end string
	if err := r.db.QueryRow(`SELECT pg_current_wal_lsn()::text`).Scan(&end); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, time.Minute, "slot confirmed past the updates, deletes and truncate to "+end, func() (bool, error) {
		var ok bool
		err := r.db.QueryRow(`SELECT confirmed_flush_lsn >= $2::pg_lsn FROM pg_replication_slots WHERE slot_name = $1`, r.slot, end).Scan(&ok)
		return err == nil && ok, err
	})
	got := readKgo(t, r.kafka.Bootstrap(), "outbox.event.order", len(want))
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d (one per insert)", len(got), len(want))
	}
	for _, rec := range got {
		id := ""
		for _, h := range rec.Headers {
			if h.Key == "id" {
				id = string(h.Value)
			}
		}
		if w, ok := want[id]; !ok || string(rec.Value) != w || string(rec.Key) != keys[id] {
			t.Errorf("record %s: key %q, value %q; want %q, %q", id, rec.Key, rec.Value, keys[id], w)
		}
		delete(want, id)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Every update counted, in a line per skippedLogInterval (a minute):
	// one, or two if the test took over a minute.
	lines := regexp.MustCompile(`level=WARN msg="ignoring updates of the outbox[^"]*" connector=outbox count=(\d+)`).
		FindAllStringSubmatch(logs.String(), -1)
	total := 0
	for _, l := range lines {
		n, _ := strconv.Atoi(l[1])
		total += n
	}
	if total != rows*rounds || len(lines) > 3 {
		t.Fatalf("%d warning lines counting %d updates, want a few lines counting %d:\n%s", len(lines), total, rows*rounds, logs)
	}
}

// readKgo reads n records of topic from its start with franz-go, byte for
// byte as Kafka holds them.
func readKgo(t *testing.T, bootstrap, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(bootstrap, ",")...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records on %s", len(recs), n, topic)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		recs = append(recs, fs.Records()...)
	}
	// The slot was confirmed past the changes, so Kafka holds every record
	// they produced: one more would arrive at once.
	more, cancelMore := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancelMore()
	recs = append(recs, cl.PollFetches(more).Records()...)
	return recs
}
