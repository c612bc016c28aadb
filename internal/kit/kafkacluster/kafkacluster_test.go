package kafkacluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// wait bounds every wait on the cluster or a client in these tests.
const wait = 60 * time.Second

// testCtx returns a context that ends with the test or after wait.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	t.Cleanup(cancel)
	return ctx
}

// startCluster starts a cluster that the test closes when it ends.
func startCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	if opts.Logger == nil {
		// Not t.Output: kfake may log from its goroutines after the
		// test ends.
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	c, err := Start(testCtx(t), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// clientConfig is what every client of these tests sets: fast reconnects
// for the outage tests, no log line for each closed connection, and no
// KIP-714 metrics push (kfake accepts it; librdkafka logs each telemetry
// subscription).
func clientConfig(bootstrap string, extra kafka.ConfigMap) *kafka.ConfigMap {
	cfg := kafka.ConfigMap{
		"bootstrap.servers":        bootstrap,
		"reconnect.backoff.ms":     50,
		"reconnect.backoff.max.ms": 500,
		"log.connection.close":     false,
		"enable.metrics.push":      false,
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return &cfg
}

// newProducer returns the producer the CDC engine will use: idempotent,
// acks=all, Java-compatible key hashing.
func newProducer(t *testing.T, bootstrap string, extra kafka.ConfigMap) *kafka.Producer {
	t.Helper()
	cfg := kafka.ConfigMap{
		"enable.idempotence": true,
		"acks":               "all",
		"partitioner":        "murmur2_random",
		"linger.ms":          5,
	}
	for k, v := range extra {
		cfg[k] = v
	}
	p, err := kafka.NewProducer(clientConfig(bootstrap, cfg))
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// newConsumer returns a consumer in group, reading from the earliest
// offset, committing only when told.
func newConsumer(t *testing.T, bootstrap, group string, extra kafka.ConfigMap) *kafka.Consumer {
	t.Helper()
	cfg := kafka.ConfigMap{
		"group.id":              group,
		"auto.offset.reset":     "earliest",
		"enable.auto.commit":    false,
		"session.timeout.ms":    6000, // kfake's group.min.session.timeout.ms
		"heartbeat.interval.ms": 500,
		"fetch.wait.max.ms":     100,
	}
	for k, v := range extra {
		cfg[k] = v
	}
	c, err := kafka.NewConsumer(clientConfig(bootstrap, cfg))
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// subscribed is newConsumer subscribed to topic.
func subscribed(t *testing.T, bootstrap, group, topic string, extra kafka.ConfigMap) *kafka.Consumer {
	t.Helper()
	c := newConsumer(t, bootstrap, group, extra)
	if err := c.SubscribeTopics([]string{topic}, nil); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	return c
}

// checkTopic reads topic from the start as a new group and checks that it
// holds exactly recs (checkConsumed) and no more (checkRecordCount).
func checkTopic(t *testing.T, bootstrap, group, topic string, recs []record, partitions int32) {
	t.Helper()
	c := subscribed(t, bootstrap, group, topic, nil)
	checkConsumed(t, recs, consume(t, c, len(recs)), partitions)
	checkRecordCount(t, c, topic, partitions, int64(len(recs)))
}

func newAdmin(t *testing.T, bootstrap string) *kafka.AdminClient {
	t.Helper()
	a, err := kafka.NewAdminClient(clientConfig(bootstrap, nil))
	if err != nil {
		t.Fatalf("NewAdminClient: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

// record is a record to produce, shaped like an outbox event.
type record struct {
	key, value string
	headers    []kafka.Header
	ts         time.Time
}

// makeRecords returns n records over keys aggregate-0..aggregate-(keys-1),
// each with a unique id header and value and an explicit timestamp.
func makeRecords(from, n, keys int) []record {
	base := time.UnixMilli(1_700_000_000_000)
	recs := make([]record, n)
	for i := range recs {
		id := from + i
		recs[i] = record{
			key:   fmt.Sprintf("aggregate-%d", id%keys),
			value: fmt.Sprintf(`{"seq":%d}`, id),
			headers: []kafka.Header{
				{Key: "id", Value: []byte(fmt.Sprintf("event-%d", id))},
				{Key: "type", Value: []byte("PaymentCompleted")},
				{Key: "empty", Value: []byte{}},
			},
			ts: base.Add(time.Duration(id) * time.Millisecond),
		}
	}
	return recs
}

// message returns rec as a message to produce to topic.
func (rec record) message(topic string) *kafka.Message {
	return &kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
		Key:            []byte(rec.key),
		Value:          []byte(rec.value),
		Headers:        rec.headers,
		Timestamp:      rec.ts,
	}
}

// produceAsync produces recs to topic, reporting deliveries on the
// returned channel.
func produceAsync(t *testing.T, p *kafka.Producer, topic string, recs []record) chan kafka.Event {
	t.Helper()
	delivery := make(chan kafka.Event, len(recs))
	for _, rec := range recs {
		if err := p.Produce(rec.message(topic), delivery); err != nil {
			t.Fatalf("Produce: %v", err)
		}
	}
	return delivery
}

// awaitDeliveries waits for n successful delivery reports. They come in
// per partition, so in produce order only within a partition.
func awaitDeliveries(t *testing.T, delivery chan kafka.Event, n int) []*kafka.Message {
	t.Helper()
	timeout := time.After(wait)
	msgs := make([]*kafka.Message, 0, n)
	for len(msgs) < n {
		select {
		case ev := <-delivery:
			m, ok := ev.(*kafka.Message)
			if !ok {
				t.Fatalf("delivery report: unexpected event %T: %v", ev, ev)
			}
			if err := m.TopicPartition.Error; err != nil {
				t.Fatalf("delivery of %s: %v", m.Key, err)
			}
			msgs = append(msgs, m)
		case <-timeout:
			t.Fatalf("%d of %d deliveries after %s", len(msgs), n, wait)
		}
	}
	return msgs
}

// produce produces recs to topic and waits until all are acknowledged.
func produce(t *testing.T, p *kafka.Producer, topic string, recs []record) []*kafka.Message {
	t.Helper()
	return awaitDeliveries(t, produceAsync(t, p, topic, recs), len(recs))
}

// awaitError waits for the client to report an error with code.
func awaitError(t *testing.T, events chan kafka.Event, code kafka.ErrorCode) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case ev := <-events:
			if err, ok := ev.(kafka.Error); ok && err.Code() == code {
				return
			}
		case <-timeout:
			t.Fatalf("no %v error after %s", code, wait)
		}
	}
}

// consume polls c until it has n messages.
func consume(t *testing.T, c *kafka.Consumer, n int) []*kafka.Message {
	t.Helper()
	deadline := time.Now().Add(wait)
	var msgs []*kafka.Message
	for len(msgs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d of %d messages after %s", len(msgs), n, wait)
		}
		switch ev := c.Poll(100).(type) {
		case *kafka.Message:
			if err := ev.TopicPartition.Error; err != nil {
				t.Fatalf("consume: %v", err)
			}
			msgs = append(msgs, ev)
		case kafka.Error:
			if ev.IsFatal() {
				t.Fatalf("consumer: %v", ev)
			}
			t.Logf("consumer: %v", ev)
		}
	}
	return msgs
}

// checkConsumed checks that got holds exactly recs, each intact (key,
// value, headers, timestamp) and on the partition murmur2 gives its key,
// and that records with the same key came in produce order.
func checkConsumed(t *testing.T, recs []record, got []*kafka.Message, partitions int32) {
	t.Helper()
	if len(got) != len(recs) {
		t.Fatalf("consumed %d messages, want %d", len(got), len(recs))
	}
	byValue := make(map[string]int, len(recs))
	for i, rec := range recs {
		byValue[rec.value] = i
	}
	lastByKey := make(map[string]int)
	for _, m := range got {
		i, ok := byValue[string(m.Value)]
		if !ok {
			t.Fatalf("unexpected or duplicate message %s=%s", m.Key, m.Value)
		}
		delete(byValue, string(m.Value))
		rec := recs[i]
		if string(m.Key) != rec.key {
			t.Errorf("message %s: key %q, want %q", m.Value, m.Key, rec.key)
		}
		if want := kafkatest.Partition([]byte(rec.key), int(partitions)); m.TopicPartition.Partition != want {
			t.Errorf("key %s: partition %d, want murmur2 partition %d", rec.key, m.TopicPartition.Partition, want)
		}
		if m.TimestampType != kafka.TimestampCreateTime || !m.Timestamp.Equal(rec.ts) {
			t.Errorf("message %s: timestamp %v (%v), want %v (CreateTime)", m.Value, m.Timestamp, m.TimestampType, rec.ts)
		}
		if !sameHeaders(m.Headers, rec.headers) {
			t.Errorf("message %s: headers %v, want %v", m.Value, m.Headers, rec.headers)
		}
		if last, ok := lastByKey[rec.key]; ok && i < last {
			t.Errorf("key %s: record %d consumed after record %d", rec.key, i, last)
		}
		lastByKey[rec.key] = i
	}
}

func sameHeaders(got, want []kafka.Header) bool {
	return slices.EqualFunc(got, want, func(a, b kafka.Header) bool {
		return a.Key == b.Key && bytes.Equal(a.Value, b.Value)
	})
}

// nextOffsets returns, per partition, the offset after the last of msgs.
func nextOffsets(msgs []*kafka.Message) map[int32]int64 {
	next := make(map[int32]int64)
	for _, m := range msgs {
		next[m.TopicPartition.Partition] = max(next[m.TopicPartition.Partition], int64(m.TopicPartition.Offset)+1)
	}
	return next
}

// checkGroupOffsets checks the group's committed offsets on topic's
// partitions through the admin API: want per partition, -1 (none) where
// want has none.
func checkGroupOffsets(t *testing.T, admin *kafka.AdminClient, group, topic string, partitions int32, want map[int32]int64) {
	t.Helper()
	var tps []kafka.TopicPartition
	for p := range partitions {
		tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p})
	}
	res, err := admin.ListConsumerGroupOffsets(testCtx(t), []kafka.ConsumerGroupTopicPartitions{{Group: group, Partitions: tps}})
	if err != nil {
		t.Fatalf("ListConsumerGroupOffsets: %v", err)
	}
	if len(res.ConsumerGroupsTopicPartitions) != 1 {
		t.Fatalf("ListConsumerGroupOffsets: %d groups, want 1", len(res.ConsumerGroupsTopicPartitions))
	}
	got := res.ConsumerGroupsTopicPartitions[0].Partitions
	if len(got) != int(partitions) {
		t.Fatalf("ListConsumerGroupOffsets: %d partitions, want %d", len(got), partitions)
	}
	for _, tp := range got {
		if tp.Error != nil {
			t.Errorf("committed offset of %s[%d]: %v", topic, tp.Partition, tp.Error)
			continue
		}
		w, ok := want[tp.Partition]
		if !ok {
			w = int64(kafka.OffsetInvalid)
		}
		if int64(tp.Offset) != w {
			t.Errorf("group %s committed %s[%d] = %v, want %d", group, topic, tp.Partition, tp.Offset, w)
		}
	}
}

// checkRecordCount checks that topic holds exactly n records, so no retry
// wrote a duplicate.
func checkRecordCount(t *testing.T, c *kafka.Consumer, topic string, partitions int32, n int64) {
	t.Helper()
	var total int64
	for p := range partitions {
		low, high, err := c.QueryWatermarkOffsets(topic, p, int(wait/time.Millisecond))
		if err != nil {
			t.Fatalf("QueryWatermarkOffsets %s[%d]: %v", topic, p, err)
		}
		total += high - low
	}
	if total != n {
		t.Errorf("topic %s holds %d records, want %d", topic, total, n)
	}
}

// ports returns the ports of c's bootstrap servers.
func ports(t *testing.T, c *Cluster) []int {
	t.Helper()
	var ps []int
	for addr := range strings.SplitSeq(c.Bootstrap(), ",") {
		p, err := portOf(addr)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

func TestStartOptions(t *testing.T) {
	t.Parallel()
	for _, opts := range []Options{
		{Brokers: -1},
		{Partitions: -1},
		{Brokers: 2, Ports: []int{1, 2, 3}},
		{Ports: []int{0}},
	} {
		if c, err := Start(t.Context(), opts); err == nil {
			_ = c.Close()
			t.Errorf("Start(%+v) succeeded, want an error", opts)
		}
	}

	c := startCluster(t, Options{Brokers: 1, Partitions: 5})
	if got := len(ports(t, c)); got != 1 {
		t.Errorf("Bootstrap %q: %d brokers, want 1", c.Bootstrap(), got)
	}
	// A taken port fails Start.
	if c2, err := Start(t.Context(), Options{Ports: ports(t, c)}); err == nil {
		_ = c2.Close()
		t.Errorf("Start on the taken port %v succeeded", ports(t, c))
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.Restart(t.Context()); err == nil {
		t.Error("Restart after Close succeeded")
	}
}

// TestProduceConsumeAdmin: an idempotent producer writes keyed records to
// an auto-created topic, a consumer group reads them back intact and
// commits, and the admin API sees the group and its offsets.
func TestProduceConsumeAdmin(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{})
	if got := len(ports(t, c)); got != 3 {
		t.Fatalf("Bootstrap %q: %d brokers, want 3", c.Bootstrap(), got)
	}
	const (
		topic      = "outbox.event.payment"
		group      = "payments-test"
		partitions = 3
	)
	recs := makeRecords(0, 60, 12)

	p := newProducer(t, c.Bootstrap(), nil)
	delivered := produce(t, p, topic, recs)
	for _, m := range delivered {
		if want := kafkatest.Partition(m.Key, int(partitions)); m.TopicPartition.Partition != want {
			t.Errorf("key %s delivered to partition %d, want murmur2 partition %d", m.Key, m.TopicPartition.Partition, want)
		}
	}
	want := nextOffsets(delivered)
	if len(want) != partitions {
		t.Errorf("records on %d partitions, want all %d", len(want), partitions)
	}

	admin := newAdmin(t, c.Bootstrap())
	desc, err := admin.DescribeTopics(testCtx(t), kafka.NewTopicCollectionOfTopicNames([]string{topic}))
	if err != nil {
		t.Fatalf("DescribeTopics: %v", err)
	}
	td := desc.TopicDescriptions[0]
	if td.Error.Code() != kafka.ErrNoError || len(td.Partitions) != partitions {
		t.Fatalf("topic %s: error %v, %d partitions, want %d", topic, td.Error, len(td.Partitions), partitions)
	}
	for _, pi := range td.Partitions {
		if len(pi.Replicas) != 3 || len(pi.Isr) != 3 {
			t.Errorf("partition %d: %d replicas, %d in sync, want 3 and 3", pi.Partition, len(pi.Replicas), len(pi.Isr))
		}
	}

	cons := subscribed(t, c.Bootstrap(), group, topic, nil)
	got := consume(t, cons, len(recs))
	checkConsumed(t, recs, got, partitions)
	if _, err := cons.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	topicName := topic
	var tps []kafka.TopicPartition
	for p := range int32(partitions) {
		tps = append(tps, kafka.TopicPartition{Topic: &topicName, Partition: p})
	}
	committed, err := cons.Committed(tps, int(wait/time.Millisecond))
	if err != nil {
		t.Fatalf("Committed: %v", err)
	}
	for _, tp := range committed {
		if int64(tp.Offset) != want[tp.Partition] {
			t.Errorf("Committed %s[%d] = %v, want %d", topic, tp.Partition, tp.Offset, want[tp.Partition])
		}
	}
	checkRecordCount(t, cons, topic, partitions, int64(len(recs)))

	groups, err := admin.ListConsumerGroups(testCtx(t))
	if err != nil || len(groups.Errors) > 0 {
		t.Fatalf("ListConsumerGroups: %v %v", err, groups.Errors)
	}
	if !slices.ContainsFunc(groups.Valid, func(g kafka.ConsumerGroupListing) bool { return g.GroupID == group }) {
		t.Errorf("ListConsumerGroups = %+v, want %s in it", groups.Valid, group)
	}
	groupDesc, err := admin.DescribeConsumerGroups(testCtx(t), []string{group})
	if err != nil {
		t.Fatalf("DescribeConsumerGroups: %v", err)
	}
	if gd := groupDesc.ConsumerGroupDescriptions[0]; gd.Error.Code() != kafka.ErrNoError ||
		gd.State != kafka.ConsumerGroupStateStable || len(gd.Members) != 1 {
		t.Errorf("group %s: error %v, state %v, %d members; want stable with 1 member", group, gd.Error, gd.State, len(gd.Members))
	}
	checkGroupOffsets(t, admin, group, topic, partitions, want)
}

// TestDataDirSurvivesRestart: with a DataDir, a closed cluster started
// again on the same folder and ports has its topics, records and committed
// offsets.
func TestDataDirSurvivesRestart(t *testing.T) {
	t.Parallel()
	const (
		topic      = "outbox.event.order"
		group      = "orders-test"
		partitions = 3
	)
	dir := t.TempDir()
	c1 := startCluster(t, Options{DataDir: dir})
	recs := makeRecords(0, 30, 7)
	p := newProducer(t, c1.Bootstrap(), nil)
	produce(t, p, topic, recs)
	p.Close()
	cons := subscribed(t, c1.Bootstrap(), group, topic, nil)
	got := consume(t, cons, len(recs))
	if _, err := cons.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := cons.Close(); err != nil {
		t.Fatalf("consumer Close: %v", err)
	}
	want := nextOffsets(got)
	if err := c1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	c2 := startCluster(t, Options{DataDir: dir, Ports: ports(t, c1)})
	if c2.Bootstrap() != c1.Bootstrap() {
		t.Errorf("Bootstrap after restart %q, want %q", c2.Bootstrap(), c1.Bootstrap())
	}
	admin := newAdmin(t, c2.Bootstrap())
	checkGroupOffsets(t, admin, group, topic, partitions, want)

	// A new group reads every record, intact.
	checkTopic(t, c2.Bootstrap(), "fresh", topic, recs, partitions)

	// The old group resumes after its committed offsets: it gets only
	// what is produced now, at the next offset.
	more := makeRecords(len(recs), 1, 7)
	p2 := newProducer(t, c2.Bootstrap(), nil)
	delivered := produce(t, p2, topic, more)
	if part := delivered[0].TopicPartition.Partition; int64(delivered[0].TopicPartition.Offset) != want[part] {
		t.Errorf("new record at %s[%d]@%v, want offset %d", topic, part, delivered[0].TopicPartition.Offset, want[part])
	}
	resumed := subscribed(t, c2.Bootstrap(), group, topic, nil)
	checkConsumed(t, more, consume(t, resumed, 1), partitions)
}

// TestDataDirSurvivesCrash: what a killed process leaves in DataDir (no
// orderly Close) holds the auto-created topic, its acknowledged records and
// the committed offsets.
func TestDataDirSurvivesCrash(t *testing.T) {
	t.Parallel()
	const (
		topic      = "outbox.event.crash"
		group      = "crash-test"
		partitions = 3
	)
	dir := t.TempDir()
	c1 := startCluster(t, Options{DataDir: dir})
	recs := makeRecords(0, 20, 5)
	p := newProducer(t, c1.Bootstrap(), nil)
	produce(t, p, topic, recs)
	cons := subscribed(t, c1.Bootstrap(), group, topic, nil)
	want := nextOffsets(consume(t, cons, len(recs)))
	if _, err := cons.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}

	// c1 still runs: the copy is the folder as a crash would leave it.
	crashed := filepath.Join(t.TempDir(), "kafka")
	if err := copyDir(dir, crashed); err != nil {
		t.Fatalf("copy data dir: %v", err)
	}
	c2 := startCluster(t, Options{DataDir: crashed})
	checkGroupOffsets(t, newAdmin(t, c2.Bootstrap()), group, topic, partitions, want)
	fresh := subscribed(t, c2.Bootstrap(), "fresh", topic, nil)
	checkConsumed(t, recs, consume(t, fresh, len(recs)), partitions)
}

// copyDir copies the regular files under src to dst.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o750)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			_ = out.Close()
			return err
		}
		return out.Close()
	})
}

