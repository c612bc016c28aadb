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

// A null header value (nil) is not an empty one.
func TestHeaderEqualAndString(t *testing.T) {
	for _, tc := range []struct {
		a, b  Header
		equal bool
		str   string
	}{
		{Header{"k", []byte("v")}, Header{"k", []byte("v")}, true, `k="v"`},
		{Header{"k", nil}, Header{"k", nil}, true, "k=null"},
		{Header{"k", []byte{}}, Header{"k", []byte{}}, true, `k=""`},
		{Header{"k", nil}, Header{"k", []byte{}}, false, "k=null"},
		{Header{"k", []byte("v")}, Header{"j", []byte("v")}, false, `k="v"`},
		{Header{"k", []byte("v")}, Header{"k", []byte("w")}, false, `k="v"`},
	} {
		if got := tc.a.Equal(tc.b); got != tc.equal {
			t.Errorf("%v.Equal(%v) = %v, want %v", tc.a, tc.b, got, tc.equal)
		}
		if got := tc.b.Equal(tc.a); got != tc.equal {
			t.Errorf("%v.Equal(%v) = %v, want %v", tc.b, tc.a, got, tc.equal)
		}
		if got := tc.a.String(); got != tc.str {
			t.Errorf("String() = %s, want %s", got, tc.str)
		}
	}
}
