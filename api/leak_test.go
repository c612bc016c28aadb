package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// responses keeps every response body the API tests receive, and the
// secrets they must never contain; TestMain scans them after the tests.
type responses struct {
	mu      sync.Mutex
	seen    []seenResponse
	secrets map[string]bool
}

type seenResponse struct {
	test   string // the test that sent the request
	req    string // method and path
	status int
	body   []byte
}

// addSecretsOf records the password of a database URL, if it has one.
func (r *responses) addSecretsOf(dbURL string) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return
	}
	if pw, ok := u.User.Password(); ok && pw != "" {
		r.mu.Lock()
		if r.secrets == nil {
			r.secrets = map[string]bool{}
		}
		r.secrets[pw] = true
		r.mu.Unlock()
	}
}

// recorder is the outermost http.RoundTripper of the test client: it keeps
// a copy of every response body for the final scan.
type recorder struct {
	t    *testing.T
	into *responses
	next http.RoundTripper
}

func (rc *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rc.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := bufferBody(resp)
	if err != nil {
		return nil, err
	}
	rc.into.mu.Lock()
	rc.into.seen = append(rc.into.seen, seenResponse{
		test: rc.t.Name(), req: req.Method + " " + req.URL.RequestURI(), status: resp.StatusCode, body: body,
	})
	rc.into.mu.Unlock()
	return resp, nil
}

// leakPatterns are what no response body may contain: internal addresses,
// driver errors, SQL and stack traces. errorsOnly patterns apply to 4xx and
// 5xx bodies, where a detail could quote a failed statement or a balance.
var leakPatterns = []struct {
	name       string
	re         *regexp.Regexp
	errorsOnly bool
}{
	{"an IPv4 host:port", regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}:\d+`), false},
	{"a dial error", regexp.MustCompile(`dial tcp`), false},
	{"a lib/pq error", regexp.MustCompile(`pq:`), false},
	{"an SQLSTATE", regexp.MustCompile(`SQLSTATE`), false},
	{"a goroutine dump", regexp.MustCompile(`goroutine \d*`), false},
	{"a Go stack line", regexp.MustCompile(`\.go:\d+`), false},
	{"a balance figure", regexp.MustCompile(`(?i)\bbalance\W{0,3}\d`), true},
	{"SQL text", regexp.MustCompile(`(?is)\bSELECT\b.*\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\b.*\bSET\b|\bDELETE\s+FROM\b`), true},
}

// leaks returns what a response body gives away, empty when nothing.
func leaks(status int, body []byte, secrets map[string]bool) []string {
	var found []string
	for _, p := range leakPatterns {
		if p.errorsOnly && status < 400 {
			continue
		}
		if m := p.re.Find(body); m != nil {
			found = append(found, fmt.Sprintf("%s (%q)", p.name, m))
		}
	}
	for s := range secrets {
		if bytes.Contains(body, []byte(s)) {
			found = append(found, "the database password")
		}
	}
	sort.Strings(found)
	return found
}

// scan reports every response that leaks, naming its test and request.
func (r *responses) scan() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, s := range r.seen {
		if l := leaks(s.status, s.body, r.secrets); len(l) > 0 {
			fmt.Fprintf(&b, "%s: %s answered %d with %s: %s\n", s.test, s.req, s.status, strings.Join(l, ", "), s.body)
		}
	}
	if b.Len() > 0 {
		return fmt.Errorf("responses give away internal detail:\n%s", b.String())
	}
	return nil
}

// TestLeakScan proves the scan finds what it looks for, so a clean final
// scan means something.
func TestLeakScan(t *testing.T) {
	secrets := map[string]bool{"s3cr3t-pw": true}
	cases := []struct {
		name   string
		status int
		body   string
		leaks  bool
	}{
		{"clean problem", 409, `{"detail":"the balance does not cover the order total"}`, false},
		{"the cap", 409, `{"detail":"a balance may not exceed 1000000000000: balance limit exceeded"}`, false},
		{"a balance in a detail", 409, `{"detail":"balance 5000 is less than the order total 30000"}`, true},
		{"a balance field in a problem", 409, `{"detail":"x","balance":5000}`, true},
		{"clean balance", 200, `{"userId":1,"balance":5000}`, false},
		{"address", 503, `{"detail":"database unreachable: 127.0.0.1:42709"}`, true},
		{"dial", 500, `{"detail":"dial tcp: connect: connection refused"}`, true},
		{"pq", 500, `{"detail":"pq: relation \"users\" does not exist"}`, true},
		{"sqlstate", 500, `{"detail":"ERROR: boom (SQLSTATE 23514)"}`, true},
		{"select", 500, `{"detail":"SELECT balance FROM users WHERE id = $1"}`, true},
		{"insert", 400, `{"detail":"insert into payments failed"}`, true},
		{"update", 409, `{"detail":"UPDATE users SET balance = 1"}`, true},
		{"sql words in a success body", 200, `{"name":"select from the set"}`, false},
		{"goroutine", 500, `goroutine 7 [running]:`, true},
		{"stack line", 500, `/src/api/handlers.go:42 +0x1d`, true},
		{"password", 500, `{"detail":"password s3cr3t-pw"}`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := leaks(c.status, []byte(c.body), secrets)
			if (len(got) > 0) != c.leaks {
				t.Errorf("leaks(%d, %s) = %v, want leaks %v", c.status, c.body, got, c.leaks)
			}
		})
	}
}
