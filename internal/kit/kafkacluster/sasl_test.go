package kafkacluster

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

const (
	orderTopic   = "outbox.event.order"
	paymentTopic = "outbox.event.payment"
	orderDLQ     = "outbox.event.order.dlq"
)

// productSASL returns the product's users (a password each) and ACLs.
func productSASL() *SASL {
	s := &SASL{
		Mechanism:         kafkaclient.ScramSHA512,
		Superuser:         kafkaclient.PrincipalAdmin,
		SuperuserPassword: "admin-secret",
		Users:             map[string]string{},
		ACLs:              kafkaclient.ACLs(),
	}
	for _, p := range kafkaclient.Principals() {
		s.Users[p] = p + "-secret"
	}
	return s
}

// as returns the client settings of user with password on c, plus extra.
func as(c *Cluster, s *SASL, user, password string, extra kafka.ConfigMap) kafka.ConfigMap {
	kc := kafkaclient.Config{Bootstrap: c.Bootstrap()}
	if user != "" {
		kc = kc.WithUser(s.Mechanism, user, password)
	}
	cm := kc.ConfigMap()
	maps.Copy(cm, extra)
	return cm
}

// asUser is as with user's own password.
func asUser(c *Cluster, s *SASL, user string, extra kafka.ConfigMap) kafka.ConfigMap {
	pw := s.Users[user]
	if user == s.Superuser {
		pw = s.SuperuserPassword
	}
	return as(c, s, user, pw, extra)
}

