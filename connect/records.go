package connect

import (
	"strconv"
	"strings"
	"time"

	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

// The records below are Debezium's own (not the router's): the Outbox Event
// Router passes them through unchanged, since their value schemas are not
// change-event envelopes (EventRouterDelegate.apply: SmtManager.isValidEnvelope
// wants a schema name ending in ".Envelope"), and the StringConverter writes
// each key and value as Kafka Connect's Struct.toString renders it:
// "Struct{" + the non-null fields as name=value, comma-separated, in schema
// order + "}".

// DebeziumVersion is source.version in Debezium's records: the 3.0 release
// the compose stack's quay.io/debezium/connect:3.0 image runs.
const DebeziumVersion = "3.0.8.Final"

// HeartbeatTopic is the topic Debezium writes its heartbeat records to:
// topic.heartbeat.prefix (default __debezium-heartbeat), topic.delimiter
// (default ".") and topic.prefix.
func (c Config) HeartbeatTopic() string { return kafkaclient.DebeziumHeartbeatPrefix + c.TopicPrefix }

// HeartbeatPartition is the partition Debezium's heartbeat records name
// (HeartbeatImpl.heartbeatRecord).
const HeartbeatPartition = 0

// HeartbeatRecord returns the heartbeat record Debezium writes at now
// (HeartbeatImpl): key Struct{serverName=<topic.prefix>}, value
// Struct{ts_ms=<now in epoch milliseconds>}, no headers, no timestamp (the
// producer stamps it).
func (c Config) HeartbeatRecord(now time.Time) Record {
	return Record{
		Topic: c.HeartbeatTopic(),
		Key:   []byte("Struct{serverName=" + c.TopicPrefix + "}"),
		Value: []byte("Struct{ts_ms=" + strconv.FormatInt(now.UnixMilli(), 10) + "}"),
	}
}

// LogicalMessage is a logical decoding message (pg_logical_emit_message)
// with what Debezium's source block says of it.
type LogicalMessage struct {
	Prefix        string
	Content       []byte
	Transactional bool
	// LSN is where the message was received (its XLogData start, which is
	// the message's LSN).
	LSN uint64
	// LastCommitLSN is the end of the last commit received before it (0:
	// none); a non-transactional message is its own commit, so Debezium
	// sets it to LSN.
	LastCommitLSN uint64
	// TxID is the transaction's id; Debezium has none for a
	// non-transactional message.
	TxID uint32
	// SourceTime is the commit time of the message's transaction or, for a
	// non-transactional one, of the last transaction received before it.
	SourceTime time.Time
}

// MessageRecord returns the record Debezium's PostgreSQL connector writes to
// MessageTopic for a captured logical decoding message processed at now
// (LogicalDecodingMessageMonitor with binary.handling.mode=bytes, the
// default, and provide.transaction.metadata=false): key
// Struct{prefix=<prefix>}, value
// Struct{op=m,ts_ms=<now>,source=Struct{...},message=Struct{prefix=<prefix>,content=<bytes>}}.
// The content is a java.nio.ByteBuffer, which renders as its class, position,
// limit and capacity, not its bytes. No headers, no timestamp.
func (c Config) MessageRecord(m LogicalMessage, now time.Time) Record {
	var v strings.Builder
	v.WriteString("Struct{op=m,ts_ms=")
	v.WriteString(strconv.FormatInt(now.UnixMilli(), 10))
	v.WriteString(",source=")
	c.writeSource(&v, m)
	v.WriteString(",message=Struct{prefix=")
	v.WriteString(m.Prefix)
	v.WriteString(",content=java.nio.HeapByteBuffer[pos=0 lim=")
	n := strconv.Itoa(len(m.Content))
	v.WriteString(n + " cap=" + n + "]}}")
	return Record{
		Topic: c.MessageTopic(),
		Key:   []byte("Struct{prefix=" + m.Prefix + "}"),
		Value: []byte(v.String()),
	}
}

// writeSource writes the source block of a message record
// (PostgresSourceInfoStructMaker): snapshot is absent while streaming
// (SnapshotRecord.FALSE is not put), schema and table are empty, txId only
// for a transactional message, xmin absent (xmin.fetch.interval.ms=0).
func (c Config) writeSource(v *strings.Builder, m LogicalMessage) {
	lsn := strconv.FormatUint(m.LSN, 10)
	t := m.SourceTime
	v.WriteString("Struct{version=" + DebeziumVersion + ",connector=postgresql,name=" + c.TopicPrefix)
	v.WriteString(",ts_ms=" + strconv.FormatInt(t.UnixMilli(), 10))
	v.WriteString(",db=" + c.Database.Name)
	lastCommit := "null" // Jackson's rendering of a null string
	if m.LastCommitLSN != 0 {
		lastCommit = `"` + strconv.FormatUint(m.LastCommitLSN, 10) + `"`
	}
	v.WriteString(`,sequence=[` + lastCommit + `,"` + lsn + `"]`)
	v.WriteString(",ts_us=" + strconv.FormatInt(t.UnixMicro(), 10))
	v.WriteString(",ts_ns=" + strconv.FormatInt(t.UnixNano(), 10))
	v.WriteString(",schema=,table=")
	if m.Transactional {
		v.WriteString(",txId=" + strconv.FormatUint(uint64(m.TxID), 10))
	}
	v.WriteString(",lsn=" + lsn + "}")
}
