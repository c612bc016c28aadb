package event

import (
	"regexp"
	"slices"
	"testing"
)

func TestTopicsAndDLQs(t *testing.T) {
	if got, want := Topics(), []string{"outbox.event.payment", "outbox.event.order"}; !slices.Equal(got, want) {
		t.Errorf("Topics() = %v, want %v", got, want)
	}
	if got, want := DLQTopics(), []string{"outbox.event.payment.dlq", "outbox.event.order.dlq"}; !slices.Equal(got, want) {
		t.Errorf("DLQTopics() = %v, want %v", got, want)
	}
	pattern := regexp.MustCompile(TopicPattern)
	for _, tc := range []struct {
		topic string
		match bool
	}{
		{"outbox.event.payment", true},
		{"outbox.event.order", true},
		{"outbox.event.anything_new", true},
		{"outbox.event.payment.dlq", false},
		{"outbox.event.", false},
		{"outboxXevent.order", false},
		{"other.outbox.event.order", false},
	} {
		if got := pattern.MatchString(tc.topic); got != tc.match {
			t.Errorf("TopicPattern matches %q: %v, want %v", tc.topic, got, tc.match)
		}
	}
	if got := Topic(AggregateOrder); got != "outbox.event.order" {
		t.Errorf("Topic(order) = %q", got)
	}
	if got := DLQTopic(Topic(AggregateOrder)); got != "outbox.event.order.dlq" {
		t.Errorf("DLQTopic = %q", got)
	}
}

func TestDLQHeader(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{HeaderDLQReason, true}, {HeaderDLQHandler, true}, {HeaderDLQTopic, true},
		{HeaderDLQPartition, true}, {HeaderDLQOffset, true}, {HeaderDLQTime, true},
		{HeaderID, false}, {HeaderEventType, false}, {"dlq.other", false},
	} {
		if got := DLQHeader(tc.key); got != tc.want {
			t.Errorf("DLQHeader(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
}
