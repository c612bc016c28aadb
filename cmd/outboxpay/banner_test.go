package main

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestBanner(t *testing.T) {
	cfg := config{ConnectRESTUsername: "admin", ConnectRESTPassword: "p4ss-word",
		ConnectRESTCredentialsFile: "/data/" + devCredentialsFile, DevTokenTTL: 24 * time.Hour,
		AuthIssuer: "outboxpay-dev", AuthAudience: "outboxpay"}
	ep := devEndpoints{
		api:        &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080},
		metrics:    &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9100},
		connectURL: "http://127.0.0.1:8083", platformURL: "http://127.0.0.1:8090",
		database: "postgres://u:db-s3cret@127.0.0.1:5432/outboxpay", kafka: "127.0.0.1:9092",
		tokens: map[int64]string{1: "/data/tokens/user-1.jwt", 2: "/data/tokens/user-2.jwt"},
	}
	b := banner(ep, cfg)
	for _, secret := range []string{"p4ss-word", "db-s3cret"} {
		if strings.Contains(b, secret) {
			t.Errorf("the banner prints a secret:\n%s", b)
		}
	}
	if strings.Contains(b, "Console") {
		t.Errorf("a banner without the console names it:\n%s", b)
	}
	// The console's login: dev's generated password, in its line only.
	ep.consoleURL = "http://127.0.0.1:8088"
	cfg.ConsoleCredentialsFile = cfg.ConnectRESTCredentialsFile
	b = banner(ep, cfg)
	if want := "  Console        http://127.0.0.1:8088/console   (log in as admin, password p4ss-word)\n"; !strings.Contains(b, want) {
		t.Errorf("the banner lacks %q:\n%s", want, b)
	}
	if strings.Count(b, "p4ss-word") != 1 || strings.Contains(b, "db-s3cret") {
		t.Errorf("the banner prints a secret outside the console's login:\n%s", b)
	}
	// An operator's own console credentials file: its password is not dev's.
	cfg.ConsoleCredentialsFile = "/etc/console.properties"
	b = banner(ep, cfg)
	if !strings.Contains(b, "/console   (log in as one of the users of /etc/console.properties)") || strings.Contains(b, "p4ss-word") {
		t.Errorf("banner with CONSOLE_CREDENTIALS_FILE:\n%s", b)
	}
	for _, want := range []string{
		"postgres://u:xxxxx@127.0.0.1:5432/outboxpay",
		"http://127.0.0.1:9100/metrics",
		`curl -s -u "admin:$(sed -n 's/^admin: *//p' '/data/connect-credentials.properties')" http://127.0.0.1:8083/connectors/outbox/status`,
		`curl -s -u "admin:$(sed -n 's/^admin: *//p' '/data/connect-credentials.properties')" http://127.0.0.1:8090/events`,
		`curl -s http://127.0.0.1:8080/orders/1 -H "Authorization: Bearer $(cat '/data/tokens/user-1.jwt')"`,
		"/data/tokens",
	} {
		if !strings.Contains(b, want) {
			t.Errorf("the banner lacks %s:\n%s", want, b)
		}
	}
	// Credentials of the operator's own file: the banner names the
	// variables; tokens of an identity provider of the operator's: $TOKEN.
	cfg.ConnectRESTCredentialsFile = "/etc/connect.properties"
	cfg.ConsoleCredentialsFile = cfg.ConnectRESTCredentialsFile
	ep.tokens = nil
	b = banner(ep, cfg)
	for _, want := range []string{
		`curl -s -u "$CONNECT_REST_USERNAME:$CONNECT_REST_PASSWORD" http://127.0.0.1:8083/connectors/outbox/status`,
		`-H "Authorization: Bearer $TOKEN"`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("banner with CONNECT_REST_CREDENTIALS_FILE and no dev tokens lacks %s:\n%s", want, b)
		}
	}
	// A listener address that is not TCP does not crash it.
	if got := localAddr(&net.UnixAddr{Name: "/tmp/sock", Net: "unix"}); got != "/tmp/sock" {
		t.Errorf("localAddr(unix) = %q", got)
	}
	if got := localAddr(&net.TCPAddr{IP: net.IPv6unspecified, Port: 8083}); got != "localhost:8083" {
		t.Errorf("localAddr([::]:8083) = %q", got)
	}
}