// checkDial checks that every broker port accepts connections, or that
// none does.
func checkDial(t *testing.T, c *Cluster, accept bool) {
	t.Helper()
	for addr := range strings.SplitSeq(c.Bootstrap(), ",") {
		conn, err := net.DialTimeout("tcp", addr, wait)
		if err == nil {
			_ = conn.Close()
		}
		switch {
		case accept && err != nil:
			t.Errorf("dial %s: %v", addr, err)
		case !accept && !errors.Is(err, syscall.ECONNREFUSED):
			t.Errorf("dial %s: %v, want connection refused", addr, err)
		}
	}
}

// TestSetOfflineAndRestart: offline, the ports refuse connections, across a
// restart too; online again, they accept them at once. In memory, a
// restart starts an empty cluster.
func TestSetOfflineAndRestart(t *testing.T) {
	t.Parallel()
	c := startCluster(t, Options{})
	before := c.Bootstrap()
	checkDial(t, c, true)
	p, err := kafka.NewProducer(clientConfig(c.Bootstrap(), kafka.ConfigMap{"enable.idempotence": true, "acks": "all"}))
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	produce(t, p, "before-restart", makeRecords(0, 1, 1))
	// Closed before the restart: a producer still running would ask for the
	// topic's metadata once the ports accept again, and the new cluster
	// would auto-create the topic.
	p.Close()

	if err := c.SetOffline(true); err != nil {
		t.Fatalf("SetOffline(true): %v", err)
	}
	checkDial(t, c, false)
	if err := c.Restart(testCtx(t)); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if c.Bootstrap() != before {
		t.Errorf("Bootstrap after Restart %q, want %q", c.Bootstrap(), before)
	}
	checkDial(t, c, false)
	if err := c.SetOffline(false); err != nil {
		t.Fatalf("SetOffline(false): %v", err)
	}
	checkDial(t, c, true)

	admin := newAdmin(t, c.Bootstrap())
	md, err := admin.GetMetadata(nil, true, int(wait/time.Millisecond))
	if err != nil {
		t.Fatalf("GetMetadata: %v", err)
	}
	if _, ok := md.Topics["before-restart"]; ok || len(md.Brokers) != 3 {
		t.Errorf("in-memory cluster after Restart: topics %v, %d brokers; want no topic, 3 brokers", md.Topics, len(md.Brokers))
	}
}

