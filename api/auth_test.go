package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
)

// open are the routes that need no token.
var openRoutes = []string{"/healthz", "/readyz", "/openapi.yaml"}

// routeFixture is how the authorization matrix exercises one route.
type routeFixture struct {
	scope string // the scope the route needs
	// request is a request of user a's on the route, on a server where a
	// and b exist, that a's full token makes succeed; setup is done here,
	// not through the API.
	request func(s *server, a, b int64) (path string, body any)
	ok      int // the status of a's request with a's token
	other   int // the status of a's request with b's token
}

// routeFixtures are the matrix's routes, by method and echo path. Every
// route of the API but openRoutes must be here.
func routeFixtures() map[string]routeFixture {
	return map[string]routeFixture{
		"GET /users/:userId/balance": {api.ScopeBalanceRead, func(_ *server, a, _ int64) (string, any) {
			return fmt.Sprintf("/users/%d/balance", a), nil
		}, http.StatusOK, http.StatusNotFound},
		"POST /users/:userId/balance/charge": {api.ScopeBalanceCharge, func(_ *server, a, _ int64) (string, any) {
			return fmt.Sprintf("/users/%d/balance/charge", a), map[string]any{"amount": 10}
		}, http.StatusOK, http.StatusNotFound},
		"GET /products": {api.ScopeOrders, func(s *server, _, _ int64) (string, any) {
			s.newDetail(100, 5)
			return "/products", nil
		}, http.StatusOK, http.StatusOK},
		"GET /products/:productId": {api.ScopeOrders, func(s *server, _, _ int64) (string, any) {
			product := s.count(`SELECT product_id FROM product_details WHERE id = $1`, s.newDetail(100, 5))
			return fmt.Sprintf("/products/%d", product), nil
		}, http.StatusOK, http.StatusOK},
		// With userId in the body: b's token may not place a's order.
		"POST /orders": {api.ScopeOrders, func(s *server, a, _ int64) (string, any) {
			return "/orders", map[string]any{"userId": a, "items": []any{item(s.newDetail(100, 5), 1)}}
		}, http.StatusCreated, http.StatusForbidden},
		"GET /orders/:orderId": {api.ScopeOrders, func(s *server, a, _ int64) (string, any) {
			return fmt.Sprintf("/orders/%d", s.newOrder(a, item(s.newDetail(100, 5), 1)).OrderID), nil
		}, http.StatusOK, http.StatusNotFound},
		// Without userId in the body: b's token finds no such order.
		"POST /orders/:orderId/payment": {api.ScopePayments, func(s *server, a, _ int64) (string, any) {
			return fmt.Sprintf("/orders/%d/payment", s.newOrder(a, item(s.newDetail(100, 5), 1)).OrderID), map[string]any{}
		}, http.StatusCreated, http.StatusNotFound},
	}
}

// authCase is a row of the matrix: the Authorization header it sends and
// what it gets.
type authCase struct {
	name string
	// authorization is the header for a request of user a's (b another
	// user) on a route that needs scope; "" sends none.
	authorization func(t *testing.T, s *server, a, b int64, scope string) string
	status        int    // 0: the route's ok, -1: the route's other
	challenge     string // a part the WWW-Authenticate header must hold
}

// signed is a token of the test issuer for user a with every scope, its
// claims changed by change.
func signed(t *testing.T, s *server, a int64, change func(*devtoken.Claims)) string {
	t.Helper()
	c := s.iss.Claims(a, api.Scopes(), time.Hour)
	change(&c)
	tok, err := s.iss.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rawToken is a JWT with header and claims as given and signature sig
// (base64url already), signed by nobody.
func rawToken(t *testing.T, header map[string]any, claims any, sig string) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + sig
}

