package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadRaw reads the topics from their beginning with franz-go's kgo, a
// client that is not the one the project produces with, until it has at
// least want records or timeout passes (then the test fails). Records are
// as the broker holds them: a header's null value is a nil Value, an empty
// one a non-nil empty slice; the timestamp is the record's, in
// milliseconds.
func ReadRaw(t testing.TB, bootstrap string, topics []string, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatalf("kafkatest: new kgo client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []*kgo.Record
	for len(got) < want {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("kafkatest: %d of %d records read from %v in %v", len(got), want, topics, timeout)
		}
		var errs []error
		fetches.EachError(func(topic string, p int32, err error) {
			errs = append(errs, fmt.Errorf("%s/%d: %w", topic, p, err))
		})
		if err := errors.Join(errs...); err != nil {
			t.Logf("kafkatest: fetch errors (retrying): %v", err)
		}
		got = append(got, fetches.Records()...)
	}
	return got
}
