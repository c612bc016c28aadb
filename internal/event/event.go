// Package event defines the event contract shared by every part of the
// system, and is the only place that states it: the outbox row an event is
// written as, the Kafka record a CDC engine makes of it, the topics, header
// names and dead-letter topics, the event types and their payloads.
//
// The contract: an outbox row (Message) of aggregate type T becomes exactly
// one Kafka record on topic Topic(T) ("outbox.event.T"), keyed by the row's
// aggregate id (placed with murmur2, as Kafka's Java producer places keys),
// whose value is the payload JSON as Postgres prints the jsonb, with the
// headers HeaderID (the event id) and HeaderEventType (the type), and as
// timestamp the time, in milliseconds, at which the CDC engine processed the
// row (the reconciler: republished it), by its clock, as Debezium's
// EventRouter stamps the envelope's ts_ms; not the commit time. A record
// that a consumer group cannot handle goes to DLQTopic(topic)
// ("<topic>.dlq") with the DLQ headers beside its own; replay sends it back
// to the topic named by HeaderDLQTopic.
//
// It imports nothing of the project, so the API, the CDC engines and the
// consumers can all depend on it. docs/EVENT-CONTRACT.md describes the
// contract for readers, with examples.
package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// TopicPrefix is Debezium's default route.topic.replacement prefix: an event
// of aggregate type T goes to topic TopicPrefix+T.
const TopicPrefix = "outbox.event."

// Aggregate types, which route events to topics.
const (
	AggregatePayment = "payment"
	AggregateOrder   = "order"
)

// Event types (the outbox "type" column, the Kafka header "eventType").
const (
	TypePaymentCompleted = "PaymentCompleted"
	TypeOrderPaid        = "OrderPaid"
	TypePaymentRefunded  = "PaymentRefunded"
)

// Types returns every event type of the contract.
func Types() []string {
	return []string{TypePaymentCompleted, TypeOrderPaid, TypePaymentRefunded}
}

// Kafka header names carried by every record.
const (
	HeaderID        = "id"
	HeaderEventType = "eventType"
)

// TopicTemplate is the Outbox Event Router's route.topic.replacement: the
// topic of an event, with ${routedByValue} standing for its aggregate type.
const TopicTemplate = TopicPrefix + "${routedByValue}"

// Topic returns the Kafka topic of an aggregate type.
func Topic(aggregateType string) string { return TopicPrefix + aggregateType }

// Aggregates returns every aggregate type of the contract.
func Aggregates() []string { return []string{AggregatePayment, AggregateOrder} }

// Topics returns the topic of every aggregate type.
func Topics() []string {
	var topics []string
	for _, a := range Aggregates() {
		topics = append(topics, Topic(a))
	}
	return topics
}

// TopicPattern is a regular expression (librdkafka's subscription syntax:
// it starts with ^) matching every event topic and no dead-letter topic.
const TopicPattern = `^outbox\.event\.[^.]+$`

// DLQSuffix ends the name of a dead-letter topic.
const DLQSuffix = ".dlq"

// DLQTopic returns the dead-letter topic of a topic.
func DLQTopic(topic string) string { return topic + DLQSuffix }

// DLQTopics returns the dead-letter topic of every event topic: what replay
// reads by default.
func DLQTopics() []string {
	var dlqs []string
	for _, t := range Topics() {
		dlqs = append(dlqs, DLQTopic(t))
	}
	return dlqs
}

// DLQ headers, added beside a dead-lettered record's own.
const (
	HeaderDLQReason    = "dlq.reason"             // why the record could not be handled
	HeaderDLQHandler   = "dlq.handler"            // the consumer group that gave up
	HeaderDLQTopic     = "dlq.original.topic"     // where replay sends it back
	HeaderDLQPartition = "dlq.original.partition" // decimal
	HeaderDLQOffset    = "dlq.original.offset"    // decimal
	HeaderDLQTime      = "dlq.time"               // RFC 3339, UTC
)

// DLQHeader reports whether a header is one that dead-lettering adds.
func DLQHeader(key string) bool {
	switch key {
	case HeaderDLQReason, HeaderDLQHandler, HeaderDLQTopic, HeaderDLQPartition, HeaderDLQOffset, HeaderDLQTime:
		return true
	}
	return false
}