// saslProducer returns a producer with settings cm whose undelivered
// records fail after 5 s.
func saslProducer(t *testing.T, cm kafka.ConfigMap) *kafka.Producer {
	t.Helper()
	cfg := kafka.ConfigMap{"acks": "all", "message.timeout.ms": 5000, "partitioner": "murmur2_random", "linger.ms": 5}
	maps.Copy(cfg, cm)
	p, err := kafka.NewProducer(clientConfig(cfg["bootstrap.servers"].(string), cfg))
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// saslConsumer returns a consumer in group with settings cm.
func saslConsumer(t *testing.T, cm kafka.ConfigMap, group string) *kafka.Consumer {
	t.Helper()
	cfg := kafka.ConfigMap{
		"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": false,
		"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "fetch.wait.max.ms": 100,
	}
	maps.Copy(cfg, cm)
	c, err := kafka.NewConsumer(clientConfig(cfg["bootstrap.servers"].(string), cfg))
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// produceOne produces one record and returns its delivery error.
func produceOne(t *testing.T, p *kafka.Producer, topic string) error {
	t.Helper()
	ch := produceAsync(t, p, topic, makeRecords(0, 1, 1))
	select {
	case ev := <-ch:
		m, ok := ev.(*kafka.Message)
		if !ok {
			t.Fatalf("delivery report: unexpected event %T", ev)
		}
		return m.TopicPartition.Error
	case <-time.After(wait):
		t.Fatalf("no delivery report after %s", wait)
		return nil
	}
}

// errCode returns the Kafka error code of err, or ErrNoError.
func errCode(err error) kafka.ErrorCode {
	if kerr, ok := err.(kafka.Error); ok {
		return kerr.Code()
	}
	return kafka.ErrNoError
}

// createTopics creates topics as the superuser.
func createTopics(t *testing.T, c *Cluster, s *SASL, topics ...string) {
	t.Helper()
	a, err := kafka.NewAdminClient(clientConfig(c.Bootstrap(), asUser(c, s, s.Superuser, nil)))
	if err != nil {
		t.Fatalf("NewAdminClient: %v", err)
	}
	defer a.Close()
	var specs []kafka.TopicSpecification
	for _, tp := range topics {
		specs = append(specs, kafka.TopicSpecification{Topic: tp, NumPartitions: 3, ReplicationFactor: 3})
	}
	res, err := a.CreateTopics(testCtx(t), specs)
	if err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	for _, r := range res {
		if r.Error.Code() != kafka.ErrNoError && r.Error.Code() != kafka.ErrTopicAlreadyExists {
			t.Fatalf("create %s: %v", r.Topic, r.Error)
		}
	}
}

// recordCount returns how many records topic holds, read as the superuser.
func recordCount(t *testing.T, c *Cluster, s *SASL, topic string) int64 {
	t.Helper()
	cons := saslConsumer(t, asUser(c, s, s.Superuser, nil), "count-"+topic)
	var n int64
	for p := int32(0); p < 3; p++ {
		lo, hi, err := cons.QueryWatermarkOffsets(topic, p, 10000)
		if err != nil {
			t.Fatalf("watermarks of %s[%d]: %v", topic, p, err)
		}
		n += hi - lo
	}
	return n
}

// awaitClientError polls c until it reports an error for which match is
// true, failing if a message arrives first.
func awaitClientError(t *testing.T, c *kafka.Consumer, match func(kafka.Error) bool) kafka.Error {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		switch ev := c.Poll(100).(type) {
		case *kafka.Message:
			if ev.TopicPartition.Error == nil {
				t.Fatalf("consumed %s[%d]@%d, want an error", *ev.TopicPartition.Topic, ev.TopicPartition.Partition, ev.TopicPartition.Offset)
			}
			if kerr, ok := ev.TopicPartition.Error.(kafka.Error); ok && match(kerr) {
				return kerr
			}
		case kafka.Error:
			if match(ev) {
				return ev
			}
		}
	}
	t.Fatalf("no matching error after %s", wait)
	return kafka.Error{}
}

func TestSASLAuthentication(t *testing.T) {
	s := productSASL()
	c := startCluster(t, Options{SASL: s, DataDir: t.TempDir()})
	createTopics(t, c, s, orderTopic)
	connector := saslProducer(t, asUser(c, s, kafkaclient.PrincipalConnector, nil))
	if err := produceOne(t, connector, orderTopic); err != nil {
		t.Fatalf("connector: %v", err)
	}

	cases := map[string]kafka.ConfigMap{
		"no SASL":        as(c, s, "", "", nil),
		"wrong password": as(c, s, kafkaclient.PrincipalConnector, "not-the-password", nil),
		"unknown user":   as(c, s, "mallory", "whatever", nil),
	}
	for name, cm := range cases {
		t.Run(name, func(t *testing.T) {
			p := saslProducer(t, cm)
			if err := produceOne(t, p, orderTopic); err == nil {
				t.Fatal("produce succeeded without valid credentials")
			}
			cons := saslConsumer(t, cm, "stock")
			if err := cons.Assign([]kafka.TopicPartition{{Topic: ptr(orderTopic), Partition: 0}, {Topic: ptr(orderTopic), Partition: 1},
				{Topic: ptr(orderTopic), Partition: 2}}); err != nil {
				t.Fatal(err)
			}
			// The broker answers nothing before authentication: no
			// metadata, so no fetch.
			if md, err := cons.GetMetadata(ptr(orderTopic), false, 5000); err == nil {
				t.Fatalf("metadata without valid credentials: %+v", md.Topics)
			}
			if ev := cons.Poll(0); ev != nil {
				if m, ok := ev.(*kafka.Message); ok && m.TopicPartition.Error == nil {
					t.Fatalf("consumed %s without valid credentials", m.TopicPartition)
				}
			}
		})
	}
	if n := recordCount(t, c, s, orderTopic); n != 1 {
		t.Fatalf("%s holds %d records, want 1", orderTopic, n)
	}
}

func ptr[T any](v T) *T { return &v }

// checkAuthorization checks the product's ACLs on a running cluster whose
// order topic holds no record yet: a consumer group's principal cannot
// write an event topic, the connector can (idempotently), and a group
// principal reads its topic and writes its DLQ but reads no other topic.
func checkAuthorization(t *testing.T, c *Cluster, s *SASL) {
	t.Helper()
	before := recordCount(t, c, s, orderTopic)

	// The forged-record attack: a consumer's principal writes an event.
	for _, group := range kafkaclient.ConsumerGroups() {
		p := saslProducer(t, asUser(c, s, group, nil))
		err := produceOne(t, p, orderTopic)
		if errCode(err) != kafka.ErrTopicAuthorizationFailed {
			t.Fatalf("%s producing to %s: got %v, want %v", group, orderTopic, err, kafka.ErrTopicAuthorizationFailed)
		}
	}
	if n := recordCount(t, c, s, orderTopic); n != before {
		t.Fatalf("%s holds %d records after denied writes, want %d", orderTopic, n, before)
	}

	connector := saslProducer(t, asUser(c, s, kafkaclient.PrincipalConnector, kafka.ConfigMap{"enable.idempotence": true}))
	if err := produceOne(t, connector, orderTopic); err != nil {
		t.Fatalf("connector producing to %s: %v", orderTopic, err)
	}
	reconciler := saslProducer(t, asUser(c, s, kafkaclient.PrincipalReconciler, kafka.ConfigMap{"enable.idempotence": true}))
	if err := produceOne(t, reconciler, orderTopic); err != nil {
		t.Fatalf("reconciler producing to %s: %v", orderTopic, err)
	}

	stock := saslConsumer(t, asUser(c, s, "stock", nil), "stock")
	if err := stock.Subscribe(orderTopic, nil); err != nil {
		t.Fatal(err)
	}
	if got := consume(t, stock, int(before)+2); len(got) != int(before)+2 {
		t.Fatalf("stock consumed %d records", len(got))
	}
	dlq := saslProducer(t, asUser(c, s, "stock", kafka.ConfigMap{"enable.idempotence": true}))
	if err := produceOne(t, dlq, orderDLQ); err != nil {
		t.Fatalf("stock producing to its DLQ %s: %v", orderDLQ, err)
	}

	// The operator's replay tool reads the DLQ in its group and writes
	// the event topic back.
	replay := saslConsumer(t, asUser(c, s, kafkaclient.PrincipalReplay, nil), kafkaclient.ReplayGroup)
	if err := replay.Subscribe(orderDLQ, nil); err != nil {
		t.Fatal(err)
	}
	if got := consume(t, replay, 1); len(got) != 1 {
		t.Fatalf("replay consumed %d records", len(got))
	}
	if _, err := replay.Commit(); err != nil {
		t.Fatalf("replay commit: %v", err)
	}
	redrive := saslProducer(t, asUser(c, s, kafkaclient.PrincipalReplay, kafka.ConfigMap{"enable.idempotence": true}))
	if err := produceOne(t, redrive, orderTopic); err != nil {
		t.Fatalf("replay producing to %s: %v", orderTopic, err)
	}

	// stock may not read the payment topic, nor use another group.
	other := saslConsumer(t, asUser(c, s, "stock", nil), "stock")
	if err := other.Subscribe(paymentTopic, nil); err != nil {
		t.Fatal(err)
	}
	awaitClientError(t, other, func(e kafka.Error) bool { return e.Code() == kafka.ErrTopicAuthorizationFailed })
	foreign := saslConsumer(t, asUser(c, s, "stock", nil), "data-platform")
	if err := foreign.Subscribe(orderTopic, nil); err != nil {
		t.Fatal(err)
	}
	awaitClientError(t, foreign, func(e kafka.Error) bool { return e.Code() == kafka.ErrGroupAuthorizationFailed })
}

func TestSASLAuthorization(t *testing.T) {
	s := productSASL()
	c := startCluster(t, Options{SASL: s, DataDir: t.TempDir()})
	createTopics(t, c, s, orderTopic, paymentTopic)
	checkAuthorization(t, c, s)
}

// TestSASLTopicCreation checks that a principal without Create cannot have
// a topic created for it, and that the connector can.
func TestSASLTopicCreation(t *testing.T) {
	s := productSASL()
	c := startCluster(t, Options{SASL: s, DataDir: t.TempDir()})

	stock := saslProducer(t, asUser(c, s, "stock", nil))
	if err := produceOne(t, stock, "junk"); err == nil {
		t.Fatal("stock produced to a topic of its own making")
	}
	if info := c.inst.kc.TopicInfo("junk"); info != nil {
		t.Fatalf("topic junk was created for stock")
	}
	connector := saslProducer(t, asUser(c, s, kafkaclient.PrincipalConnector, kafka.ConfigMap{"enable.idempotence": true}))
	if err := produceOne(t, connector, "outbox.event.newtype"); err != nil {
		t.Fatalf("connector producing to a new event topic: %v", err)
	}
}

// TestSASLRestart checks that users and ACLs survive a restart on the same
// DataDir, and that a restart applies changed passwords and ACLs.
func TestSASLRestart(t *testing.T) {
	s := productSASL()
	dir := t.TempDir()
	c := startCluster(t, Options{SASL: s, DataDir: dir})
	createTopics(t, c, s, orderTopic, paymentTopic)
	if err := c.Restart(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	checkAuthorization(t, c, s)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// New passwords and an ACL set without stock's DLQ write.
	s2 := productSASL()
	s2.Users[kafkaclient.PrincipalConnector] = "rotated"
	s2.ACLs = slices.DeleteFunc(slices.Clone(s2.ACLs), func(a kafkaclient.ACL) bool {
		return a.Principal == "stock" && a.Operation == kafkaclient.OpWrite
	})
	c2 := startCluster(t, Options{SASL: s2, DataDir: dir, Ports: c.opts.Ports})
	old := saslProducer(t, as(c2, s2, kafkaclient.PrincipalConnector, s.Users[kafkaclient.PrincipalConnector], nil))
	if err := produceOne(t, old, orderTopic); err == nil {
		t.Fatal("the connector's old password still works")
	}
	rotated := saslProducer(t, asUser(c2, s2, kafkaclient.PrincipalConnector, nil))
	if err := produceOne(t, rotated, orderTopic); err != nil {
		t.Fatalf("connector with its new password: %v", err)
	}
	dlq := saslProducer(t, asUser(c2, s2, "stock", nil))
	if err := produceOne(t, dlq, orderDLQ); errCode(err) != kafka.ErrTopicAuthorizationFailed {
		t.Fatalf("stock writing its DLQ after its ACL was dropped: got %v, want %v", err, kafka.ErrTopicAuthorizationFailed)
	}
}

func TestSASLOptionsValidated(t *testing.T) {
	base := productSASL
	cases := map[string]func(*SASL){
		"mechanism":      func(s *SASL) { s.Mechanism = "PLAIN" },
		"no superuser":   func(s *SASL) { s.SuperuserPassword = "" },
		"empty password": func(s *SASL) { s.Users["stock"] = "" },
		"unknown principal": func(s *SASL) {
			s.ACLs = append(s.ACLs, kafkaclient.ACL{Principal: "mallory", Resource: "topic", Name: "x", Operation: "Read"})
		},
		"unknown operation": func(s *SASL) {
			s.ACLs = append(s.ACLs, kafkaclient.ACL{Principal: "stock", Resource: "topic", Name: "x", Operation: "Steal"})
		},
		"cluster with name": func(s *SASL) {
			s.ACLs = append(s.ACLs, kafkaclient.ACL{Principal: "stock", Resource: "cluster", Name: "x", Operation: "Describe"})
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			s := base()
			mutate(s)
			c, err := Start(context.Background(), Options{SASL: s})
			if err == nil {
				_ = c.Close()
				t.Fatal("Start accepted invalid SASL options")
			}
			for _, pw := range s.Users {
				if pw != "" && strings.Contains(err.Error(), pw) {
					t.Fatalf("error %q contains a password", err)
				}
			}
		})
	}
}

// TestSASLRestartWhileOffline checks that a restart while offline does not
// wait for the network, and that users and ACLs hold once back online.
func TestSASLRestartWhileOffline(t *testing.T) {
	s := productSASL()
	c := startCluster(t, Options{SASL: s, DataDir: t.TempDir()})
	createTopics(t, c, s, orderTopic)
	if err := c.SetOffline(true); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetOffline(false); err != nil {
		t.Fatal(err)
	}
	connector := saslProducer(t, asUser(c, s, kafkaclient.PrincipalConnector, kafka.ConfigMap{"enable.idempotence": true}))
	if err := produceOne(t, connector, orderTopic); err != nil {
		t.Fatalf("connector after the restart: %v", err)
	}
	stock := saslProducer(t, asUser(c, s, "stock", nil))
	if err := produceOne(t, stock, orderTopic); errCode(err) != kafka.ErrTopicAuthorizationFailed {
		t.Fatalf("stock after the restart: got %v, want %v", err, kafka.ErrTopicAuthorizationFailed)
	}
}

// firstError reports the first result that carries a Kafka error code.
func TestFirstError(t *testing.T) {
	code := func(r kmsg.CreateACLsResponseResult) int16 { return r.ErrorCode }
	result := func(c int16) kmsg.CreateACLsResponseResult {
		r := kmsg.NewCreateACLsResponseResult()
		r.ErrorCode = c
		return r
	}
	for _, tc := range []struct {
		name    string
		results []kmsg.CreateACLsResponseResult
		want    error
	}{
		{"none", nil, nil},
		{"all fine", []kmsg.CreateACLsResponseResult{result(0), result(0)}, nil},
		{"the first error", []kmsg.CreateACLsResponseResult{result(0), result(kerr.SecurityDisabled.Code),
			result(kerr.ClusterAuthorizationFailed.Code)}, kerr.SecurityDisabled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := firstError(tc.results, code); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Errorf("firstError = %v, want %v", err, tc.want)
			}
		})
	}
}
