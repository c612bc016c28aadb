package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	_ "github.com/lib/pq"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// runAPI is `outboxpay api`: the HTTP API on API_ADDR and /metrics on
// METRICS_ADDR, until ctx is done.
func runAPI(ctx context.Context, d deps) error {
	d, closeDB, err := d.withDB(ctx)
	if err != nil {
		return err
	}
	defer closeDB()
	ln, err := listen(d.logger, "api", d.cfg.APIAddr)
	if err != nil {
		return err
	}
	defer ln.Close()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveMetrics(ctx, d) })
	g.Go(func() error { return serveAPI(ctx, d, ln) })
	return g.Wait()
}

// serveAPI serves the HTTP API on ln until ctx is done (see serve), with
// the API's database of d.
func serveAPI(ctx context.Context, d deps, ln net.Listener) error {
	h, err := apiHandler(ctx, d)
	if err != nil {
		return err
	}
	return serveAs(ctx, "serve api", ln, h, d.cfg.timeouts(d.cfg.HTTPWriteTimeout))
}

// apiHandler is the HTTP API on the API's database of d, verifying tokens
// as apiAuth says (its keys refreshed until ctx is done).
func apiHandler(ctx context.Context, d deps) (http.Handler, error) {
	cfg, db := d.cfg, d.dbs.api
	auth, err := apiAuth(ctx, cfg, d.logger)
	if err != nil {
		return nil, err
	}
	return api.New(shop.New(db), api.Config{
		MaxBodyBytes:   cfg.APIMaxBodyBytes,
		RequestTimeout: cfg.APIRequestTimeout,
		Ready:          db.PingContext,
		Registerer:     d.reg,
		Logger:         d.logger,
		Auth:           auth,
		RateLimit:      api.RateLimit{Rate: cfg.APIRateLimit, Burst: cfg.APIRateBurst},
		MaxInFlight:    cfg.APIMaxInFlight,
		MaxWorking:     cfg.DBMaxConns,
		QueueWait:      cfg.APIQueueWait,
		TrustedProxies: cfg.apiTrustedProxies,
	})
}

// apiAuth is how the API verifies bearer tokens: keys from AUTH_JWKS_URL
// (refreshed until ctx is done) or AUTH_PUBLIC_KEY_FILE.
func apiAuth(ctx context.Context, cfg config, logger *slog.Logger) (api.Auth, error) {
	if cfg.AuthIssuer == "" {
		return api.Auth{}, errors.New("AUTH_ISSUER is not set: the API verifies tokens of one issuer (see README.md)")
	}
	var keys api.KeySource
	switch {
	case cfg.AuthJWKSURL != "":
		noStartError := true // an issuer that is not up yet is fetched again later
		k, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.AuthJWKSURL}, keyfunc.Override{
			Client:          &http.Client{Timeout: 10 * time.Second},
			HTTPTimeout:     10 * time.Second,
			RefreshInterval: cfg.AuthJWKSRefresh,
			// A token with an unknown kid (the issuer rotated its key)
			// fetches the set again, at most every 30 s: such a token
			// waits for that fetch if it is due within 10 s, else it is
			// refused at once. The wait bounds the fetch too (jwkset runs
			// it under the same deadline), so it must leave time for one.
			RefreshUnknownKID: rate.NewLimiter(rate.Every(30*time.Second), 1),
			RateLimitWaitMax:  10 * time.Second,
			RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
				return func(ctx context.Context, _ error) {
					// The cause would name the issuer's address: left out.
					logger.WarnContext(ctx, "could not fetch the JWK set of AUTH_JWKS_URL; tokens signed with keys it has not served are refused")
				}
			},
			NoErrorReturnFirstHTTPReq: &noStartError,
		})
		if err != nil {
			return api.Auth{}, fmt.Errorf("AUTH_JWKS_URL: %w", err)
		}
		keys = k
	case cfg.AuthPublicKeyFile != "":
		k, err := publicKeyFile(cfg.AuthPublicKeyFile)
		if err != nil {
			return api.Auth{}, fmt.Errorf("AUTH_PUBLIC_KEY_FILE: %w", err)
		}
		keys = k
	default:
		return api.Auth{}, errors.New("set AUTH_JWKS_URL or AUTH_PUBLIC_KEY_FILE: the API verifies bearer tokens with its keys (see README.md)")
	}
	return api.Auth{Keys: keys, Issuer: cfg.AuthIssuer, Audience: cfg.AuthAudience,
		Algorithms: cfg.AuthAlgorithms, Leeway: cfg.AuthLeeway}, nil
}

// publicKeyFile is a key source of the one PEM public key at path (RSA,
// ECDSA or Ed25519). It verifies every token, whatever its "kid" (a PEM
// file names none, and issuers put one in every token); the token's "alg"
// must still be one the API allows and fit the key.
func publicKeyFile(path string) (api.KeySource, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("want a PEM \"PUBLIC KEY\" block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return staticKey{pub}, nil
	default:
		return nil, fmt.Errorf("a %T key cannot verify tokens: want an RSA, ECDSA or Ed25519 key", pub)
	}
}

// staticKey is an api.KeySource of one key.
type staticKey struct{ key any }

func (s staticKey) KeyfuncCtx(context.Context) jwt.Keyfunc {
	return func(*jwt.Token) (any, error) { return s.key, nil }
}
