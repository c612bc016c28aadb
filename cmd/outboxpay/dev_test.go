package main

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
)

// `outboxpay dev` (what make run runs) as a user sees it: it starts its own
// Postgres and Kafka, the CDC engine with the connector registered, prints
// where the API is, serves a charge -> order -> pay sequence that leaves a
// PAID order whose two events reach Kafka and become COMPLETE, and on
// SIGINT exits cleanly,
// leaving no Postgres behind; the next run reuses its credentials file.
func TestDevServesAPaymentAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	sys, err := launchDev(binary(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.kill() })
	url := sys.API
	bearer := "Bearer " + sys.token(t, 1)
	assertDevTokenFiles(t, sys)
	runBannerCurls(t, sys)

	post := func(path, body string, headers ...string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest("POST", url+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", bearer)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		return call(t, req)
	}
	post("/users/1/balance/charge", `{"amount": 50000}`)
	order := post("/orders", `{"userId": 1, "items": [{"productDetailId": 1, "quantity": 2}]}`)
	id := order["orderId"]
	payment := post(fmt.Sprintf("/orders/%v/payment", id), `{"userId": 1}`, "Idempotency-Key", "dev-test")
	if payment["status"] != "PAID" {
		t.Fatalf("payment: %v", payment)
	}
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/orders/%v", url, id), nil)
	req.Header.Set("Authorization", bearer)
	view := call(t, req)
	events, _ := view["events"].([]any)
	if view["status"] != "PAID" || len(events) != 2 {
		t.Fatalf("order: %v", view)
	}
	// The engine streams both events to Kafka, which asks for credentials.
	admin := sys.kafkaAs(t, kafkaclient.PrincipalAdmin)
	if _, err := kafkatest.ReadAs(kafkaclient.Config{Bootstrap: sys.Kafka}, []string{"outbox.event.payment"}, 0, time.Second); err == nil {
		t.Error("the embedded Kafka answered a client without credentials")
	}
	want := map[string]string{}
	for _, e := range events {
		e := e.(map[string]any)
		want[e["id"].(string)] = e["topic"].(string)
	}
	msgs := kafkatest.ReadAllAs(t, admin, []string{"outbox.event.payment", "outbox.event.order"}, 2, time.Minute)
	for _, m := range msgs {
		if id := kafkatest.Header(m, "id"); want[id] == *m.TopicPartition.Topic {
			delete(want, id)
		}
	}
	if len(want) != 0 {
		t.Fatalf("events not on Kafka: %v (read %d records)", want, len(msgs))
	}

	// The consumers take it from there: every event of the order COMPLETE.
	// Every 100 ms: each poll is an API request, and the API limits a client
	// to 50/s (API_RATE_LIMIT).
	eventually.TrueEvery(t, time.Minute, 100*time.Millisecond, "order COMPLETE", func() (bool, error) {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/orders/%v", url, id), nil)
		req.Header.Set("Authorization", bearer)
		view := call(t, req)
		events, _ := view["events"].([]any)
		for _, e := range events {
			if st := e.(map[string]any)["status"]; st != "COMPLETE" {
				return false, fmt.Errorf("event %v", e)
			}
		}
		return len(events) == 2, nil
	})

	assertDevUsesRoles(t, sys)
	operatorAnswers := readOperatorAnswers(t, sys)

	pidFile := filepath.Join(dir, "data", "postgres", "postmaster.pid")
	pid := postmasterPID(t, pidFile)
	if err := sys.stop(); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("postgres (pid %d) still running after dev exited", pid)
	}
	assertNoSecretLeaks(t, sys, operatorAnswers)

	// The next run reuses the generated credentials: it serves (its own
	// registration signed in with them) and the password is the same.
	again, err := launchDev(binary(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.kill() })
	if again.User != sys.User || again.Password != sys.Password {
		t.Error("the second run made new credentials")
	}
	if err := again.stop(); err != nil {
		t.Fatal(err)
	}
}