// TestOutageOffline: while the cluster is off the network the idempotent
// producer queues; back online, it delivers everything exactly once.
func TestOutageOffline(t *testing.T) {
	t.Parallel()
	const (
		topic      = "outbox.event.offline"
		partitions = 3
	)
	c := startCluster(t, Options{})
	p := newProducer(t, c.Bootstrap(), kafka.ConfigMap{"message.timeout.ms": int(wait / time.Millisecond)})
	recs := makeRecords(0, 20, 6)
	produce(t, p, topic, recs[:10])

	if err := c.SetOffline(true); err != nil {
		t.Fatalf("SetOffline(true): %v", err)
	}
	awaitError(t, p.Events(), kafka.ErrAllBrokersDown)
	delivery := produceAsync(t, p, topic, recs[10:])
	if len(delivery) != 0 {
		t.Fatalf("a record was delivered while offline: %v", <-delivery)
	}
	if err := c.SetOffline(false); err != nil {
		t.Fatalf("SetOffline(false): %v", err)
	}
	awaitDeliveries(t, delivery, 10)

	checkTopic(t, c.Bootstrap(), "offline-test", topic, recs, partitions)
}

// TestOutageStopRestart: the brokers stop (connection refused) and start
// again on the same ports and DataDir; the producer keeps its producer ID
// and sequence numbers across the restart and loses or duplicates nothing.
func TestOutageStopRestart(t *testing.T) {
	t.Parallel()
	const (
		topic      = "outbox.event.restart"
		partitions = 3
	)
	c := startCluster(t, Options{DataDir: t.TempDir()})
	p := newProducer(t, c.Bootstrap(), kafka.ConfigMap{"message.timeout.ms": int(wait / time.Millisecond)})
	recs := makeRecords(0, 20, 6)
	produce(t, p, topic, recs[:10])

	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := c.Fault(kfake.Fault{}); err == nil {
		t.Error("Fault on a stopped cluster succeeded")
	}
	awaitError(t, p.Events(), kafka.ErrAllBrokersDown)
	delivery := produceAsync(t, p, topic, recs[10:])
	if err := c.Restart(testCtx(t)); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	awaitDeliveries(t, delivery, 10)

	checkTopic(t, c.Bootstrap(), "restart-test", topic, recs, partitions)
}

