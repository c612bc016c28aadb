package kafkaclient

import (
	"github.com/outboxpay/outboxpay/internal/event"
)

// The Kafka principals (SASL user names) of the product. Every cluster the
// product runs on, the embedded one and the compose stack's, has these users
// and the ACLs that ACLs returns.
const (
	// PrincipalAdmin is the superuser: it creates users, ACLs and topics,
	// and the test kits and chaos checker read with it.
	PrincipalAdmin = "admin"
	// PrincipalConnector is the CDC connector (the embedded engine, or
	// Debezium's Connect in compose): it writes the event topics.
	PrincipalConnector = "connector"
	// PrincipalReconciler is the reconciler (its republisher writes event
	// topics) with the lag exporter (it reads group offsets).
	PrincipalReconciler = "reconciler"
	// PrincipalReplay is the operator's DLQ replay tool.
	PrincipalReplay = "replay"
	// PrincipalKafkaUI is the read-only kafka-ui of the compose stack.
	PrincipalKafkaUI = "kafka-ui"
	// PrincipalOperator is the operator console (internal/ops): it reads
	// consumer lag and the DLQs, re-drives dead-lettered records (as the
	// replay tool's group) and publishes retried rows.
	PrincipalOperator = "operator"
)

// ReplayGroup is the consumer group of the DLQ replay tool
// (consume.ReplayGroup, which imports this package's value).
const ReplayGroup = "outboxpay-dlq-replay"

// Resource types of an ACL, as kafka-acls.sh names them.
const (
	ResourceTopic   = "topic"
	ResourceGroup   = "group"
	ResourceCluster = "cluster"
)

// Operations of an ACL, as kafka-acls.sh names them.
const (
	OpRead            = "Read"
	OpWrite           = "Write"
	OpCreate          = "Create"
	OpDescribe        = "Describe"
	OpDescribeConfigs = "DescribeConfigs"
	OpIdempotentWrite = "IdempotentWrite"
)

// ACL allows Principal (a user name, without "User:") Operation on a
// resource: the topic or group Name (literal, "*" for all, or a prefix when
// Prefixed), or the cluster (Name empty).
type ACL struct {
	Principal string
	Resource  string
	Name      string
	Prefixed  bool
	Operation string
}

// GroupTopics returns the topics consumer group reads (literal names; the
// outbox tracker reads every event topic, so its entry is the prefix), and
// whether its names are a prefix.
func GroupTopics(group string) (topics []string, prefixed bool) {
	switch group {
	case event.GroupStock:
		return []string{event.Topic(event.AggregateOrder)}, false
	case event.GroupDataPlatform:
		return []string{event.Topic(event.AggregatePayment)}, false
	case event.GroupOutboxTracker:
		return []string{event.TopicPrefix}, true
	}
	return nil, false
}

// ConsumerGroups are the product's consumer groups, each its own principal
// of the same name.
func ConsumerGroups() []string {
	return []string{event.GroupStock, event.GroupDataPlatform, event.GroupOutboxTracker}
}

// Principals returns every non-super principal of the product.
func Principals() []string {
	return append([]string{PrincipalConnector, PrincipalReconciler, PrincipalReplay, PrincipalKafkaUI, PrincipalOperator},
		ConsumerGroups()...)
}

