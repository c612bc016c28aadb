package kafkaclustertest_test

import (
	"net"
	"strings"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
	"github.com/outboxpay/outboxpay/internal/kit/kafkaclustertest"
)

// The cluster answers on loopback while the test runs and is closed once the
// test has ended.
func TestStartClosesWhenTheTestEnds(t *testing.T) {
	var kc *kafkacluster.Cluster
	t.Run("uses", func(t *testing.T) {
		kc = kafkaclustertest.Start(t, kafkacluster.Options{})
		addr, _, _ := strings.Cut(kc.Bootstrap(), ",")
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			t.Errorf("bootstrap %s is not on loopback", kc.Bootstrap())
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial the running cluster: %v", err)
		}
		_ = conn.Close()
	})
	if err := kc.Stop(); err == nil {
		t.Error("Stop after the subtest ended succeeded; want the cluster closed")
	}
}
