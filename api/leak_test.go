package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
)

// responses keeps every response body (and header) the API tests receive,
// and the secrets they must never contain, each with what it is; TestMain
// scans them after the tests.
type responses struct {
	mu      sync.Mutex
	seen    []seenResponse
	secrets map[string]string
}

type seenResponse struct {
	test   string // the test that sent the request
	req    string // method and path
	status int
	body   []byte
	header http.Header
}

// addSecret records secret, described by what; secrets shorter than 8
// bytes are too likely to occur by chance and are skipped.
func (r *responses) addSecret(secret, what string) {
	if len(secret) < 8 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.secrets == nil {
		r.secrets = map[string]string{}
	}
	r.secrets[secret] = what
}

// addSecretsOf records the password of a database URL, if it has one.
func (r *responses) addSecretsOf(dbURL string) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return
	}
	if pw, ok := u.User.Password(); ok && pw != "" {
		r.addSecret(pw, "the database password")
	}
}

// addKeyFile records a signing key's PEM file: the base64 of the key and
// each of its lines.
func (r *responses) addKeyFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	r.addSecret(base64.StdEncoding.EncodeToString(block.Bytes), "the signing key")
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "-----") {
			r.addSecret(strings.TrimSpace(line), "the signing key")
		}
	}
}

// addAuthorization records what a request's Authorization header carries:
// the header itself, the credentials after the scheme and, for a JWT, its
// signature.
func (r *responses) addAuthorization(header string) {
	if header == "" {
		return
	}
	r.addSecret(header, "the Authorization header")
	_, cred, _ := strings.Cut(header, " ")
	r.addSecret(cred, "a token")
	if parts := strings.Split(cred, "."); len(parts) == 3 {
		r.addSecret(parts[2], "a token's signature")
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
	rc.into.addAuthorization(req.Header.Get("Authorization"))
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
		header: resp.Header.Clone(),
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

// leaks returns what a response gives away, empty when nothing: its body
// must match no pattern, its body and header hold no secret.
func leaks(status int, body []byte, header http.Header, secrets map[string]string) []string {
	var found []string
	for _, p := range leakPatterns {
		if p.errorsOnly && status < 400 {
			continue
		}
		if m := p.re.Find(body); m != nil {
			found = append(found, fmt.Sprintf("%s (%q)", p.name, m))
		}
	}
	var headers strings.Builder
	for name, values := range header {
		fmt.Fprintf(&headers, "%s: %s\n", name, strings.Join(values, ", "))
	}
	for s, what := range secrets {
		if bytes.Contains(body, []byte(s)) {
			found = append(found, what)
		}
		if strings.Contains(headers.String(), s) {
			found = append(found, what+" in a header")
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
		if l := leaks(s.status, s.body, s.header, r.secrets); len(l) > 0 {
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
	const token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
	var r responses
	r.addSecret("s3cr3t-pw", "the database password")
	r.addAuthorization("Bearer " + token)
	cases := []struct {
		name   string
		status int
		body   string
		header http.Header
		leaks  bool
	}{
		{"clean problem", 409, `{"detail":"the balance does not cover the order total"}`, nil, false},
		{"the cap", 409, `{"detail":"a balance may not exceed 1000000000000: balance limit exceeded"}`, nil, false},
		{"a balance in a detail", 409, `{"detail":"balance 5000 is less than the order total 30000"}`, nil, true},
		{"a balance field in a problem", 409, `{"detail":"x","balance":5000}`, nil, true},
		{"clean balance", 200, `{"userId":1,"balance":5000}`, nil, false},
		{"address", 503, `{"detail":"database unreachable: 127.0.0.1:42709"}`, nil, true},
		{"dial", 500, `{"detail":"dial tcp: connect: connection refused"}`, nil, true},
		{"pq", 500, `{"detail":"pq: relation \"users\" does not exist"}`, nil, true},
		{"sqlstate", 500, `{"detail":"ERROR: boom (SQLSTATE 23514)"}`, nil, true},
		{"select", 500, `{"detail":"SELECT balance FROM users WHERE id = $1"}`, nil, true},
		{"insert", 400, `{"detail":"insert into payments failed"}`, nil, true},
		{"update", 409, `{"detail":"UPDATE users SET balance = 1"}`, nil, true},
		{"sql words in a success body", 200, `{"name":"select from the set"}`, nil, false},
		{"goroutine", 500, `goroutine 7 [running]:`, nil, true},
		{"stack line", 500, `/src/api/handlers.go:42 +0x1d`, nil, true},
		{"password", 500, `{"detail":"password s3cr3t-pw"}`, nil, true},
		{"a token in a body", 401, `{"detail":"token ` + token + ` is not valid"}`, nil, true},
		{"a token's signature in a body", 200, `{"name":"c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"}`, nil, true},
		{"a token in a header", 401, `{"detail":"the bearer token is not valid"}`,
			http.Header{"Www-Authenticate": {`Bearer error_description="` + token + `"`}}, true},
		{"a clean challenge", 401, `{"detail":"the bearer token is not valid"}`,
			http.Header{"Www-Authenticate": {`Bearer realm="outboxpay", error="invalid_token"`}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := leaks(c.status, []byte(c.body), c.header, r.secrets)
			if (len(got) > 0) != c.leaks {
				t.Errorf("leaks(%d, %s, %v) = %v, want leaks %v", c.status, c.body, c.header, got, c.leaks)
			}
		})
	}
}

// TestLeakScanKnowsTheSigningKey: the scan looks for the test issuer's
// private key.
func TestLeakScanKnowsTheSigningKey(t *testing.T) {
	path := t.TempDir() + "/key.pem"
	if _, err := devtoken.LoadOrCreate(path, testIssuer, testAudience); err != nil {
		t.Fatal(err)
	}
	var r responses
	r.addKeyFile(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if got := leaks(200, []byte(`{"x":"`+lines[1]+`"}`), nil, r.secrets); len(got) == 0 {
		t.Errorf("a line of the signing key in a body is not found")
	}
	if got := leaks(500, b, nil, r.secrets); len(got) == 0 {
		t.Errorf("the signing key's PEM in a body is not found")
	}
}
