package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
	"github.com/outboxpay/outboxpay/internal/kit/logtest"
)

// `outboxpay kafka` is a broker process that can be killed (SIGKILL, no
// shutdown) and started again on its data folder: the records Kafka
// acknowledged are all still there, and clients find it on the same ports.
func TestKafkaProcessKilledKeepsAcknowledgedRecords(t *testing.T) {
	dir := t.TempDir()
	var ports []string
	for range 3 {
		_, port, _ := strings.Cut(freeAddr(t), ":")
		ports = append(ports, port)
	}
	bootstrap := "127.0.0.1:" + strings.Join(ports, ",127.0.0.1:")
	// As chaos runs it: SASL/SCRAM with the product's users and ACLs.
	usersFile := filepath.Join(dir, "kafka-users")
	users, err := kafkaclient.EnsureUsers(usersFile, append([]string{kafkaclient.PrincipalAdmin}, kafkaclient.Principals()...)...)
	if err != nil {
		t.Fatal(err)
	}
	as := func(principal string) kafkaclient.Config {
		return kafkaclient.Config{Bootstrap: bootstrap}.WithUser(kafkaclient.EmbeddedMechanism, principal, users[principal])
	}
	start := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command(binary(t), "kafka")
		cmd.Env = append(os.Environ(), "DATA_DIR="+dir, "KAFKA_PORTS="+strings.Join(ports, ","), "KAFKA_USERS_FILE="+usersFile)
		logs := &logtest.Buffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		eventually.True(t, 30*time.Second, "kafka process serving", func() (bool, error) {
			return strings.Contains(logs.String(), "kafka 127.0.0.1:"), fmt.Errorf("log: %s", logs)
		})
		return cmd
	}
	cmd := start()

	const topic, n = "outbox.event.crashtest", 300
	cm := as(kafkaclient.PrincipalConnector).ConfigMap()
	for k, v := range (kafka.ConfigMap{"acks": "all", "enable.idempotence": true, "enable.metrics.push": false, "log.connection.close": false}) {
		cm[k] = v
	}
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	topicName := topic
	for i := range n {
		err := p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topicName, Partition: kafka.PartitionAny},
			Key: []byte(strconv.Itoa(i % 7)), Value: []byte(strconv.Itoa(i))}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	acked := 0
	for acked < n {
		select {
		case ev := <-p.Events():
			if m, ok := ev.(*kafka.Message); ok {
				if m.TopicPartition.Error != nil {
					t.Fatalf("produce: %v", m.TopicPartition.Error)
				}
				acked++
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d records acknowledged within 30s", acked, n)
		}
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	start()
	msgs := kafkatest.ReadAllAs(t, as(kafkaclient.PrincipalAdmin), []string{topic}, n, time.Minute)
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[string(m.Value)] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct records after the restart, want %d", len(seen), n)
	}
	if _, err := os.Stat(filepath.Join(dir, "kafka")); err != nil {
		t.Errorf("no data folder: %v", err)
	}

	// The users and ACLs are back too: a consumer group's principal still
	// cannot write an event topic.
	scm := as("stock").ConfigMap()
	scm["enable.metrics.push"], scm["message.timeout.ms"] = false, 10000
	stock, err := kafka.NewProducer(&scm)
	if err != nil {
		t.Fatal(err)
	}
	defer stock.Close()
	delivery := make(chan kafka.Event, 1)
	if err := stock.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topicName, Partition: kafka.PartitionAny},
		Value: []byte("forged")}, delivery); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-delivery:
		if m := ev.(*kafka.Message); m.TopicPartition.Error == nil ||
			m.TopicPartition.Error.(kafka.Error).Code() != kafka.ErrTopicAuthorizationFailed {
			t.Fatalf("stock producing to %s after the restart: %v, want %v", topic, m.TopicPartition.Error, kafka.ErrTopicAuthorizationFailed)
		}
	case <-time.After(time.Minute):
		t.Fatal("no delivery report within a minute")
	}
}

func TestKafkaProcessNeedsFixedPorts(t *testing.T) {
	code, _, stderr := run(t, []string{"DATA_DIR=" + t.TempDir(), "KAFKA_PORTS=0,0,0"}, "kafka")
	if code != 1 || !strings.Contains(stderr, "fixed ports") {
		t.Fatalf("exit %d, want 1 and an error about fixed ports\n%s", code, stderr)
	}
}