func authCases() []authCase {
	const invalid = `error="invalid_token"`
	bearer := func(f func(t *testing.T, s *server, a int64) string) func(*testing.T, *server, int64, int64, string) string {
		return func(t *testing.T, s *server, a, _ int64, _ string) string { return "Bearer " + f(t, s, a) }
	}
	claims := func(change func(c *devtoken.Claims)) func(*testing.T, *server, int64, int64, string) string {
		return bearer(func(t *testing.T, s *server, a int64) string { return signed(t, s, a, change) })
	}
	now := func() time.Time { return time.Now().Truncate(time.Second) }
	beyondLeeway := testLeeway + time.Minute
	subject := func(sub func(a int64) string) func(*testing.T, *server, int64, int64, string) string {
		return bearer(func(t *testing.T, s *server, a int64) string {
			return signed(t, s, a, func(c *devtoken.Claims) { c.Subject = sub(a) })
		})
	}
	return []authCase{
		{"no token", func(*testing.T, *server, int64, int64, string) string { return "" }, 401, `Bearer realm="outboxpay"`},
		{"expired beyond the leeway", claims(func(c *devtoken.Claims) {
			c.IssuedAt, c.NotBefore = jwt.NewNumericDate(now().Add(-time.Hour)), jwt.NewNumericDate(now().Add(-time.Hour))
			c.ExpiresAt = jwt.NewNumericDate(now().Add(-beyondLeeway))
		}), 401, `error_description="the bearer token has expired"`},
		{"not yet valid beyond the leeway", claims(func(c *devtoken.Claims) {
			c.NotBefore = jwt.NewNumericDate(now().Add(beyondLeeway))
		}), 401, invalid},
		{"issued in the future beyond the leeway", claims(func(c *devtoken.Claims) {
			c.IssuedAt = jwt.NewNumericDate(now().Add(beyondLeeway))
		}), 401, invalid},
		{"another issuer", claims(func(c *devtoken.Claims) { c.Issuer = "someone-else" }), 401, invalid},
		{"no issuer", claims(func(c *devtoken.Claims) { c.Issuer = "" }), 401, invalid},
		{"another audience", claims(func(c *devtoken.Claims) { c.Audience = jwt.ClaimStrings{"another-api"} }), 401, invalid},
		{"no audience", claims(func(c *devtoken.Claims) { c.Audience = nil }), 401, invalid},
		{"signed by another key with the same kid", bearer(func(t *testing.T, s *server, a int64) string {
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			tok := jwt.NewWithClaims(jwt.SigningMethodES256, s.iss.Claims(a, api.Scopes(), time.Hour))
			tok.Header["kid"] = s.iss.KeyID()
			signed, err := tok.SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			return signed
		}), 401, invalid},
		{"a tampered payload (later exp)", bearer(func(t *testing.T, s *server, a int64) string {
			parts := strings.Split(s.token(a), ".")
			c := s.iss.Claims(a, api.Scopes(), 48*time.Hour)
			header, err := base64.RawURLEncoding.DecodeString(parts[0])
			if err != nil {
				t.Fatal(err)
			}
			var h map[string]any
			if err := json.Unmarshal(header, &h); err != nil {
				t.Fatal(err)
			}
			return rawToken(t, h, c, parts[2])
		}), 401, invalid},
		{"alg none", bearer(func(t *testing.T, s *server, a int64) string {
			return rawToken(t, map[string]any{"alg": "none", "typ": "JWT", "kid": s.iss.KeyID()},
				s.iss.Claims(a, api.Scopes(), time.Hour), "")
		}), 401, invalid},
		{"HS256 keyed with the public key PEM", bearer(func(t *testing.T, s *server, a int64) string {
			pub, err := s.iss.PublicKeyPEM()
			if err != nil {
				t.Fatal(err)
			}
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, s.iss.Claims(a, api.Scopes(), time.Hour))
			tok.Header["kid"] = s.iss.KeyID()
			signed, err := tok.SignedString(pub)
			if err != nil {
				t.Fatal(err)
			}
			return signed
		}), 401, invalid},
		{"sub with leading zeros", subject(func(a int64) string { return fmt.Sprintf("00%d", a) }), 401, invalid},
		{"sub not a number", subject(func(int64) string { return "abc" }), 401, invalid},
		{"sub negative", subject(func(a int64) string { return fmt.Sprintf("-%d", a) }), 401, invalid},
		{"sub zero", subject(func(int64) string { return "0" }), 401, invalid},
		{"sub with a plus sign", subject(func(a int64) string { return fmt.Sprintf("+%d", a) }), 401, invalid},
		{"no sub", subject(func(int64) string { return "" }), 401, invalid},
		{"no exp", claims(func(c *devtoken.Claims) { c.ExpiresAt = nil }), 401, invalid},
		{"Basic credentials", func(_ *testing.T, _ *server, a, _ int64, _ string) string {
			return "Basic " + base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%d:secret-password", a))
		}, 401, invalid},
		{"a valid token without a scheme", func(t *testing.T, s *server, a, _ int64, _ string) string {
			return s.token(a)
		}, 401, invalid},
		{"a valid token in another scheme", func(t *testing.T, s *server, a, _ int64, _ string) string {
			return "Token " + s.token(a)
		}, 401, invalid},
		{"Bearer without a token", func(*testing.T, *server, int64, int64, string) string { return "Bearer" }, 401, invalid},
		{"not a JWT", func(*testing.T, *server, int64, int64, string) string { return "Bearer opaque-access-token-1234" }, 401, invalid},
		{"another user's token", func(_ *testing.T, s *server, _, b int64, _ string) string {
			return "Bearer " + s.token(b)
		}, -1, ""},
		{"every scope but the route's", func(_ *testing.T, s *server, a, _ int64, scope string) string {
			others := slices.DeleteFunc(api.Scopes(), func(sc string) bool { return sc == scope })
			return "Bearer " + s.token(a, others...)
		}, 403, `error="insufficient_scope"`},
		{"the right token", func(_ *testing.T, s *server, a, _ int64, scope string) string {
			return "Bearer " + s.token(a, scope)
		}, 0, ""},
	}
}

