package api_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// httpSeries returns the series of the API's HTTP metrics in reg, failing
// the test if one has a label other than code, method and route.
func httpSeries(t *testing.T, reg prometheus.Gatherer) (n int, values []string) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if !strings.HasPrefix(mf.GetName(), "http_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			n++
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "code", "method", "route":
					values = append(values, l.GetValue())
				default:
					t.Errorf("%s has label %s=%q", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	return n, values
}

// The API's HTTP metrics (read from its registry: the API serves no
// /metrics, the process does on its own listener) have a number of series
// bounded by the routes, whatever clients send.
func TestHTTPMetricsCardinalityIsBounded(t *testing.T) {
	s := newServer(t)
	// With a token, so requests reach the routes' handlers.
	authorization := "Bearer " + s.token(s.newUser(0))
	// What a client chooses freely: the Host header, the path, the method.
	send := func(i int) {
		t.Helper()
		paths := []string{
			fmt.Sprintf("/no/such/%d", rand.Int64()),
			fmt.Sprintf("/products/%d", 1_000_000+rand.IntN(1_000_000)),
			"/healthz",
		}
		methods := []string{http.MethodGet, fmt.Sprintf("M%d", rand.Int64())}
		for _, path := range paths {
			for _, method := range methods {
				req, err := http.NewRequest(method, s.url+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Host = fmt.Sprintf("host-%d-%d.example", i, rand.Int64())
				req.Header.Set("Authorization", authorization)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
		}
	}
	send(-1)
	before, _ := httpSeries(t, s.reg)
	if before == 0 {
		t.Fatal("no HTTP metrics after the first requests")
	}
	for i := range 300 {
		send(i)
	}
	after, values := httpSeries(t, s.reg)
	if after != before {
		t.Errorf("300 requests with distinct hosts, paths and methods grew the HTTP series from %d to %d", before, after)
	}
	for _, v := range values {
		if strings.Contains(v, "example") || strings.Contains(v, "/no/") || strings.HasPrefix(v, "M") ||
			strings.ContainsAny(v, "0123456789") && strings.HasPrefix(v, "/") {
			t.Errorf("label value %q comes from the client", v)
		}
	}
}

// TestNoMetricsRoute: the API does not serve /metrics (the process serves
// it on METRICS_ADDR): with or without a token it is a 404 problem.
func TestNoMetricsRoute(t *testing.T) {
	s := newServer(t)
	for _, c := range []*server{s, s.as(s.newUser(0))} {
		p := c.mustDo(http.StatusNotFound, "GET", "/metrics", nil).problem(t)
		if p.Status != http.StatusNotFound || !strings.Contains(p.Detail, "no resource") {
			t.Errorf("GET /metrics: %+v", p)
		}
	}
}
