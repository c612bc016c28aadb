package engine_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/pgcluster"
	"github.com/outboxpay/outboxpay/migrations"
)

// database.sslmode against a server that offers TLS (a cluster of the
// test's own, with a certificate made here): prefer, the default as in
// Debezium, connects with TLS on both of the engine's connections, not in
// plaintext; require and verify-full (with the certificate as
// database.sslrootcert) connect too.
func TestSSLModeWithTLSServer(t *testing.T) {
	dir, err := os.MkdirTemp("", "pgtest-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the postgres user runs the server when we are root
		t.Fatal(err)
	}
	certFile, keyFile := writeServerCert(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{DataDir: filepath.Join(dir, "data"), Settings: map[string]string{
		"ssl": "on", "ssl_cert_file": certFile, "ssl_key_file": keyFile,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cluster.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	if err := cluster.CreateDatabase(ctx, "app", ""); err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("postgres", cluster.URL("app")) // sslmode=disable: the test's own connection
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := migrations.Up(ctx, admin); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cluster.URL("app"))
	if err != nil {
		t.Fatal(err)
	}

	for i, c := range []struct{ mode, rootCert string }{
		{"", ""}, // the default: prefer
		{"require", ""},
		{"verify-full", certFile},
	} {
		name := c.mode
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t, nil)
			pw, _ := u.User.Password()
			for k, v := range map[string]string{
				"database.hostname": u.Hostname(), "database.port": u.Port(), "database.user": u.User.Username(),
				"database.password": pw, "database.dbname": "app", "slot.name": "tls_slot_" + strconv.Itoa(i),
			} {
				r.raw[k] = v
			}
			delete(r.raw, "database.sslmode")
			if c.mode != "" {
				r.raw["database.sslmode"] = c.mode
			}
			if c.rootCert != "" {
				r.raw["database.sslrootcert"] = c.rootCert
			}
			r.db, r.slot = admin, r.raw["slot.name"] // waitStreaming and insert on the TLS cluster
			stop := r.start(nil)
			ids := r.insert("order", "tls", 2)
			r.waitIDs([]string{"outbox.event.order"}, ids, time.Minute)
			// The test's own connections do not use TLS: a client backend
			// with TLS is the engine's SQL connection, and the walsender its
			// replication connection.
			eventually.True(t, 30*time.Second, "both of the engine's connections use TLS", func() (bool, error) {
				var sqlTLS, replTLS bool
				err := admin.QueryRow(`SELECT
						coalesce(bool_or(s.ssl) FILTER (WHERE a.backend_type = 'client backend'), false),
						coalesce(bool_and(s.ssl) FILTER (WHERE a.backend_type = 'walsender'), false)
					FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = 'app'`).Scan(&sqlTLS, &replTLS)
				return err == nil && sqlTLS && replTLS, err
			})
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			eventually.True(t, 30*time.Second, "drop slot "+r.slot, func() (bool, error) {
				_, err := admin.Exec(`SELECT pg_drop_replication_slot($1)`, r.slot)
				return err == nil, err
			})
		})
	}
}

// writeServerCert writes a self-signed certificate for 127.0.0.1 and
// localhost and its key into dir, readable by the server's account.
func writeServerCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 { // the server runs as postgres, which must own its key
		pg, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chown(keyFile, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}