// Record is one Kafka record as a producer sends it: what a CDC engine (or
// the reconciler) makes of an outbox row, a dead-lettered record, a replayed
// one.
type Record struct {
	Topic     string
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
}

// Header is one Kafka record header. A nil Value is Kafka's null value
// (length -1), which is not an empty one.
type Header struct {
	Key   string
	Value []byte
}

// Equal reports whether h and o have the same key and value, a null value
// differing from an empty one.
func (h Header) Equal(o Header) bool {
	return h.Key == o.Key && (h.Value == nil) == (o.Value == nil) && bytes.Equal(h.Value, o.Value)
}

// String renders the header as key="value", or key=null for a null value.
func (h Header) String() string {
	if h.Value == nil {
		return h.Key + "=null"
	}
	return h.Key + "=" + strconv.Quote(string(h.Value))
}

// Message is one outbox row: what the API writes in its transaction and what
// a CDC engine turns into exactly one Kafka record.
type Message struct {
	ID            uuid.UUID
	AggregateType string
	AggregateID   string
	Type          string
	Payload       json.RawMessage
}

// Topic returns the Kafka topic the message is routed to.
func (m Message) Topic() string { return Topic(m.AggregateType) }

// PaymentCompleted is published when an order is paid. Key: userId.
type PaymentCompleted struct {
	PaymentID    int64     `json:"paymentId"`
	OrderID      int64     `json:"orderId"`
	UserID       int64     `json:"userId"`
	Amount       int64     `json:"amount"`
	BalanceAfter int64     `json:"balanceAfter"`
	PaidAt       time.Time `json:"paidAt"`
}

// OrderPaid is published with PaymentCompleted, for the stock handler. Key: orderId.
type OrderPaid struct {
	OrderID int64  `json:"orderId"`
	UserID  int64  `json:"userId"`
	Items   []Item `json:"items"`
}

// Item is one line of a paid order.
type Item struct {
	ProductDetailID int64 `json:"productDetailId"`
	Quantity        int   `json:"quantity"`
}

// PaymentRefunded is published when a paid order cannot be fulfilled. Key: userId.
type PaymentRefunded struct {
	PaymentID  int64     `json:"paymentId"`
	OrderID    int64     `json:"orderId"`
	UserID     int64     `json:"userId"`
	Amount     int64     `json:"amount"`
	Reason     string    `json:"reason"`
	RefundedAt time.Time `json:"refundedAt"`
}

// NewPaymentCompleted builds the outbox message of a completed payment.
func NewPaymentCompleted(p PaymentCompleted) (Message, error) {
	p.PaidAt = p.PaidAt.UTC()
	return newMessage(AggregatePayment, p.UserID, TypePaymentCompleted, p)
}

// NewOrderPaid builds the outbox message of a paid order.
func NewOrderPaid(p OrderPaid) (Message, error) {
	return newMessage(AggregateOrder, p.OrderID, TypeOrderPaid, p)
}

// NewPaymentRefunded builds the outbox message of a refund.
func NewPaymentRefunded(p PaymentRefunded) (Message, error) {
	p.RefundedAt = p.RefundedAt.UTC()
	return newMessage(AggregatePayment, p.UserID, TypePaymentRefunded, p)
}

func newMessage(aggregateType string, aggregateID int64, typ string, payload any) (Message, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return Message{}, fmt.Errorf("encode %s payload: %w", typ, err)
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return Message{}, fmt.Errorf("new %s event id: %w", typ, err)
	}
	return Message{
		ID:            id,
		AggregateType: aggregateType,
		AggregateID:   fmt.Sprint(aggregateID),
		Type:          typ,
		Payload:       b,
	}, nil
}

// Consumer groups: the handlers of the events, and the tracker that sees
// every event.
const (
	GroupStock         = "stock"
	GroupDataPlatform  = "data-platform"
	GroupOutboxTracker = "outbox-tracker"
)

// Handlers returns the consumer groups that must handle an event of the
// given type before its outbox row is COMPLETE. Unknown types have none.
func Handlers(eventType string) []string {
	switch eventType {
	case TypeOrderPaid:
		return []string{GroupStock}
	case TypePaymentCompleted, TypePaymentRefunded:
		return []string{GroupDataPlatform}
	}
	return nil
}
