package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/outboxpay/outboxpay/api/problem"
)

// The scopes a token may carry (its space-separated "scope" claim). Each
// route needs one; see New.
const (
	// ScopeBalanceRead reads the user's balance.
	ScopeBalanceRead = "balance:read"
	// ScopeBalanceCharge adds money to the user's balance. Charging creates
	// money: give it to the funding side (top-ups), not to shoppers.
	ScopeBalanceCharge = "balance:charge"
	// ScopeOrders lists products, places the user's orders and reads them.
	ScopeOrders = "orders"
	// ScopePayments pays the user's orders.
	ScopePayments = "payments"
)

// Scopes lists every scope the API knows.
func Scopes() []string {
	return []string{ScopeBalanceRead, ScopeBalanceCharge, ScopeOrders, ScopePayments}
}

// Algorithms the API may accept tokens signed with: asymmetric only, so the
// keys it holds can verify but never sign. "none" and HMAC are not among
// them.
var supportedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// SupportedAlgorithms lists what Auth.Algorithms may hold.
func SupportedAlgorithms() []string { return slices.Clone(supportedAlgorithms) }

// KeySource finds the key that verifies a token: a JWKS client such as
// github.com/MicahParks/keyfunc/v3's Keyfunc.
type KeySource interface {
	KeyfuncCtx(ctx context.Context) jwt.Keyfunc
}

// Auth is how the API authenticates a request: an OAuth2/OIDC-style bearer
// JWT (RFC 6750, RFC 9068) signed by a key of Keys with one of Algorithms,
// whose "iss" is Issuer, whose "aud" holds Audience, that has not expired
// ("exp" is required) and is valid now ("nbf", "iat"), within Leeway. Its
// "sub" is the user, a positive decimal user id; its "scope" what it may do.
type Auth struct {
	Keys       KeySource
	Issuer     string
	Audience   string
	Algorithms []string
	Leeway     time.Duration
}

func (a Auth) validate() error {
	switch {
	case a.Keys == nil:
		return errors.New("auth: no key source")
	case a.Issuer == "" || a.Audience == "":
		return errors.New("auth: the issuer and the audience are required")
	case len(a.Algorithms) == 0:
		return errors.New("auth: no algorithms allowed")
	case a.Leeway < 0 || a.Leeway > 5*time.Minute:
		return fmt.Errorf("auth: a leeway of %v is not between 0 and 5m", a.Leeway)
	}
	for _, alg := range a.Algorithms {
		if !slices.Contains(supportedAlgorithms, alg) {
			return fmt.Errorf("auth: algorithm %q is not one of %s", alg, strings.Join(supportedAlgorithms, ", "))
		}
	}
	return nil
}

// Principal is who a request acts for: the token's subject and its scopes.
type Principal struct {
	UserID int64
	Scopes []string
}

// claims are the claims of an access token the API reads.
type claims struct {
	jwt.RegisteredClaims
	Scope string `json:"scope"`
}

// Context keys of what authenticate found.
const (
	principalKey = "outboxpay.principal"
	authErrorKey = "outboxpay.auth-error"
)

// Why a token was refused, for the 401's detail and error_description.
var (
	errNoToken      = errors.New("this request needs a bearer token")
	errTokenExpired = errors.New("the bearer token has expired")
	errTokenInvalid = errors.New("the bearer token is not valid")
)

// authenticate verifies the request's bearer token, if it has one, and
// keeps the Principal (or why the token was refused) on the context for
// require and the rate limit. It refuses nothing itself: routes that need
// a token say so with require.
func authenticate(a Auth) echo.MiddlewareFunc {
	parser := jwt.NewParser(
		jwt.WithValidMethods(a.Algorithms),
		jwt.WithIssuer(a.Issuer),
		jwt.WithAudience(a.Audience),
		jwt.WithLeeway(a.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			header := c.Request().Header.Get(echo.HeaderAuthorization)
			if header == "" {
				return next(c)
			}
			p, err := verify(c.Request().Context(), parser, a.Keys, header)
			if err != nil {
				c.Set(authErrorKey, err)
			} else {
				c.Set(principalKey, p)
			}
			return next(c)
		}
	}
}

// verify turns an Authorization header into the Principal it proves.
func verify(ctx context.Context, parser *jwt.Parser, keys KeySource, header string) (Principal, error) {
	scheme, raw, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return Principal{}, errTokenInvalid
	}
	var cl claims
	if _, err := parser.ParseWithClaims(raw, &cl, keys.KeyfuncCtx(ctx)); err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Principal{}, errTokenExpired
		}
		return Principal{}, errTokenInvalid
	}
	user, err := strconv.ParseInt(cl.Subject, 10, 64)
	if err != nil || user < 1 || strconv.FormatInt(user, 10) != cl.Subject {
		return Principal{}, errTokenInvalid
	}
	return Principal{UserID: user, Scopes: strings.Fields(cl.Scope)}, nil
}

// require refuses a request without a valid token (401) or whose token
// lacks scope (403), with RFC 6750's WWW-Authenticate challenge.
func require(scope string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			p, ok := c.Get(principalKey).(Principal)
			if !ok {
				why, _ := c.Get(authErrorKey).(error)
				challenge := `Bearer realm="outboxpay"`
				if why == nil {
					why = errNoToken
				} else {
					challenge += fmt.Sprintf(`, error="invalid_token", error_description=%q`, why.Error())
				}
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, challenge)
				return &problem.Error{Status: http.StatusUnauthorized, Kind: "unauthorized", Detail: why.Error()}
			}
			if !slices.Contains(p.Scopes, scope) {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate,
					fmt.Sprintf(`Bearer realm="outboxpay", error="insufficient_scope", scope=%q`, scope))
				return &problem.Error{Status: http.StatusForbidden, Kind: "insufficient-scope",
					Detail: fmt.Sprintf("the bearer token lacks the scope %q", scope)}
			}
			return next(c)
		}
	}
}

// principal is the request's Principal; only for handlers behind require.
func principal(c echo.Context) Principal {
	p, _ := c.Get(principalKey).(Principal)
	return p
}
