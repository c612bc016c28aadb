package connect

import (
	"testing"
	"time"
)

// Debezium's heartbeat and message records, as the StringConverter writes
// Kafka Connect's Struct.toString of them.
func TestDebeziumRecords(t *testing.T) {
	cfg, err := ParseConfig(shippedConfigChanged(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 1, 234567891, time.UTC)
	hb := cfg.HeartbeatRecord(now)
	if hb.Topic != "__debezium-heartbeat.outboxpay" || string(hb.Key) != "Struct{serverName=outboxpay}" ||
		string(hb.Value) != "Struct{ts_ms=1796040001234}" || hb.Headers != nil || !hb.Timestamp.IsZero() {
		t.Errorf("heartbeat record %+v: key %q value %q", hb, hb.Key, hb.Value)
	}

	commit := time.Date(2026, 11, 30, 11, 59, 0, 123456000, time.UTC)
	db := cfg.Database.Name
	cases := []struct {
		name string
		msg  LogicalMessage
		want string
	}{
		{"non-transactional", LogicalMessage{Prefix: "audit", Content: []byte("héllo"), LSN: 23456789, LastCommitLSN: 23456789, SourceTime: commit},
			"Struct{op=m,ts_ms=1796040001234,source=Struct{version=3.0.8.Final,connector=postgresql,name=outboxpay,ts_ms=1796039940123," +
				"db=" + db + `,sequence=["23456789","23456789"],ts_us=1796039940123456,ts_ns=1796039940123456000,schema=,table=,lsn=23456789},` +
				"message=Struct{prefix=audit,content=java.nio.HeapByteBuffer[pos=0 lim=6 cap=6]}}"},
		{"transactional", LogicalMessage{Prefix: "audit", Content: nil, Transactional: true, LSN: 300, LastCommitLSN: 200, TxID: 771, SourceTime: commit},
			"Struct{op=m,ts_ms=1796040001234,source=Struct{version=3.0.8.Final,connector=postgresql,name=outboxpay,ts_ms=1796039940123," +
				"db=" + db + `,sequence=["200","300"],ts_us=1796039940123456,ts_ns=1796039940123456000,schema=,table=,txId=771,lsn=300},` +
				"message=Struct{prefix=audit,content=java.nio.HeapByteBuffer[pos=0 lim=0 cap=0]}}"},
		{"no commit yet", LogicalMessage{Prefix: "p", Content: []byte("x"), Transactional: true, LSN: 300, TxID: 9, SourceTime: commit},
			"Struct{op=m,ts_ms=1796040001234,source=Struct{version=3.0.8.Final,connector=postgresql,name=outboxpay,ts_ms=1796039940123," +
				"db=" + db + `,sequence=[null,"300"],ts_us=1796039940123456,ts_ns=1796039940123456000,schema=,table=,txId=9,lsn=300},` +
				"message=Struct{prefix=p,content=java.nio.HeapByteBuffer[pos=0 lim=1 cap=1]}}"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := cfg.MessageRecord(c.msg, now)
			if rec.Topic != "outboxpay.message" || string(rec.Key) != "Struct{prefix="+c.msg.Prefix+"}" || rec.Headers != nil || !rec.Timestamp.IsZero() {
				t.Errorf("record %+v: key %q", rec, rec.Key)
			}
			if string(rec.Value) != c.want {
				t.Errorf("value\n got %s\nwant %s", rec.Value, c.want)
			}
		})
	}
}
