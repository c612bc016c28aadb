package chaos

import (
	"slices"
	"strings"
	"testing"
)

func TestParseRecords(t *testing.T) {
	const page = `# HELP outboxpay_consumer_records_total Records handled, by outcome: ok, skipped, duplicate, dlq.
# TYPE outboxpay_consumer_records_total counter
outboxpay_consumer_records_total{group="stock",result="dlq"} 1
outboxpay_consumer_records_total{group="stock",result="duplicate"} 2
outboxpay_consumer_records_total{group="stock",result="ok"} 40
outboxpay_consumer_records_total{group="stock",result="skipped"} 7
outboxpay_consumer_records_total{group="stocks",result="ok"} 1000
outboxpay_consumer_retries_total{group="stock"} 5
`
	for _, tc := range []struct {
		group string
		want  share
	}{
		{"stock", share{OK: 40, All: 50}},
		{"data-platform", share{}},
	} {
		got, err := parseRecords(strings.NewReader(page), tc.group)
		if err != nil || got != tc.want {
			t.Errorf("parseRecords(%s) = %+v, %v; want %+v", tc.group, got, err, tc.want)
		}
	}
	if _, err := parseRecords(strings.NewReader(`outboxpay_consumer_records_total{group="stock",result="ok"} x`), "stock"); err == nil {
		t.Error("parseRecords of a bad value: no error")
	}
}

// A process's counters start again at 0 when it restarts: shares adds its
// lifetimes up.
func TestSharesAddUpRestarts(t *testing.T) {
	sh := newShares()
	for _, s := range []scrape{
		{gen: 1, share: share{OK: 5, All: 6}},
		{gen: 1, share: share{OK: 9, All: 10}},
		{gen: 2, share: share{OK: 2, All: 3}}, // restarted: 2 and 3 more
		{gen: 2, share: share{OK: 4, All: 4}},
	} {
		sh.add("consumer-stock-1", s)
	}
	sh.add("consumer-stock-2", scrape{gen: 1, share: share{OK: 1, All: 1}})
	got := sh.get()
	if want := (share{OK: 13, All: 14}); got["consumer-stock-1"] != want {
		t.Errorf("replica 1: %+v, want %+v", got["consumer-stock-1"], want)
	}
	if want := (share{OK: 1, All: 1}); got["consumer-stock-2"] != want {
		t.Errorf("replica 2: %+v, want %+v", got["consumer-stock-2"], want)
	}
}

func TestReplicaName(t *testing.T) {
	for _, tc := range []struct {
		i, n int
		want string
	}{
		{1, 0, "api"}, {1, 1, "api"}, {1, 2, "api-1"}, {2, 2, "api-2"},
	} {
		if got := replicaName("api", tc.i, tc.n); got != tc.want {
			t.Errorf("replicaName(api, %d, %d) = %q, want %q", tc.i, tc.n, got, tc.want)
		}
	}
}

// The kill faults find the replicas of the API and the consumers, and the
// one process of what is not replicated.
func TestReplicasOf(t *testing.T) {
	s := &system{cfg: Config{Replicas: 2}, procs: map[string]*proc{procConnect: nil, "api-1": nil, "api-2": nil}}
	for _, tc := range []struct {
		proc string
		want []string
	}{
		{procConnect, []string{procConnect}},
		{procAPI, []string{"api-1", "api-2"}},
	} {
		if got := s.replicasOf(tc.proc); !slices.Equal(got, tc.want) {
			t.Errorf("replicasOf(%s) = %v, want %v", tc.proc, got, tc.want)
		}
	}
}