// TestOutageFault: produce requests fail with a retriable error until the
// fault is removed; the producer retries and writes the record once.
func TestOutageFault(t *testing.T) {
	t.Parallel()
	const (
		topic      = "outbox.event.fault"
		partitions = 3
	)
	c := startCluster(t, Options{})
	p := newProducer(t, c.Bootstrap(), kafka.ConfigMap{"message.timeout.ms": int(wait / time.Millisecond)})
	recs := makeRecords(0, 2, 2)
	produce(t, p, topic, recs[:1])

	h, err := c.Fault(kfake.Fault{
		Keys:  []kmsg.Key{kmsg.Produce},
		Topic: topic,
		Err:   kerr.NotEnoughReplicas,
		Count: -1,
	})
	if err != nil {
		t.Fatalf("Fault: %v", err)
	}
	delivery := produceAsync(t, p, topic, recs[1:])
	if err := h.Wait(testCtx(t), 3); err != nil {
		t.Fatalf("waiting for 3 failed produce attempts: %v", err)
	}
	if len(delivery) != 0 {
		t.Fatalf("a record was delivered during the fault: %v", <-delivery)
	}
	h.Remove()
	awaitDeliveries(t, delivery, 1)

	checkTopic(t, c.Bootstrap(), "fault-test", topic, recs, partitions)
}

