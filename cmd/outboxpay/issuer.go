package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
)

// devIssuerName is the "iss" of the development issuer's tokens unless
// AUTH_ISSUER says otherwise.
const devIssuerName = "outboxpay-dev"

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

// devIssuer is the development issuer of AUTH_SIGNING_KEY_FILE (default
// $DATA_DIR/auth-signing-key.pem), whose tokens name AUTH_ISSUER (default
// outboxpay-dev) and AUTH_AUDIENCE; create makes the key if it is missing.
func devIssuer(cfg config, create bool) (*devtoken.Issuer, string, error) {
	path := cfg.AuthSigningKeyFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, "auth-signing-key.pem")
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, "", fmt.Errorf("signing key: %w", err)
	}
	name := cfg.AuthIssuer
	if name == "" {
		name = devIssuerName
	}
	load := devtoken.Load
	if create {
		load = devtoken.LoadOrCreate
	}
	iss, err := load(path, name, cfg.AuthAudience)
	if errors.Is(err, os.ErrNotExist) {
		return nil, path, fmt.Errorf("no signing key at %s: start `outboxpay dev` or `outboxpay issuer` once to create it", path)
	}
	return iss, path, err
}

// runIssuer serves the development issuer's JWK Set on AUTH_ISSUER_ADDR.
func runIssuer(ctx context.Context, cfg config, logger *slog.Logger) error {
	iss, path, err := devIssuer(cfg, true)
	if err != nil {
		return err
	}
	h, err := iss.Handler()
	if err != nil {
		return err
	}
	logger.Info("development token issuer", "issuer", iss.Name, "audience", iss.Audience, "key_file", path, "kid", iss.KeyID())
	return serveHTTP(ctx, cfg, "token issuer", cfg.AuthIssuerAddr, h, cfg.HTTPWriteTimeout, logger, nil)
}

// serveIssuer serves iss's JWK Set on AUTH_ISSUER_ADDR for `dev`.
func serveIssuer(ctx context.Context, cfg config, iss *devtoken.Issuer, logger *slog.Logger, listening func(net.Addr)) error {
	h, err := iss.Handler()
	if err != nil {
		return err
	}
	return serveHTTP(ctx, cfg, "token issuer", cfg.AuthIssuerAddr, h, cfg.HTTPWriteTimeout, logger, listening)
}

// runToken is `outboxpay token`: it prints an access token of the
// development issuer.
func runToken(cfg config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.Int64("user", 0, "the token's user id (its sub); required")
	scope := fs.String("scope", strings.Join(api.Scopes(), " "), "the scopes, separated by spaces or commas")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: outboxpay token --user N [--scope 'orders payments'] [--ttl 1h]\n\n"+
			"Prints an access token of the development issuer (AUTH_SIGNING_KEY_FILE, default\n"+
			"$DATA_DIR/auth-signing-key.pem) for the API. Scopes: %s.\n\n", strings.Join(api.Scopes(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil // the usage, as asked
	} else if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	switch {
	case fs.NArg() > 0:
		fs.Usage()
		return fmt.Errorf("token: unexpected argument %q", fs.Arg(0))
	case *user == 0:
		return errors.New("token: --user is required: the id of the user the token acts for (its sub)")
	}
	scopes := strings.FieldsFunc(*scope, func(r rune) bool { return r == ' ' || r == ',' })
	for _, s := range scopes {
		if !slices.Contains(api.Scopes(), s) {
			return fmt.Errorf("token: unknown scope %q (known: %s)", s, strings.Join(api.Scopes(), ", "))
		}
	}
	iss, _, err := devIssuer(cfg, false)
	if err != nil {
		return err
	}
	tok, err := iss.Token(*user, scopes, *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

// writeDemoTokens writes a token with every scope for each demo user to
// dir/user-N.jwt (0600), replacing older ones, and returns their paths.
func writeDemoTokens(iss *devtoken.Issuer, dir string, users []int64, ttl time.Duration) (map[int64]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	paths := map[int64]string{}
	for _, u := range users {
		tok, err := iss.Token(u, api.Scopes(), ttl)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, fmt.Sprintf("user-%d.jwt", u))
		if err := os.WriteFile(path+".new", []byte(tok+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("tokens: %w", err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			return nil, fmt.Errorf("tokens: %w", err)
		}
		paths[u] = path
	}
	return paths, nil
}
