package devtoken_test

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
)

// LoadOrCreate creates the key file 0600 once; loading it again gives the
// same key; Load without a file is os.ErrNotExist.
func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "signing.pem")
	if _, err := devtoken.Load(path, "iss", "aud"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want os.ErrNotExist", err)
	}
	// What a crashed earlier attempt may have left, readable by all.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".new", []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	first, err := devtoken.LoadOrCreate(path, "iss", "aud")
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %v, want 0600", perm)
	}
	for name, load := range map[string]func(string, string, string) (*devtoken.Issuer, error){
		"LoadOrCreate": devtoken.LoadOrCreate, "Load": devtoken.Load,
	} {
		again, err := load(path, "iss", "aud")
		if err != nil {
			t.Fatal(err)
		}
		if again.KeyID() != first.KeyID() {
			t.Errorf("%s: kid %q, want the first key's %q", name, again.KeyID(), first.KeyID())
		}
	}
	// The reloaded issuer's tokens verify with the first one's public key.
	reloaded, err := devtoken.LoadOrCreate(path, "iss", "aud")
	if err != nil {
		t.Fatal(err)
	}
	parse(t, first, mustToken(t, reloaded, 3, []string{"a"}, time.Minute))
	if other, err := devtoken.New("iss", "aud"); err != nil || other.KeyID() == first.KeyID() {
		t.Errorf("New: kid %v (err %v), want a fresh key", other.KeyID(), err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "signing.pem" && e.Name() != "signing.pem.new" {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

// Processes creating the key at once all end with the key in the file.
func TestLoadOrCreateConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.pem")
	kids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range kids {
		wg.Go(func() {
			iss, err := devtoken.LoadOrCreate(path, "iss", "aud")
			if err != nil {
				t.Error(err)
				return
			}
			kids[i] = iss.KeyID()
		})
	}
	wg.Wait()
	onDisk, err := devtoken.Load(path, "iss", "aud")
	if err != nil {
		t.Fatal(err)
	}
	for i, kid := range kids {
		if kid != onDisk.KeyID() {
			t.Errorf("creator %d has kid %q, the file %q", i, kid, onDisk.KeyID())
		}
	}
}

func TestLoadRefusesOtherKeys(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"empty":  "",
		"no PEM": "not a key",
		"public key": func() string {
			iss, err := devtoken.New("iss", "aud")
			if err != nil {
				t.Fatal(err)
			}
			b, err := iss.PublicKeyPEM()
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}(),
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := devtoken.LoadOrCreate(path, "iss", "aud"); err == nil {
			t.Errorf("%s: loaded", name)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("%s: the file was replaced", name)
		}
	}
}

func mustToken(t *testing.T, iss *devtoken.Issuer, user int64, scopes []string, ttl time.Duration) string {
	t.Helper()
	tok, err := iss.Token(user, scopes, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// parse verifies tok with iss's public key (from PublicKeyPEM) and returns
// its claims.
func parse(t *testing.T, iss *devtoken.Issuer, tok string) (*jwt.Token, *devtoken.Claims) {
	t.Helper()
	b, err := iss.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("PublicKeyPEM: %s", b)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var c devtoken.Claims
	parsed, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(iss.Name),
		jwt.WithAudience(iss.Audience), jwt.WithExpirationRequired()).
		ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return pub.(*ecdsa.PublicKey), nil })
	if err != nil {
		t.Fatalf("parse %s: %v", tok, err)
	}
	return parsed, &c
}

func TestToken(t *testing.T) {
	iss, err := devtoken.New("test-issuer", "outboxpay")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Truncate(time.Second)
	tok, c := parse(t, iss, mustToken(t, iss, 42, []string{"orders", "payments"}, time.Hour))
	if tok.Header["kid"] != iss.KeyID() || tok.Header["alg"] != "ES256" {
		t.Errorf("header %v, want kid %s and alg ES256", tok.Header, iss.KeyID())
	}
	if c.Subject != "42" || c.Scope != "orders payments" || c.Issuer != "test-issuer" ||
		len(c.Audience) != 1 || c.Audience[0] != "outboxpay" || c.ID == "" {
		t.Errorf("claims %+v", c)
	}
	if c.IssuedAt.Before(start) || !c.NotBefore.Equal(c.IssuedAt.Time) || !c.ExpiresAt.Equal(c.IssuedAt.Add(time.Hour)) {
		t.Errorf("times iat %v nbf %v exp %v, want now, now, now+1h", c.IssuedAt, c.NotBefore, c.ExpiresAt)
	}
	_, again := parse(t, iss, mustToken(t, iss, 42, []string{"orders"}, time.Hour))
	if again.ID == c.ID {
		t.Errorf("two tokens share the jti %q", c.ID)
	}
	for _, bad := range []struct {
		user int64
		ttl  time.Duration
	}{{0, time.Hour}, {-1, time.Hour}, {1, 0}, {1, -time.Second}} {
		if _, err := iss.Token(bad.user, nil, bad.ttl); err == nil {
			t.Errorf("Token(%d, %v): no error", bad.user, bad.ttl)
		}
	}
}

func TestJWKS(t *testing.T) {
	iss, err := devtoken.New("test-issuer", "outboxpay")
	if err != nil {
		t.Fatal(err)
	}
	b, err := iss.JWKS(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	checkJWKS(t, iss, b)

	h, err := iss.Handler()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + devtoken.JWKSPath)
	if err != nil {
		t.Fatal(err)
	}
	served, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("GET %s: %d %s", devtoken.JWKSPath, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	checkJWKS(t, iss, served)
	resp, err = http.Post(srv.URL+devtoken.JWKSPath, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %d, want 405", devtoken.JWKSPath, resp.StatusCode)
	}
}

// checkJWKS asserts b is the JWK Set of iss's public key and nothing else.
func checkJWKS(t *testing.T, iss *devtoken.Issuer, b []byte) {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatalf("JWKS %s: %v", b, err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1: %s", len(set.Keys), b)
	}
	k := set.Keys[0]
	for name, want := range map[string]string{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": iss.KeyID()} {
		if k[name] != want {
			t.Errorf("JWK %s = %v, want %s", name, k[name], want)
		}
	}
	if _, ok := k["d"]; ok {
		t.Errorf("the JWKS holds the private key: %s", b)
	}
	if k["x"] == nil || k["y"] == nil {
		t.Errorf("JWK without a public point: %s", b)
	}
}