// ACLs returns the ACLs of the product's principals: the one set the
// embedded cluster (dev, chaos) applies and the compose stack's kafka-init
// mirrors.
//
//   - connector: Write (and Create, for auto-created topics) on the event
//     topics (prefix outbox.event.) and on Debezium's heartbeat topics
//     (prefix __debezium-heartbeat.), IdempotentWrite on the cluster.
//   - reconciler: Write on the event topics (republisher); Describe on the
//     consumer groups and the event topics (lag exporter).
//   - each consumer group: Read on its topics and its group, Write on its
//     topics' DLQs.
//   - replay: Read on the DLQs and its group, Write on the event topics.
//   - operator: Read on the DLQs and the replay group (DLQ list, depth and
//     re-drive), Write on the event topics (retry, re-drive: which also
//     lets it describe them, for lag), IdempotentWrite on the cluster,
//     Describe on the consumer groups (lag).
//   - kafka-ui: Read and DescribeConfigs on the topics, Describe on the
//     groups and the cluster.
//
// The prefix outbox.event. also covers the DLQs (outbox.event.X.dlq):
// Kafka ACLs cannot exclude a suffix.
func ACLs() []ACL {
	prefix := event.TopicPrefix
	acls := []ACL{
		{PrincipalConnector, ResourceTopic, prefix, true, OpWrite},
		{PrincipalConnector, ResourceTopic, prefix, true, OpCreate},
		{PrincipalConnector, ResourceTopic, DebeziumHeartbeatPrefix, true, OpWrite},
		{PrincipalConnector, ResourceTopic, DebeziumHeartbeatPrefix, true, OpCreate},
		{PrincipalConnector, ResourceCluster, "", false, OpIdempotentWrite},

		{PrincipalReconciler, ResourceTopic, prefix, true, OpWrite},
		{PrincipalReconciler, ResourceCluster, "", false, OpIdempotentWrite},
	}
	for _, g := range ConsumerGroups() {
		acls = append(acls, ACL{PrincipalReconciler, ResourceGroup, g, false, OpDescribe})
	}
	for _, g := range ConsumerGroups() {
		topics, prefixed := GroupTopics(g)
		for _, t := range topics {
			acls = append(acls, ACL{g, ResourceTopic, t, prefixed, OpRead})
		}
		acls = append(acls, ACL{g, ResourceGroup, g, false, OpRead})
		dlqs := topics
		if prefixed { // a prefix: the DLQs of the known event topics
			dlqs = event.Topics()
		}
		for _, t := range dlqs {
			acls = append(acls, ACL{g, ResourceTopic, event.DLQTopic(t), false, OpWrite})
		}
	}
	for _, t := range event.DLQTopics() {
		acls = append(acls, ACL{PrincipalReplay, ResourceTopic, t, false, OpRead})
	}
	for _, t := range event.DLQTopics() {
		acls = append(acls, ACL{PrincipalOperator, ResourceTopic, t, false, OpRead})
	}
	acls = append(acls,
		ACL{PrincipalOperator, ResourceGroup, ReplayGroup, false, OpRead},
		ACL{PrincipalOperator, ResourceTopic, prefix, true, OpWrite},
		ACL{PrincipalOperator, ResourceCluster, "", false, OpIdempotentWrite},
	)
	for _, g := range ConsumerGroups() {
		acls = append(acls, ACL{PrincipalOperator, ResourceGroup, g, false, OpDescribe})
	}
	acls = append(acls,
		ACL{PrincipalReplay, ResourceGroup, ReplayGroup, false, OpRead},
		ACL{PrincipalReplay, ResourceTopic, prefix, true, OpWrite},

		ACL{PrincipalKafkaUI, ResourceTopic, "*", false, OpRead},
		ACL{PrincipalKafkaUI, ResourceTopic, "*", false, OpDescribeConfigs},
		ACL{PrincipalKafkaUI, ResourceGroup, "*", false, OpDescribe},
		ACL{PrincipalKafkaUI, ResourceCluster, "", false, OpDescribe},
		ACL{PrincipalKafkaUI, ResourceCluster, "", false, OpDescribeConfigs},
	)
	return acls
}

// Names the compose stack's Debezium Connect worker uses (docker-compose.yml).
const (
	ConnectWorkerGroup       = "outboxpay-connect"
	ConnectWorkerTopicPrefix = "outboxpay.connect."
)

// DebeziumHeartbeatPrefix starts the name of the topic both engines write
// heartbeat records to: topic.heartbeat.prefix (Debezium's default) and
// topic.delimiter, followed by topic.prefix.
const DebeziumHeartbeatPrefix = "__debezium-heartbeat."

// ConnectWorkerACLs returns what the compose stack's Debezium Connect worker
// needs as principal connector beyond ACLs: its config, offset and status
// topics (it creates them and checks their configs) and its worker group.
// The embedded engine needs none of it.
func ConnectWorkerACLs() []ACL {
	acls := []ACL{}
	for _, op := range []string{OpRead, OpWrite, OpCreate, OpDescribeConfigs} {
		acls = append(acls, ACL{PrincipalConnector, ResourceTopic, ConnectWorkerTopicPrefix, true, op})
	}
	return append(acls,
		ACL{PrincipalConnector, ResourceGroup, ConnectWorkerGroup, false, OpRead},
	)
}
