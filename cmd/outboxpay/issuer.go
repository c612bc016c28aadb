package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
)

// devIssuerName is the "iss" of the development issuer's tokens unless
// AUTH_ISSUER says otherwise.
const devIssuerName = "outboxpay-dev"

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
func runIssuer(ctx context.Context, d deps) error {
	iss, path, err := devIssuer(d.cfg, true)
	if err != nil {
		return err
	}
	h, err := iss.Handler()
	if err != nil {
		return err
	}
	d.logger.Info("development token issuer", "issuer", iss.Name, "audience", iss.Audience, "key_file", path, "kid", iss.KeyID())
	return listenAndServe(ctx, d, "token issuer", d.cfg.AuthIssuerAddr, h, d.cfg.HTTPWriteTimeout)
}

// writeDemoTokens writes a token with every scope for each demo user to
// dir/user-N.jwt (0600), replacing older ones, and returns their absolute
// paths (the banner's curls work from any folder).
func writeDemoTokens(iss *devtoken.Issuer, dir string, users []int64, ttl time.Duration) (map[int64]string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
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