// TestAuthorizationMatrix sends every route that needs a token every kind
// of Authorization: only the route's user with the route's scope gets
// through (another user gets 404 for a resource of a's, 403 for naming a
// in a body); every refusal is the documented problem with its challenge
// and leaves the database as it was.
func TestAuthorizationMatrix(t *testing.T) {
	fixtures := routeFixtures()
	var routes []string
	for _, r := range newServer(t).routes {
		if !slices.Contains(openRoutes, r.Path) {
			routes = append(routes, r.Method+" "+r.Path)
		}
	}
	slices.Sort(routes)
	for route := range fixtures {
		if !slices.Contains(routes, route) {
			t.Errorf("the matrix has %s, which the API does not serve", route)
		}
	}
	for _, route := range routes {
		t.Run(route, func(t *testing.T) {
			f, ok := fixtures[route]
			if !ok {
				t.Fatalf("route %s is not in the authorization matrix: add it to routeFixtures", route)
			}
			method, _, _ := strings.Cut(route, " ")
			s := newServer(t)
			a, b := s.newUser(1000), s.newUser(1000)
			path, body := f.request(s, a, b)
			for _, c := range authCases() {
				t.Run(c.name, func(t *testing.T) {
					s := s.in(t)
					want := c.status
					switch want {
					case 0:
						want = f.ok
					case -1:
						want = f.other
					}
					before := s.snapshot()
					r := s.withAuthorization(c.authorization(t, s, a, b, f.scope)).do(method, path, body)
					if r.status != want {
						t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
					}
					challenge := r.header.Get("WWW-Authenticate")
					switch want {
					case http.StatusUnauthorized:
						if p := r.problem(t); p.Type != "/problems/unauthorized" {
							t.Errorf("problem type %q, want /problems/unauthorized", p.Type)
						}
						if !strings.HasPrefix(challenge, `Bearer realm="outboxpay"`) {
							t.Errorf("WWW-Authenticate %q, want a Bearer challenge", challenge)
						}
						sent := c.authorization(t, s, a, b, f.scope) != ""
						if strings.Contains(challenge, `error="invalid_token"`) != sent {
							t.Errorf("WWW-Authenticate %q: invalid_token should be there exactly when a token was sent", challenge)
						}
					case http.StatusForbidden:
						p := r.problem(t)
						if c.status == http.StatusForbidden {
							if p.Type != "/problems/insufficient-scope" || !strings.Contains(challenge, fmt.Sprintf(`scope=%q`, f.scope)) {
								t.Errorf("problem type %q, WWW-Authenticate %q: want insufficient-scope naming %q", p.Type, challenge, f.scope)
							}
						} else if p.Type != "/problems/forbidden" || challenge != "" {
							t.Errorf("problem type %q, WWW-Authenticate %q: want /problems/forbidden without a challenge", p.Type, challenge)
						}
					case http.StatusNotFound:
						if p := r.problem(t); p.Type != "/problems/not-found" {
							t.Errorf("problem type %q, want /problems/not-found", p.Type)
						}
					}
					if !strings.Contains(challenge, c.challenge) {
						t.Errorf("WWW-Authenticate %q does not hold %q", challenge, c.challenge)
					}
					if c.status != 0 {
						if after := s.snapshot(); after != before {
							t.Errorf("a refused request changed the database:\nbefore %s\nafter  %s", before, after)
						}
					}
				})
			}
		})
	}
}

