package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/eventually"
)

// Every dashboard panel's query returns data from a real Prometheus that
// scrapes the running system after some payments: a dashboard that names a
// metric nobody exports fails here. Panels of the other CDC engine are
// exempt (their queries must still be valid). Against the compose stack
// (OUTBOXPAY_E2E_API_URL) it uses the stack's Prometheus, with Debezium.
func TestDashboardQueriesReturnData(t *testing.T) {
	s := e2eStack(t)
	prom := s.Prometheus
	if prom == "" {
		// The API's metrics are on dev's METRICS_ADDR, not the API's port.
		prom = startPrometheus(t, strings.TrimPrefix(s.Metrics, "http://"))
	}

	// Traffic for every panel: payments that complete, and a 4xx.
	detail := s.detailWithStock(t, 3, false)
	s.charge(t, 1, 3*detail.Price)
	var orders []int64
	for range 3 {
		o := s.order(t, 1, detail.ID, 1)
		s.pay(t, o, 1)
		orders = append(orders, o)
	}
	s.do(t, 1, "GET", "/orders/999999999", nil, http.StatusNotFound, nil)
	for _, o := range orders {
		s.waitSettled(t, 1, o)
	}

	type query struct{ where, expr string }
	var required, exempt []query
	for file, d := range dashboards(t) {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				q := query{fmt.Sprintf("%s %q %s", file, p.Title, tg.RefID), tg.Expr}
				if (p.debeziumOnly() && !s.Debezium) || (p.embeddedOnly() && s.Debezium) {
					exempt = append(exempt, q)
				} else {
					required = append(required, q)
				}
			}
		}
	}
	// The alert rules' metrics must exist too.
	for _, name := range alertMetrics(t) {
		required = append(required, query{"alerts.yml " + name, fmt.Sprintf("count({__name__=%q})", name)})
	}
	if len(required) == 0 {
		t.Fatal("no panel queries")
	}

	for _, q := range exempt {
		if _, err := promQuery(prom, q.expr); err != nil {
			t.Errorf("%s: %v", q.where, err)
		}
	}
	pending := required
	eventually.True(t, 3*time.Minute, "every panel query returns data", func() (bool, error) {
		var still []query
		var errs []string
		for _, q := range pending {
			n, err := promQuery(prom, q.expr)
			if err != nil || n == 0 {
				still = append(still, q)
				errs = append(errs, fmt.Sprintf("%s: %d finite samples, %v\n\t%s", q.where, n, err, q.expr))
			}
		}
		pending = still
		return len(pending) == 0, fmt.Errorf("%d queries without data:\n%s", len(pending), strings.Join(errs, "\n"))
	})
}

// promQuery runs an instant query of a dashboard expression, with Grafana's
// interval variables replaced, and counts the finite samples it returns.
func promQuery(base, expr string) (int, error) {
	expr = strings.NewReplacer("$__rate_interval", "2m", "$__interval", "15s", "$__range", "5m").Replace(expr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string            `json:"resultType"`
			Result     []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("decode: %w", err)
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("prometheus: %s", body.Error)
	}
	finite := 0
	for _, r := range body.Data.Result {
		var sample struct {
			Value [2]any `json:"value"`
		}
		if err := json.Unmarshal(r, &sample); err != nil {
			return 0, err
		}
		v, err := strconv.ParseFloat(fmt.Sprint(sample.Value[1]), 64)
		if err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			finite++
		}
	}
	return finite, nil
}

// alertMetrics are the metric names the alert rules use.
func alertMetrics(t *testing.T) []string {
	t.Helper()
	var rules struct {
		Groups []struct {
			Rules []struct {
				Expr string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, filepath.Join(repoRoot, "dashboards", "alerts.yml"), &rules)
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, n := range regexp.MustCompile(`outboxpay_[a-z_]+`).FindAllString(r.Expr, -1) {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
	}
	return names
}

// startPrometheus runs Debian's prometheus, scraping target's /metrics every
// second, and returns its URL once it is ready.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus is needed (apt-get install prometheus; .ci/run does): %v", err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: outboxpay
    static_configs:
      - targets: [%q]
`, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	logs, exited := startUntilCleanup(t, cmd, false)
	base := "http://" + addr
	eventually.True(t, time.Minute, "prometheus scraping", func() (bool, error) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("prometheus exited: %v\n%s", err, logs)
		default:
		}
		n, err := promQuery(base, `up{job="outboxpay"} == 1`)
		return n == 1, err
	})
	return base
}