// TestCooperativeStickyGroup: two consumers with librdkafka's
// cooperative-sticky assignor share the partitions.
func TestCooperativeStickyGroup(t *testing.T) {
	t.Parallel()
	const (
		topic      = "outbox.event.coop"
		group      = "coop-test"
		partitions = 3
	)
	c := startCluster(t, Options{})
	recs := makeRecords(0, 30, 10)
	produce(t, newProducer(t, c.Bootstrap(), nil), topic, recs)

	extra := kafka.ConfigMap{"partition.assignment.strategy": "cooperative-sticky"}
	consumers := []*kafka.Consumer{
		newConsumer(t, c.Bootstrap(), group, extra),
		newConsumer(t, c.Bootstrap(), group, extra),
	}
	for _, cons := range consumers {
		if err := cons.SubscribeTopics([]string{topic}, nil); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
	}
	seen := make(map[string]bool)
	deadline := time.Now().Add(wait)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("partitions not shared by both consumers after %s", wait)
		}
		for _, cons := range consumers {
			if m, ok := cons.Poll(50).(*kafka.Message); ok && m.TopicPartition.Error == nil {
				seen[string(m.Value)] = true
			}
		}
		owned := make(map[int32]int)
		both := true
		for _, cons := range consumers {
			asg, err := cons.Assignment()
			if err != nil {
				t.Fatalf("Assignment: %v", err)
			}
			both = both && len(asg) > 0
			for _, tp := range asg {
				owned[tp.Partition]++
			}
		}
		if both && len(owned) == partitions && !slices.ContainsFunc(slices.Collect(maps.Values(owned)), func(n int) bool { return n > 1 }) &&
			len(seen) == len(recs) {
			break
		}
	}
}