// TestAuthLeeway: a token just expired, or valid only in a moment, is
// accepted within the leeway.
func TestAuthLeeway(t *testing.T) {
	s := newServer(t)
	user := s.newUser(0)
	now := time.Now().Truncate(time.Second)
	for name, change := range map[string]func(*devtoken.Claims){
		"expired a second ago": func(c *devtoken.Claims) {
			c.IssuedAt, c.NotBefore = jwt.NewNumericDate(now.Add(-time.Hour)), jwt.NewNumericDate(now.Add(-time.Hour))
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Second))
		},
		"valid in a second": func(c *devtoken.Claims) {
			c.IssuedAt, c.NotBefore = jwt.NewNumericDate(now.Add(time.Second)), jwt.NewNumericDate(now.Add(time.Second))
		},
	} {
		t.Run(name, func(t *testing.T) {
			s.in(t).withAuthorization("Bearer "+signed(t, s, user, change)).mustDo(http.StatusOK, "GET", "/products", nil)
		})
	}
}

// TestOpenAPISecurity: the document says what the matrix proves: every
// route but the open ones needs bearerAuth with the route's scope and
// documents 401 and 403; the open ones need nothing.
func TestOpenAPISecurity(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	scheme := doc.Components.SecuritySchemes["bearerAuth"]
	if scheme == nil || scheme.Value.Type != "http" || scheme.Value.Scheme != "bearer" || scheme.Value.BearerFormat != "JWT" {
		t.Fatalf("bearerAuth security scheme: %+v", scheme)
	}
	for _, sc := range api.Scopes() {
		if !strings.Contains(scheme.Value.Description, sc) {
			t.Errorf("bearerAuth's description does not name the scope %s", sc)
		}
	}
	fixtures := routeFixtures()
	n := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			n++
			route := method + " " + echoPath(path)
			if slices.Contains(openRoutes, path) {
				if op.Security == nil || len(*op.Security) != 0 {
					t.Errorf("%s: want security: []", route)
				}
				continue
			}
			f, ok := fixtures[route]
			if !ok {
				t.Errorf("%s is in openapi.yaml but not in the matrix", route)
				continue
			}
			if op.Security == nil || len(*op.Security) != 1 || (*op.Security)[0]["bearerAuth"] == nil {
				t.Errorf("%s: want security bearerAuth", route)
			}
			if got := op.Extensions["x-required-scope"]; got != f.scope {
				t.Errorf("%s: x-required-scope %v, want %s", route, got, f.scope)
			}
			if !strings.Contains(op.Description, f.scope) {
				t.Errorf("%s: the description does not name the scope %s", route, f.scope)
			}
			for _, status := range []int{401, 403} {
				if op.Responses.Status(status) == nil {
					t.Errorf("%s: no %d response", route, status)
				}
			}
			if nf := op.Responses.Status(404); f.other == http.StatusNotFound &&
				(nf == nil || !strings.Contains(*nf.Value.Description, "does not exist or is not yours")) {
				t.Errorf("%s: the 404 should say the resource does not exist or is not yours", route)
			}
		}
	}
	if want := len(fixtures) + len(openRoutes); n != want {
		t.Errorf("openapi.yaml has %d operations, want %d", n, want)
	}
}

// echoPath is an OpenAPI path as an echo route path: {id} becomes :id.
func echoPath(p string) string {
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}") {
			parts[i] = ":" + strings.Trim(part, "{}")
		}
	}
	return strings.Join(parts, "/")
}
