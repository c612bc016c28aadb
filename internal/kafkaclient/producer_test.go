package kafkaclient

import (
	"runtime"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/outboxpay/outboxpay/internal/event"
)

func TestProducerConfigMap(t *testing.T) {
	c := Config{Bootstrap: "127.0.0.1:9092"}.WithUser(ScramSHA512, "u", "p")
	cm := c.ProducerConfigMap(kafka.ConfigMap{"linger.ms": 0, "client.id": "x"})
	for k, want := range map[string]any{
		"bootstrap.servers":       "127.0.0.1:9092",
		"security.protocol":       "sasl_plaintext",
		"sasl.username":           "u",
		"enable.idempotence":      true,
		"acks":                    "all",
		"partitioner":             "murmur2_random",
		"message.max.bytes":       1048576,
		"enable.metrics.push":     false,
		"log.connection.close":    false,
		"go.events.channel.size":  100000,
		"go.produce.channel.size": 1000,
		"linger.ms":               0,   // extra wins
		"client.id":               "x", // extra added
	} {
		if got := cm[k]; got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	if again := c.ProducerConfigMap(nil); again["linger.ms"] != 5 {
		t.Errorf("extra leaked into the next map: linger.ms = %v", again["linger.ms"])
	}
}

// A producer made from ProducerConfigMap allocates a few MiB at most, not
// the 24 MiB of confluent-kafka-go's default Go channels.
func TestProducerHeap(t *testing.T) {
	cm := Config{Bootstrap: "127.0.0.1:1"}.ProducerConfigMap(nil)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	p.Close()
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Errorf("making a producer allocated %d MiB of Go heap, want at most 4", grew>>20)
	}
}

func TestMessage(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	rec := event.Record{Topic: "outbox.event.order", Key: []byte("42"), Value: []byte(`{}`), Timestamp: ts,
		Headers: []event.Header{{Key: event.HeaderID, Value: []byte("a")}, {Key: event.HeaderEventType, Value: []byte("b")}}}
	shared := "outbox.event.order"
	for _, tc := range []struct {
		name  string
		topic *string
	}{{"own topic", nil}, {"shared topic", &shared}} {
		t.Run(tc.name, func(t *testing.T) {
			m := Message(rec, tc.topic, 7)
			if *m.TopicPartition.Topic != rec.Topic || m.TopicPartition.Partition != kafka.PartitionAny {
				t.Errorf("topic partition %v", m.TopicPartition)
			}
			if tc.topic != nil && m.TopicPartition.Topic != tc.topic {
				t.Error("the shared topic pointer is not used")
			}
			if string(m.Key) != "42" || string(m.Value) != `{}` || !m.Timestamp.Equal(ts) ||
				m.TimestampType != kafka.TimestampCreateTime || m.Opaque != 7 {
				t.Errorf("message %+v", m)
			}
			if len(m.Headers) != 2 || m.Headers[0].Key != event.HeaderID || string(m.Headers[1].Value) != "b" {
				t.Errorf("headers %v", m.Headers)
			}
			if got := Headers(m.Headers); len(got) != 2 || got[1].Key != event.HeaderEventType {
				t.Errorf("Headers() = %v", got)
			}
		})
	}
	if m := Message(event.Record{Topic: "t"}, nil, nil); m.Headers != nil {
		t.Errorf("a record without headers got %v", m.Headers)
	}
}
