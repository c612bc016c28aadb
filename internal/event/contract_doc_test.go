package event_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kit/contractdoc"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// contractDoc is the contract document, relative to this package.
const contractDoc = "../../docs/EVENT-CONTRACT.md"

// defaultPartitions is KAFKA_TOPIC_PARTITIONS's default (README,
// Configuration): the partition count of the topics the examples were read
// from.
const defaultPartitions = 6

// Every example record of docs/EVENT-CONTRACT.md is byte for byte what the
// engines emit for the payload the product writes: the payload built by
// the event's constructor from the example's fields, inserted into the
// outbox and printed by Postgres as the jsonb text the engines send
// (StringConverter). Its topic, key and partition are the ones the contract
// gives the message.
func TestContractExamplesAreJSONBText(t *testing.T) {
	recs, err := contractdoc.Records(contractDoc)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	db, _ := pgtest.NewDB(t)
	for _, r := range recs {
		typ, _ := r.Header(event.HeaderEventType)
		t.Run(fmt.Sprintf("line %d %s", r.Line, typ), func(t *testing.T) {
			seen[typ] = true
			msg, err := contractdoc.Message(r)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := db.BeginTx(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback() }()
			var text string
			if err := tx.QueryRowContext(t.Context(), `INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)
				VALUES ($1, $2, $3, $4, $5) RETURNING payload::text`,
				msg.ID, msg.AggregateType, msg.AggregateID, msg.Type, []byte(msg.Payload)).Scan(&text); err != nil {
				t.Fatalf("insert the outbox row: %v", err)
			}
			if text != r.Value {
				t.Errorf("value in the document:\n  %s\nwhat the engines emit (jsonb text):\n  %s", r.Value, text)
			}
			if r.Topic != msg.Topic() || r.Key != msg.AggregateID {
				t.Errorf("topic %s key %s in the document; the message goes to %s with key %s", r.Topic, r.Key, msg.Topic(), msg.AggregateID)
			}
			if want := kafkatest.Partition([]byte(r.Key), defaultPartitions); r.Partition != want {
				t.Errorf("partition %d in the document; murmur2 of key %q among %d partitions is %d", r.Partition, r.Key, defaultPartitions, want)
			}
		})
	}
	for _, typ := range event.Types() {
		if !seen[typ] {
			t.Errorf("docs/EVENT-CONTRACT.md has no example record of %s", typ)
		}
	}
}

// The rules docs/EVENT-CONTRACT.md ("The value's bytes") states for jsonb's
// text, as Postgres applies them.
func TestJSONBTextRules(t *testing.T) {
	db, _ := pgtest.NewDB(t)
	for _, c := range []struct{ rule, in, want string }{
		{"keys by length, then bytewise", `{"userId":1,"b":2,"a":3,"items":[]}`, `{"a": 3, "b": 2, "items": [], "userId": 1}`},
		{"separators", `[1,{"k":[2,3]}]`, `[1, {"k": [2, 3]}]`},
		{"a duplicate key keeps its last value", `{"k":1,"k":2}`, `{"k": 2}`},
		{"numeric text", `[1.50, 1e2, -0.0]`, `[1.50, 100, 0.0]`},
		{"non-ASCII as UTF-8", `{"s":"\u00e9\u00df"}`, `{"s": "éß"}`},
		{"null kept", `{"a":null}`, `{"a": null}`},
	} {
		var got string
		if err := db.QueryRowContext(t.Context(), `SELECT $1::jsonb::text`, c.in).Scan(&got); err != nil {
			t.Fatalf("%s: %v", c.rule, err)
		}
		if got != c.want {
			t.Errorf("%s: %s prints as %s, want %s", c.rule, c.in, got, c.want)
		}
	}
}