// assertDevTokenFiles checks what dev's own issuer left under DATA_DIR: its
// signing key and a token per demo user, each readable by its owner only,
// tokens of that key for that user with every scope.
func assertDevTokenFiles(t *testing.T, sys *devSystem) {
	t.Helper()
	data := filepath.Join(sys.dir, "data")
	keyFile := filepath.Join(data, "auth-signing-key.pem")
	iss, err := devtoken.Load(keyFile, devIssuerName, "outboxpay")
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err := iss.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwt.ParseECPublicKeyFromPEM(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{keyFile, sys.tokenFile(1), sys.tokenFile(2), sys.tokenFile(3)} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", path, err, fi.Mode().Perm())
		}
	}
	for _, user := range []int64{1, 2, 3} {
		claims := jwt.MapClaims{}
		_, err := jwt.NewParser(jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(devIssuerName),
			jwt.WithAudience("outboxpay"), jwt.WithExpirationRequired()).
			ParseWithClaims(sys.token(t, user), claims, func(*jwt.Token) (any, error) { return pub, nil })
		if err != nil {
			t.Errorf("user %d's token: %v", user, err)
			continue
		}
		if claims["sub"] != fmt.Sprint(user) || claims["scope"] != strings.Join(api.Scopes(), " ") {
			t.Errorf("user %d's token: sub %v, scope %v", user, claims["sub"], claims["scope"])
		}
	}
}

// runBannerCurls runs the API's curl commands of dev's banner as pasted
// into a shell, in order, on a fresh dev system: the charge, the order
// without a userId, its payment with {} and an Idempotency-Key (twice: the
// same answer), and the order, PAID.
func runBannerCurls(t *testing.T, sys *devSystem) {
	t.Helper()
	var curls []string
	for _, line := range strings.Split(sys.Banner, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "curl ") && strings.Contains(line, sys.API) {
			curls = append(curls, line)
		}
	}
	if len(curls) != 4 {
		t.Fatalf("%d curl commands for the API in the banner, want 4:\n%s", len(curls), sys.Banner)
	}
	for _, c := range curls {
		if !strings.Contains(c, `-H "Authorization: Bearer $(cat '`+sys.tokenFile(1)+`')"`) {
			t.Errorf("banner curl without user 1's token file: %s", c)
		}
	}
	// Pasted in another folder than dev's: the paths must be absolute.
	elsewhere := t.TempDir()
	sh := func(line string) map[string]any {
		t.Helper()
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = elsewhere
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		var body map[string]any
		if err := json.Unmarshal(out, &body); err != nil {
			t.Fatalf("%s: %v in %s", line, err, out)
		}
		return body
	}
	if b := sh(curls[0]); b["balance"] == nil || b["userId"] != float64(1) {
		t.Errorf("charge: %v", b)
	}
	if b := sh(curls[1]); b["orderId"] != float64(1) || b["userId"] != float64(1) {
		t.Errorf("order: %v, want order 1 of user 1", b)
	}
	paid := sh(curls[2])
	if paid["status"] != "PAID" {
		t.Errorf("payment: %v", paid)
	}
	if again := sh(curls[2]); fmt.Sprint(again) != fmt.Sprint(paid) {
		t.Errorf("the payment again with its Idempotency-Key: %v, first %v", again, paid)
	}
	if b := sh(curls[3]); b["orderId"] != float64(1) || b["status"] != "PAID" {
		t.Errorf("GET order: %v", b)
	}
}

