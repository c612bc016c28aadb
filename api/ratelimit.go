package api

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"golang.org/x/time/rate"

	"github.com/outboxpay/outboxpay/api/problem"
)

// RateLimit bounds the requests of one client (see clientKey). A zero Rate
// or Burst disables it.
type RateLimit struct {
	// Rate is the sustained requests per second of one client.
	Rate float64
	// Burst is how many requests a client may make at once.
	Burst int
	// ExpiresIn is how long an idle client's state is kept (default 3m):
	// memory is bounded by the clients seen in that window.
	ExpiresIn time.Duration
}

// unlimited reports whether route is one the rate limit never refuses:
// the probes and the contract.
func unlimited(route string) bool {
	switch route {
	case "/healthz", "/readyz", "/openapi.yaml":
		return true
	}
	return false
}

// clientKey is the identity the rate limit counts requests by: the user of
// a valid token (authenticate runs first), else the client's IP (echo's
// IPExtractor, which New sets to trust no forwarding header unless
// configured), IPv6 by its /64 since one host usually holds the whole
// prefix.
func clientKey(c echo.Context) (string, error) {
	if p, ok := c.Get(principalKey).(Principal); ok {
		return "user:" + strconv.FormatInt(p.UserID, 10), nil
	}
	ip := net.ParseIP(c.RealIP())
	switch {
	case ip == nil:
		return "addr:" + c.RealIP(), nil
	case ip.To4() != nil:
		return "ip:" + ip.String(), nil
	default:
		return "ip:" + ip.Mask(net.CIDRMask(64, 128)).String() + "/64", nil
	}
}

// rateLimiter returns the middleware enforcing l; past the limit a request
// gets 429 problem+json with Retry-After and reaches no handler.
func rateLimiter(l RateLimit) echo.MiddlewareFunc {
	if l.Rate <= 0 || l.Burst <= 0 {
		return func(next echo.HandlerFunc) echo.HandlerFunc { return next }
	}
	// A whole number of seconds after which one more request is allowed.
	retryAfter := strconv.Itoa(int(math.Max(1, math.Ceil(1/l.Rate))))
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Skipper: func(c echo.Context) bool { return unlimited(c.Path()) },
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: rate.Limit(l.Rate), Burst: l.Burst, ExpiresIn: l.ExpiresIn,
		}),
		IdentifierExtractor: clientKey,
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			c.Response().Header().Set("Retry-After", retryAfter)
			return &problem.Error{Status: http.StatusTooManyRequests, Kind: "rate-limited",
				Detail: "too many requests from this client; retry after " + retryAfter + " s"}
		},
	})
}

// ipExtractor is how the API tells clients apart: the connection's peer,
// or, when it is one of trustedProxies, the X-Forwarded-For entry that
// proxy vouches for. No other header is believed.
func ipExtractor(trustedProxies []*net.IPNet) echo.IPExtractor {
	if len(trustedProxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trustedProxies {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}
