package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/shop"
	"github.com/outboxpay/outboxpay/migrations"
)

// seen holds every response body of this package's tests, for the scan.
var seen responses

// TestMain runs the tests on a private PostgreSQL, then scans every response
// body they received for internal detail (see leaks) and fails naming the
// requests that gave some away.
func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	if err := seen.scan(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

// The test issuer's token claims, and how far the API lets their times be
// off.
const (
	testIssuer   = "test-issuer"
	testAudience = "outboxpay"
	testLeeway   = 5 * time.Second
)

// server is the API on a fresh database, with a client that checks every
// response it receives against openapi.yaml. Requests carry no token unless
// sent through as or withAuthorization.
type server struct {
	t      *testing.T
	db     *sql.DB
	url    string
	client *http.Client
	reg    *prometheus.Registry // the API's metrics
	routes []*echo.Route        // the API's routes
	iss    *devtoken.Issuer     // the issuer the API trusts
	// authorization is the Authorization header of every request; empty:
	// none.
	authorization string
}

func newServer(t *testing.T) *server {
	t.Helper()
	db, dbURL := pgtest.NewDB(t)
	// The API runs as its role; the test sets up and checks as the superuser.
	apiDB, apiURL := pgtest.AsRole(t, dbURL, migrations.RoleAPI)
	seen.addSecretsOf(dbURL)
	seen.addSecretsOf(apiURL)
	return startServer(t, db, apiDB, nil)
}

// startServer serves the API on apiDB, logging to logger (nil: nowhere);
// db is the test's own connection for setup and checks. opts change the
// API's configuration.
func startServer(t *testing.T, db, apiDB *sql.DB, logger *slog.Logger, opts ...func(*api.Config)) *server {
	t.Helper()
	reg := prometheus.NewRegistry()
	// The issuer's key is kept in a file only so the scan can look for it.
	keyFile := t.TempDir() + "/signing-key.pem"
	iss, err := devtoken.LoadOrCreate(keyFile, testIssuer, testAudience)
	if err != nil {
		t.Fatal(err)
	}
	seen.addKeyFile(t, keyFile)
	jwks, err := iss.JWKS(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := keyfunc.NewJWKSetJSON(jwks)
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{
		MaxBodyBytes:   64 << 10,
		RequestTimeout: 30 * time.Second,
		Ready:          apiDB.PingContext,
		Registerer:     reg,
		Logger:         logger,
		Auth: api.Auth{
			Keys:       keys,
			Issuer:     testIssuer,
			Audience:   testAudience,
			Algorithms: []string{"ES256", "RS256"},
			Leeway:     testLeeway,
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	e, err := api.New(shop.New(apiDB), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	// Every response passes the contract check, then is kept for the scan.
	transport := &recorder{t: t, into: &seen,
		next: &contractCheck{t: t, router: openAPIRouter(t), next: http.DefaultTransport}}
	return &server{
		t:      t,
		db:     db,
		url:    srv.URL,
		client: &http.Client{Transport: transport},
		reg:    reg,
		routes: e.Routes(),
		iss:    iss,
	}
}

// token is an access token of the test issuer for user with scopes (every
// scope of the API when none are given), valid for an hour.
func (s *server) token(user int64, scopes ...string) string {
	s.t.Helper()
	if len(scopes) == 0 {
		scopes = api.Scopes()
	}
	tok, err := s.iss.Token(user, scopes, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// as is s acting for user: its requests carry a bearer token of user with
// scopes (every scope when none are given).
func (s *server) as(user int64, scopes ...string) *server {
	return s.withAuthorization("Bearer " + s.token(user, scopes...))
}

// in is s reporting to t, for a subtest.
func (s *server) in(t *testing.T) *server {
	c := *s
	c.t = t
	return &c
}

// withAuthorization is s sending header as the Authorization of every
// request; "" sends none.
func (s *server) withAuthorization(header string) *server {
	c := *s
	c.authorization = header
	return &c
}

var (
	routerOnce sync.Once
	router     routers.Router
	routerErr  error
)

func openAPIRouter(t *testing.T) routers.Router {
	routerOnce.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
		if err != nil {
			routerErr = fmt.Errorf("load openapi.yaml: %w", err)
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			routerErr = fmt.Errorf("openapi.yaml is not valid: %w", err)
			return
		}
		doc.Servers = nil // match any host, such as the test server's
		router, routerErr = gorillamux.NewRouter(doc)
	})
	if routerErr != nil {
		t.Fatal(routerErr)
	}
	return router
}

// bufferBody reads resp's body and puts it back, so the caller reads it
// again.
func bufferBody(resp *http.Response) ([]byte, error) {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// contractCheck is an http.RoundTripper that fails the test when a response
// does not match the OpenAPI document: an undocumented status, header or body.
// Responses of routes the document does not have (404, 405) must be problems.
type contractCheck struct {
	t      *testing.T
	router routers.Router
	next   http.RoundTripper
}

func (c *contractCheck) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := bufferBody(resp)
	if err != nil {
		return nil, err
	}

	route, params, err := c.router.FindRoute(req)
	if err != nil {
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			c.t.Errorf("%s %s: no route in openapi.yaml, and status %d", req.Method, req.URL.Path, resp.StatusCode)
		}
		checkProblem(c.t, req.Method+" "+req.URL.Path, resp.StatusCode, resp.Header, body)
		return resp, nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		c.t.Errorf("%s %s: response %d does not match openapi.yaml: %v\nbody: %s",
			req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	if resp.StatusCode >= 400 {
		checkProblem(c.t, req.Method+" "+req.URL.Path, resp.StatusCode, resp.Header, body)
	}
	return resp, nil
}

// checkProblem asserts an error response is a complete problem+json document.
func checkProblem(t *testing.T, what string, status int, h http.Header, body []byte) {
	t.Helper()
	if ct := h.Get("Content-Type"); ct != api.ProblemContentType {
		t.Errorf("%s: status %d with Content-Type %q, want %s", what, status, ct, api.ProblemContentType)
		return
	}
	var p api.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Errorf("%s: problem body: %v", what, err)
		return
	}
	if p.Status != status || p.Title == "" || p.Type == "" || p.Detail == "" {
		t.Errorf("%s: incomplete problem for status %d: %s", what, status, body)
	}
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r response) problem(t *testing.T) api.Problem {
	t.Helper()
	var p api.Problem
	r.decode(t, &p)
	return p
}

// do sends a request with s's Authorization header, if any. body is sent
// as is when it is a string, else as JSON; a body gets Content-Type
// application/json unless headers set another, or remove it with an empty
// value (so can the Authorization header).
func (s *server) do(method, path string, body any, headers ...string) response {
	s.t.Helper()
	var r io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case string:
		r, contentType = strings.NewReader(b), "application/json"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		r, contentType = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, s.url+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if s.authorization != "" {
		req.Header.Set("Authorization", s.authorization)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// mustDo sends a request and fails the test unless it gets want.
func (s *server) mustDo(want int, method, path string, body any, headers ...string) response {
	s.t.Helper()
	r := s.do(method, path, body, headers...)
	if r.status != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	return r
}

// exec runs SQL against the test database.
func (s *server) exec(query string, args ...any) {
	s.t.Helper()
	if _, err := s.db.Exec(query, args...); err != nil {
		s.t.Fatalf("%s: %v", query, err)
	}
}

// count returns the integer a query selects.
func (s *server) count(query string, args ...any) int64 {
	s.t.Helper()
	var n int64
	if err := s.db.QueryRow(query, args...).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// newUser inserts a user with a balance and returns its id.
func (s *server) newUser(balance int64) int64 { return pgtest.NewUser(s.t, s.db, balance) }

// newDetail inserts a product with one option and returns the option's id.
func (s *server) newDetail(price int64, stock int) int64 {
	return pgtest.NewProductDetail(s.t, s.db, price, stock)
}

// item is one line of an order request.
func item(productDetailID int64, quantity int) map[string]any {
	return map[string]any{"productDetailId": productDetailID, "quantity": quantity}
}

// newOrder places an order of userID's through the API, acting as userID
// (the body leaves userId out), and returns it.
func (s *server) newOrder(userID int64, items ...map[string]any) shop.Order {
	s.t.Helper()
	var o shop.Order
	s.as(userID).mustDo(http.StatusCreated, "POST", "/orders", map[string]any{"items": items}).decode(s.t, &o)
	if o.UserID != userID {
		s.t.Fatalf("order placed for user %d, want %d", o.UserID, userID)
	}
	return o
}

// snapshot returns a digest of every row of the domain's tables, to show
// that a request changed nothing.
func (s *server) snapshot() string {
	s.t.Helper()
	var b strings.Builder
	for _, table := range []string{"users", "products", "product_details", "orders", "order_items", "payments", "idempotency_keys", "outbox", "processed_events"} {
		var digest sql.NullString
		err := s.db.QueryRow(fmt.Sprintf(`SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM %s t`, table)).Scan(&digest)
		if err != nil {
			s.t.Fatalf("snapshot %s: %v", table, err)
		}
		fmt.Fprintf(&b, "%s=%s ", table, digest.String)
	}
	return b.String()
}
