package consume

import (
	"strconv"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

// dlqMessage is the dead-letter record of r, which group gave up on at now
// for reason: r's key, value, timestamp and headers, and the DLQ headers.
func dlqMessage(r Record, group string, reason error, now time.Time) *kafka.Message {
	headers := append(kafkaclient.Headers(r.Headers),
		event.Header{Key: event.HeaderDLQReason, Value: []byte(reason.Error())},
		event.Header{Key: event.HeaderDLQHandler, Value: []byte(group)},
		event.Header{Key: event.HeaderDLQTopic, Value: []byte(r.Topic)},
		event.Header{Key: event.HeaderDLQPartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
		event.Header{Key: event.HeaderDLQOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
		event.Header{Key: event.HeaderDLQTime, Value: []byte(now.UTC().Format(time.RFC3339Nano))},
	)
	return kafkaclient.Message(event.Record{
		Topic: event.DLQTopic(r.Topic), Key: r.Key, Value: r.Value, Headers: headers, Timestamp: r.Timestamp,
	}, nil, nil)
}
