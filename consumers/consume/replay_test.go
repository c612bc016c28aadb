package consume

import (
	"bytes"
	"slices"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

func TestReplayMessage(t *testing.T) {
	dlq := event.DLQTopic(event.Topic(event.AggregateOrder))
	own := []kafka.Header{{Key: event.HeaderID, Value: []byte("id")}, {Key: event.HeaderEventType, Value: []byte("OrderPaid")},
		{Key: "null"}, {Key: "empty", Value: []byte{}}}
	withDLQ := func(extra ...kafka.Header) []kafka.Header {
		hs := append([]kafka.Header{}, own...)
		hs = append(hs, kafka.Header{Key: event.HeaderDLQReason, Value: []byte("r")},
			kafka.Header{Key: event.HeaderDLQHandler, Value: []byte("stock")},
			kafka.Header{Key: event.HeaderDLQPartition, Value: []byte("1")},
			kafka.Header{Key: event.HeaderDLQOffset, Value: []byte("2")},
			kafka.Header{Key: event.HeaderDLQTime, Value: []byte("t")})
		return append(hs, extra...)
	}
	for _, tc := range []struct {
		name    string
		headers []kafka.Header
		topic   string
	}{
		{"original topic from its header", withDLQ(kafka.Header{Key: event.HeaderDLQTopic, Value: []byte("outbox.event.elsewhere")}), "outbox.event.elsewhere"},
		{"no header: the DLQ's name without its suffix", withDLQ(), event.Topic(event.AggregateOrder)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := kafkaclient.Message(ReplayRecord(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &dlq, Partition: 1, Offset: 5},
				Key: []byte("42"), Value: []byte(`{}`), Headers: tc.headers}), nil, nil)
			if got := *m.TopicPartition.Topic; got != tc.topic {
				t.Errorf("topic %q, want %q", got, tc.topic)
			}
			if m.TopicPartition.Partition != kafka.PartitionAny || string(m.Key) != "42" || string(m.Value) != `{}` {
				t.Errorf("message %v", m)
			}
			if !slices.EqualFunc(m.Headers, own, func(a, b kafka.Header) bool {
				return a.Key == b.Key && (a.Value == nil) == (b.Value == nil) && bytes.Equal(a.Value, b.Value)
			}) {
				t.Errorf("headers %v, want %v (a null value null, an empty one empty)", m.Headers, own)
			}
		})
	}
}
