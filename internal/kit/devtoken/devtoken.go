// Package devtoken is the development identity provider of `outboxpay dev`,
// the compose stack's stand-in and the tests: an ES256 signing key kept in a
// PEM file, the JWK Set that publishes its public half, and access tokens
// signed with it as an OAuth2 authorization server would issue them (RFC
// 9068: iss, aud, sub, scope, iat, nbf, exp, jti). Production deployments
// use their own identity provider instead; the API only verifies.
package devtoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// JWKSPath is where Handler serves the JWK Set, as OIDC providers do.
const JWKSPath = "/.well-known/jwks.json"

// Issuer signs tokens with one key.
type Issuer struct {
	key *ecdsa.PrivateKey
	kid string
	// Name is the tokens' "iss"; Audience their "aud".
	Name, Audience string
}

// New returns an Issuer with a fresh key that is kept nowhere.
func New(name, audience string) (*Issuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return newIssuer(key, name, audience)
}

// LoadOrCreate returns the Issuer whose key is the PEM file at path,
// creating the file (0600, a new P-256 key) if it does not exist. When
// several processes create it at once, the first file written wins and
// they all get its key.
func LoadOrCreate(path, name, audience string) (*Issuer, error) {
	iss, err := Load(path, name, audience)
	if !errors.Is(err, os.ErrNotExist) {
		return iss, err
	}
	if iss, err = New(name, audience); err != nil {
		return nil, err
	}
	err = iss.save(path)
	if errors.Is(err, os.ErrExist) {
		return Load(path, name, audience)
	}
	if err != nil {
		return nil, err
	}
	return iss, nil
}

// Load returns the Issuer whose key is the PEM file at path (a PKCS #8
// P-256 key); an error wrapping os.ErrNotExist when there is none.
func Load(path, name, audience string) (*Issuer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("signing key %s: no PEM block", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("signing key %s: not a P-256 ECDSA key", path)
	}
	return newIssuer(key, name, audience)
}

func newIssuer(key *ecdsa.PrivateKey, name, audience string) (*Issuer, error) {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return &Issuer{key: key, kid: base64.RawURLEncoding.EncodeToString(sum[:12]), Name: name, Audience: audience}, nil
}

// save writes the private key to path (0600), complete or not at all; an
// error wrapping os.ErrExist when path exists already (it is not replaced).
func (i *Issuer) save(path string) error {
	der, err := x509.MarshalPKCS8PrivateKey(i.key)
	if err != nil {
		return fmt.Errorf("encode signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write signing key: %w", err)
	}
	// A fresh temporary file is created 0600 whatever is left of an
	// earlier attempt; the link publishes it only if path is still free.
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.new")
	if err != nil {
		return fmt.Errorf("write signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write signing key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("write signing key: %w", err)
	}
	return nil
}

// KeyID is the key's "kid".
func (i *Issuer) KeyID() string { return i.kid }

// PublicKeyPEM is the public key as a PEM "PUBLIC KEY" block.
func (i *Issuer) PublicKeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(&i.key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// JWKS is the JWK Set of the public key (kid, alg ES256, use sig).
func (i *Issuer) JWKS(ctx context.Context) ([]byte, error) {
	jwk, err := jwkset.NewJWKFromKey(&i.key.PublicKey, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: i.kid, ALG: jwkset.AlgES256, USE: jwkset.UseSig},
	})
	if err != nil {
		return nil, fmt.Errorf("JWK of the signing key: %w", err)
	}
	store := jwkset.NewMemoryStorage()
	if err := store.KeyWrite(ctx, jwk); err != nil {
		return nil, fmt.Errorf("JWK set: %w", err)
	}
	return store.JSONPublic(ctx)
}

// Handler serves the JWK Set at JWKSPath (GET only).
func (i *Issuer) Handler() (http.Handler, error) {
	jwks, err := i.JWKS(context.Background())
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+JWKSPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "max-age=300")
		_, _ = w.Write(jwks)
	})
	return mux, nil
}

// Token is an access token for user with scopes, valid from now for ttl.
func (i *Issuer) Token(user int64, scopes []string, ttl time.Duration) (string, error) {
	if user < 1 {
		return "", fmt.Errorf("token: user %d is not a positive user id", user)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("token: a lifetime of %v is not positive", ttl)
	}
	return i.Sign(i.Claims(user, scopes, ttl))
}

// Claims are the claims Token signs, for tests that alter them.
func (i *Issuer) Claims(user int64, scopes []string, ttl time.Duration) Claims {
	now := time.Now().Truncate(time.Second)
	var id [16]byte
	_, _ = rand.Read(id[:])
	return Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.Name,
			Subject:   strconv.FormatInt(user, 10),
			Audience:  jwt.ClaimStrings{i.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        base64.RawURLEncoding.EncodeToString(id[:]),
		},
		Scope: strings.Join(scopes, " "),
	}
}

// Claims are an access token's claims: the registered ones and "scope".
type Claims struct {
	jwt.RegisteredClaims
	Scope string `json:"scope,omitempty"`
}

// Sign signs any claims with the issuer's key (ES256, with its kid).
func (i *Issuer) Sign(claims jwt.Claims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = i.kid
	s, err := t.SignedString(i.key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}
