package event_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/outboxpay/outboxpay/internal/event"
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

// docRecord is one example record of the contract document.
type docRecord struct {
	line       int
	topic, key string
	partition  int
	eventType  string
	value      string
}

var (
	recordLine = regexp.MustCompile(`^topic=(\S+) partition=(\d+) offset=\d+ key=(\S+) `)
	typeLine   = regexp.MustCompile(`^  header eventType=(\S+)$`)
	valueLine  = regexp.MustCompile(`^  value (.*)$`)
)

// docRecords reads the example records of the contract document: a
// "topic=... partition=... key=..." line, its header lines and its
// "  value ..." line.
func docRecords(t *testing.T) []docRecord {
	t.Helper()
	raw, err := os.ReadFile(contractDoc)
	if err != nil {
		t.Fatal(err)
	}
	var recs []docRecord
	var cur *docRecord
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := recordLine.FindStringSubmatch(line); m != nil {
			p, _ := strconv.Atoi(m[2])
			cur = &docRecord{line: n, topic: m[1], partition: p, key: m[3]}
			continue
		}
		if cur == nil {
			continue
		}
		if m := typeLine.FindStringSubmatch(line); m != nil {
			cur.eventType = m[1]
		}
		if m := valueLine.FindStringSubmatch(line); m != nil {
			cur.value = m[1]
			recs = append(recs, *cur)
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// message builds the outbox message of an example with the product's
// constructor, from the example's fields; unknown fields fail.
func message(typ, value string) (event.Message, error) {
	dec := func(v any) error {
		d := json.NewDecoder(bytes.NewReader([]byte(value)))
		d.DisallowUnknownFields()
		return d.Decode(v)
	}
	switch typ {
	case event.TypePaymentCompleted:
		var p event.PaymentCompleted
		if err := dec(&p); err != nil {
			return event.Message{}, err
		}
		return event.NewPaymentCompleted(p)
	case event.TypeOrderPaid:
		var p event.OrderPaid
		if err := dec(&p); err != nil {
			return event.Message{}, err
		}
		return event.NewOrderPaid(p)
	case event.TypePaymentRefunded:
		var p event.PaymentRefunded
		if err := dec(&p); err != nil {
			return event.Message{}, err
		}
		return event.NewPaymentRefunded(p)
	}
	return event.Message{}, fmt.Errorf("unknown event type %q", typ)
}

// Every example record of docs/EVENT-CONTRACT.md is byte for byte what the
// engines emit for the payload the product writes: the payload built by
// the event's constructor from the example's fields, inserted into the
// outbox and printed by Postgres as the jsonb text the engines send
// (StringConverter). Its topic, key and partition are the ones the contract
// gives the message.
func TestContractExamplesAreJSONBText(t *testing.T) {
	recs := docRecords(t)
	seen := map[string]bool{}
	db, _ := pgtest.NewDB(t)
	for _, r := range recs {
		t.Run(fmt.Sprintf("line %d %s", r.line, r.eventType), func(t *testing.T) {
			seen[r.eventType] = true
			msg, err := message(r.eventType, r.value)
			if err != nil {
				t.Fatalf("build the %s of the example: %v", r.eventType, err)
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
			if text != r.value {
				t.Errorf("value in the document:\n  %s\nwhat the engines emit (jsonb text):\n  %s", r.value, text)
			}
			if r.topic != msg.Topic() || r.key != msg.AggregateID {
				t.Errorf("topic %s key %s in the document; the message goes to %s with key %s", r.topic, r.key, msg.Topic(), msg.AggregateID)
			}
			if want := kafkatest.Partition([]byte(r.key), defaultPartitions); int32(r.partition) != want {
				t.Errorf("partition %d in the document; murmur2 of key %q among %d partitions is %d", r.partition, r.key, defaultPartitions, want)
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