// TestTransactions: a transactional producer aborts one transaction and
// commits another; a read_committed consumer sees the committed records
// only.
func TestTransactions(t *testing.T) {
	t.Parallel()
	const (
		topic      = "outbox.event.txn"
		partitions = 3
	)
	c := startCluster(t, Options{})
	p := newProducer(t, c.Bootstrap(), kafka.ConfigMap{"transactional.id": "txn-test"})
	ctx := testCtx(t)
	if err := p.InitTransactions(ctx); err != nil {
		t.Fatalf("InitTransactions: %v", err)
	}
	recs := makeRecords(0, 10, 4)
	inTxn := func(recs []record, commit bool) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatalf("BeginTransaction: %v", err)
		}
		delivery := produceAsync(t, p, topic, recs)
		if !commit {
			// Flush so that the records reach the log before the abort.
			awaitDeliveries(t, delivery, len(recs))
			if err := p.AbortTransaction(ctx); err != nil {
				t.Fatalf("AbortTransaction: %v", err)
			}
			return
		}
		if err := p.CommitTransaction(ctx); err != nil {
			t.Fatalf("CommitTransaction: %v", err)
		}
		awaitDeliveries(t, delivery, len(recs))
	}
	inTxn(recs[:5], false)
	inTxn(recs[5:], true)

	cons := subscribed(t, c.Bootstrap(), "txn-test", topic, kafka.ConfigMap{"isolation.level": "read_committed"})
	// The aborted records come first on their partitions (the keys are
	// the same), so a consumer that did not skip them would have
	// returned some among the first five.
	checkConsumed(t, recs[5:], consume(t, cons, 5), partitions)
	// They are in the log all the same, with a marker per transaction
	// and partition.
	var total int64
	for p := range int32(partitions) {
		low, high, err := cons.QueryWatermarkOffsets(topic, p, int(wait/time.Millisecond))
		if err != nil {
			t.Fatalf("QueryWatermarkOffsets: %v", err)
		}
		total += high - low
	}
	if total <= int64(len(recs)) {
		t.Errorf("topic %s holds %d offsets, want the %d records and the transaction markers", topic, total, len(recs))
	}
}
