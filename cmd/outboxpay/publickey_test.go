package main

import (
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
)

// AUTH_PUBLIC_KEY_FILE verifies the tokens its key signed, "kid" and all
// (devtoken and identity providers name their key in every token), and
// only those.
func TestPublicKeyFileVerifiesTokensWithAKeyID(t *testing.T) {
	dir := t.TempDir()
	iss, err := devtoken.New("outboxpay-test", "outboxpay")
	if err != nil {
		t.Fatal(err)
	}
	other, err := devtoken.New("outboxpay-test", "outboxpay")
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := iss.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "issuer.pem")
	if err := os.WriteFile(path, pemKey, 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := publicKeyFile(path)
	if err != nil {
		t.Fatalf("publicKeyFile: %v", err)
	}
	parse := func(tok string) error {
		_, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256", "RS256"})).
			Parse(tok, keys.KeyfuncCtx(context.Background()))
		return err
	}
	mine, err := iss.Token(7, []string{"orders"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := parse(mine); err != nil {
		t.Errorf("a token of the file's key (kid %s): %v, want it verified", iss.KeyID(), err)
	}
	forged, err := other.Token(7, []string{"orders"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := parse(forged); err == nil {
		t.Error("a token of another key verified")
	}
}

func TestPublicKeyFileKeyTypes(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	ed, _, _ := ed25519.GenerateKey(rand.Reader)
	x, _ := ecdh.X25519().GenerateKey(rand.Reader)
	der := func(k any) []byte {
		b, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: b})
	}
	for _, tc := range []struct {
		name    string
		file    []byte
		wantErr string
	}{
		{"ecdsa", der(&ec.PublicKey), ""},
		{"rsa", der(&rs.PublicKey), ""},
		{"ed25519", der(ed), ""},
		{"x25519, which signs nothing", der(x.PublicKey()), "cannot verify tokens"},
		{"not PEM", []byte("hello"), "PUBLIC KEY"},
		{"a private key block", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), "PUBLIC KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key.pem")
			if err := os.WriteFile(path, tc.file, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := publicKeyFile(path)
			if tc.wantErr == "" && err != nil {
				t.Errorf("publicKeyFile: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("publicKeyFile: %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
