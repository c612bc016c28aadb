// Package kafkaclustertest starts an embedded Kafka cluster (kafkacluster)
// for one test. It is apart from kafkacluster so that the dev binary, which
// runs a cluster, does not link the testing package, and apart from
// kafkatest because kafkacluster's own tests import kafkatest.
package kafkaclustertest

import (
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
)

// Start starts a cluster with opts on free loopback ports and closes it when
// the test ends. It fails the test if the cluster does not start, and
// reports an error if closing it fails (with Options.DataDir: its state was
// not saved).
func Start(t testing.TB, opts kafkacluster.Options) *kafkacluster.Cluster {
	t.Helper()
	kc, err := kafkacluster.Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("start kafka: %v", err)
	}
	t.Cleanup(func() {
		if err := kc.Close(); err != nil {
			t.Errorf("close kafka: %v", err)
		}
	})
	return kc
}
