package contractdoc

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/outboxpay/outboxpay/internal/event"
)

func TestRecordsAndMessage(t *testing.T) {
	doc := strings.Join([]string{
		"# a document",
		"",
		"```text",
		"topic=outbox.event.order partition=3 offset=0 key=7 timestamp=x (CreateTime)",
		"  header id=a92ed702-3678-4231-b3f3-7edabb1ee539",
		"  header eventType=OrderPaid",
		`  value {"items": [], "userId": 2, "orderId": 7}`,
		"",
		"topic=outbox.event.payment partition=1 offset=0 key=2 without a value",
		"",
		"topic=outbox.event.payment partition=1 offset=0 key=2 timestamp=x (CreateTime)",
		"  header eventType=NoSuchType",
		`  value {"a": 1}`,
		"```",
	}, "\n")
	path := filepath.Join(t.TempDir(), "doc.md")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	recs, err := Records(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{
		{Line: 4, Topic: "outbox.event.order", Partition: 3, Key: "7", Value: `{"items": [], "userId": 2, "orderId": 7}`,
			Headers: []event.Header{{Key: "id", Value: []byte("a92ed702-3678-4231-b3f3-7edabb1ee539")}, {Key: "eventType", Value: []byte("OrderPaid")}}},
		{Line: 11, Topic: "outbox.event.payment", Partition: 1, Key: "2", Value: `{"a": 1}`,
			Headers: []event.Header{{Key: "eventType", Value: []byte("NoSuchType")}}},
	}
	if !reflect.DeepEqual(recs, want) {
		t.Fatalf("Records:\n%+v\nwant\n%+v", recs, want)
	}

	msg, err := Message(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	if msg.ID.String() != "a92ed702-3678-4231-b3f3-7edabb1ee539" || msg.Topic() != "outbox.event.order" || msg.AggregateID != "7" ||
		msg.Type != event.TypeOrderPaid || string(msg.Payload) != `{"orderId":7,"userId":2,"items":[]}` {
		t.Errorf("Message: %+v, payload %s", msg, msg.Payload)
	}
	if _, err := Message(recs[1]); err == nil {
		t.Error("Message of an unknown event type: no error")
	}
	unknownField := recs[0]
	unknownField.Value = `{"orderId": 7, "extra": 1}`
	if _, err := Message(unknownField); err == nil {
		t.Error("Message of a value with a field the payload lacks: no error")
	}
}