// assertDevUsesRoles checks, as the superuser, that every component of dev
// connects to the database as its own role (the API, the consumers and
// reconciler, the connector's replication and config store), that the
// role passwords are kept private and that neither they nor the superuser's
// appear in dev's output.
func assertDevUsesRoles(t *testing.T, sys *devSystem) {
	t.Helper()
	data := filepath.Join(sys.dir, "data")
	superPW, err := os.ReadFile(filepath.Join(data, "postgres", "pgcluster-superuser.password"))
	if err != nil {
		t.Fatal(err)
	}
	rolesPath := filepath.Join(data, devRolesFile)
	if fi, err := os.Stat(rolesPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v; want 0600", rolesPath, err, fi.Mode().Perm())
	}
	raw, err := os.ReadFile(rolesPath)
	if err != nil {
		t.Fatal(err)
	}
	var passwords map[string]string
	if err := json.Unmarshal(raw, &passwords); err != nil {
		t.Fatal(err)
	}
	secrets := []string{strings.TrimSpace(string(superPW))}
	for _, pw := range passwords {
		secrets = append(secrets, pw)
	}
	for _, secret := range secrets {
		if strings.Contains(sys.Postgres, secret) {
			t.Error("dev's banner holds a database password")
		}
		for _, line := range strings.Split(sys.stderr.String(), "\n") {
			if strings.Contains(line, secret) {
				t.Errorf("dev's log holds a database password: %.80s...", line)
			}
		}
	}

	u, err := url.Parse(sys.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("postgres", strings.TrimSpace(string(superPW)))
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Which roles hold connections, and which walsenders: the connector's
	// replication connection as outboxpay_cdc.
	rows, err := db.QueryContext(t.Context(), `SELECT DISTINCT usename, backend_type FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]bool{}
	for rows.Next() {
		var user, backend string
		if err := rows.Scan(&user, &backend); err != nil {
			t.Fatal(err)
		}
		got[user+" "+backend] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"outboxpay_api client backend", "outboxpay_worker client backend",
		"outboxpay_cdc client backend", "outboxpay_cdc walsender"} {
		if !got[want] {
			t.Errorf("no %s connection; connections: %v", want, got)
		}
	}
	for k := range got {
		if strings.HasPrefix(k, "postgres ") {
			t.Errorf("a component connects as the superuser: %s", k)
		}
	}
}

func call(t *testing.T, req *http.Request) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %v", req.Method, req.URL, resp.StatusCode, body)
	}
	return body
}

func postmasterPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return pid
}

// readOperatorAnswers returns what the operator planes answer, signed in and
// not: the connector's config, status and list, the platform mock's events,
// the engine's metrics and a refused request, as raw bodies.
func readOperatorAnswers(t *testing.T, sys *devSystem) []string {
	t.Helper()
	var bodies []string
	for _, c := range []struct {
		url  string
		auth bool
	}{
		{sys.Connect + "/connectors/outbox/config", true},
		{sys.Connect + "/connectors/outbox/status", true},
		{sys.Connect + "/connectors?expand=info&expand=status", true},
		{sys.Connect + "/metrics", true},
		{sys.Platform + "/events", true},
		{sys.Connect + "/connectors/outbox/config", false},
		{sys.API + "/readyz", false},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", c.url, nil)
		if c.auth {
			req.SetBasicAuth(sys.User, sys.Password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", c.url, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("GET %s: %v", c.url, err)
		}
		if want := c.auth || strings.HasSuffix(c.url, "/readyz"); want != (resp.StatusCode == http.StatusOK) {
			t.Errorf("GET %s (signed in: %v): %d", c.url, c.auth, resp.StatusCode)
		}
		bodies = append(bodies, string(b))
	}
	return bodies
}

// assertNoSecretLeaks checks that no secret dev made (the Postgres
// superuser's and the roles' passwords, the Kafka principals', the
// operator's) is in anything dev printed or logged, or in answers.
func assertNoSecretLeaks(t *testing.T, sys *devSystem, answers []string) {
	t.Helper()
	data := filepath.Join(sys.dir, "data")
	secrets := map[string]string{"operator " + sys.User: sys.Password}
	super, err := os.ReadFile(filepath.Join(data, "postgres", "pgcluster-superuser.password"))
	if err != nil {
		t.Fatal(err)
	}
	secrets["postgres superuser"] = strings.TrimSpace(string(super))
	raw, err := os.ReadFile(filepath.Join(data, devRolesFile))
	if err != nil {
		t.Fatal(err)
	}
	var roles map[string]string
	if err := json.Unmarshal(raw, &roles); err != nil {
		t.Fatal(err)
	}
	for role, pw := range roles {
		secrets["database role "+role] = pw
	}
	users, err := kafkaclient.ReadUsers(filepath.Join(data, "kafka-users"))
	if err != nil {
		t.Fatal(err)
	}
	for name, pw := range users {
		secrets["kafka user "+name] = pw
	}
	// The demo users' tokens and the issuer's signing key are secrets too.
	for _, user := range []int64{1, 2, 3} {
		secrets[fmt.Sprintf("token of user %d", user)] = sys.token(t, user)
	}
	key, err := os.ReadFile(filepath.Join(data, "auth-signing-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(key)
	if block == nil {
		t.Fatal("auth-signing-key.pem holds no PEM block")
	}
	secrets["signing key"] = base64.StdEncoding.EncodeToString(block.Bytes)[:64]
	// The banner's console login line is the one place meant to show the
	// operator's password (TestDevOperatorPlanesNeedCredentials checks it).
	var stdout []string
	for _, line := range strings.Split(sys.stdout.String(), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "Console ") {
			stdout = append(stdout, line)
		}
	}
	places := map[string]string{"stdout": strings.Join(stdout, "\n"), "stderr": sys.stderr.String()}
	for i, a := range answers {
		places[fmt.Sprintf("answer %d", i)] = a
	}
	for who, secret := range secrets {
		if len(secret) < 16 {
			t.Errorf("the password of %s is short (%d characters)", who, len(secret))
			continue
		}
		for where, text := range places {
			if strings.Contains(text, secret) {
				t.Errorf("the password of %s is in %s", who, where)
			}
		}
	}
}
