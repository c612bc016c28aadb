package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
)

// `outboxpay token` refuses what it cannot do with exit code 2 and says why.
func TestTokenSubcommandErrors(t *testing.T) {
	withKey := t.TempDir()
	if _, err := devtoken.LoadOrCreate(filepath.Join(withKey, "auth-signing-key.pem"), devIssuerName, "outboxpay"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, dataDir string
		args          []string
		want          string
	}{
		{"no --user", withKey, nil, "--user is required"},
		{"user 0", withKey, []string{"--user", "0"}, "--user is required"},
		{"a negative user", withKey, []string{"--user", "-3"}, "not a positive user id"},
		{"an unknown scope", withKey, []string{"--user", "1", "--scope", "orders admin"}, `unknown scope "admin"`},
		{"a lifetime that is not positive", withKey, []string{"--user", "1", "--ttl", "-1h"}, "not positive"},
		{"an unknown flag", withKey, []string{"--user", "1", "--sub", "2"}, "-sub"},
		{"an argument", withKey, []string{"--user", "1", "extra"}, `unexpected argument "extra"`},
		{"no signing key", t.TempDir(), []string{"--user", "1"}, "no signing key at"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := run(t, []string{"DATA_DIR=" + c.dataDir}, append([]string{"token"}, c.args...)...)
			if code != 2 || stdout != "" || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stdout %q, want 2 and nothing printed, with %q in\n%s", code, stdout, c.want, stderr)
			}
		})
	}
	// --help prints the usage, with the scopes.
	code, _, stderr := run(t, nil, "token", "--help")
	if code != 0 || !strings.Contains(stderr, "usage: outboxpay token") || !slices.ContainsFunc(api.Scopes(), func(s string) bool {
		return strings.Contains(stderr, s)
	}) {
		t.Errorf("token --help: exit %d\n%s", code, stderr)
	}
	// AUTH_SIGNING_KEY_FILE, AUTH_ISSUER and AUTH_AUDIENCE name the key and the claims.
	code, stdout, stderr := run(t, []string{"AUTH_SIGNING_KEY_FILE=" + filepath.Join(withKey, "auth-signing-key.pem"),
		"AUTH_ISSUER=compose-issuer", "AUTH_AUDIENCE=shop-api"}, "token", "--user", "5")
	if code != 0 {
		t.Fatalf("token with AUTH_SIGNING_KEY_FILE: exit %d\n%s", code, stderr)
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(strings.TrimSpace(stdout), claims); err != nil {
		t.Fatal(err)
	}
	if aud, _ := claims.GetAudience(); claims["iss"] != "compose-issuer" || !slices.Equal(aud, []string{"shop-api"}) || claims["sub"] != "5" {
		t.Errorf("claims %v", claims)
	}
}
