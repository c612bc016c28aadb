package kafkaclient

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

const secret = "s3cret-Pa55"

func TestValidate(t *testing.T) {
	cases := map[string]struct {
		cfg  Config
		ok   bool
		prot string
	}{
		"no SASL":                {Config{Bootstrap: "b:9092"}, true, Plaintext},
		"scram 512":              {Config{SASLMechanism: ScramSHA512, SASLUsername: "u", SASLPassword: secret}, true, SASLPlaintext},
		"scram 256 over ssl":     {Config{SecurityProtocol: "sasl_ssl", SASLMechanism: ScramSHA256, SASLUsername: "u", SASLPassword: secret}, true, SASLSSL},
		"ssl":                    {Config{SecurityProtocol: SSL}, true, SSL},
		"plain mechanism":        {Config{SASLMechanism: "PLAIN", SASLUsername: "u", SASLPassword: secret}, false, ""},
		"no password":            {Config{SASLMechanism: ScramSHA512, SASLUsername: "u"}, false, ""},
		"password, no mechanism": {Config{SASLUsername: "u", SASLPassword: secret}, false, ""},
		"sasl protocol alone":    {Config{SecurityProtocol: SASLPlaintext}, false, ""},
		"plaintext with sasl":    {Config{SecurityProtocol: Plaintext, SASLMechanism: ScramSHA512, SASLUsername: "u", SASLPassword: secret}, false, ""},
		"unknown protocol":       {Config{SecurityProtocol: "carrier-pigeon"}, false, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("error %v does not wrap ErrInvalid", err)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains the password", err)
				}
				return
			}
			if got := tc.cfg.Protocol(); got != tc.prot {
				t.Errorf("Protocol() = %s, want %s", got, tc.prot)
			}
		})
	}
}

func TestConfigMap(t *testing.T) {
	cm := Config{Bootstrap: "b:9092"}.ConfigMap()
	if cm["bootstrap.servers"] != "b:9092" || cm["security.protocol"] != "plaintext" || cm["sasl.mechanism"] != nil {
		t.Fatalf("no SASL: %v", cm)
	}
	cm = Config{Bootstrap: "b:9092"}.WithUser(ScramSHA512, "connector", secret).ConfigMap()
	want := map[string]any{"bootstrap.servers": "b:9092", "security.protocol": "sasl_plaintext",
		"sasl.mechanism": ScramSHA512, "sasl.username": "connector", "sasl.password": secret}
	for k, v := range want {
		if cm[k] != v {
			t.Errorf("%s = %v, want %v", k, cm[k], v)
		}
	}
}

func TestNoPasswordInText(t *testing.T) {
	c := Config{Bootstrap: "b:9092"}.WithUser(ScramSHA256, "reconciler", secret)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("kafka", "kafka", c)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("kafka", "kafka", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), logs.String()} {
		if strings.Contains(s, secret) {
			t.Fatalf("password in %q", s)
		}
		if !strings.Contains(s, "reconciler") {
			t.Fatalf("user missing from %q", s)
		}
	}
}

func TestEnsureUsers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "kafka-users")
	first, err := EnsureUsers(path, "admin", "connector")
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || first["admin"] == "" || first["connector"] == "" || first["admin"] == first["connector"] {
		t.Fatalf("users: %d, distinct random passwords expected", len(first))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	again, err := EnsureUsers(path, "admin", "connector", "stock")
	if err != nil {
		t.Fatal(err)
	}
	if again["admin"] != first["admin"] || again["connector"] != first["connector"] || again["stock"] == "" {
		t.Fatal("passwords not kept, or the new user has none")
	}
	read, err := ReadUsers(path)
	if err != nil || len(read) != 3 || read["stock"] != again["stock"] {
		t.Fatalf("ReadUsers: %d users, %v", len(read), err)
	}

	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("# users\nadmin: "+secret+"\nno-colon-"+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadUsers(bad); err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("ReadUsers of a bad line: %v", err)
	}
}

func TestACLsNameKnownPrincipals(t *testing.T) {
	known := map[string]bool{}
	for _, p := range Principals() {
		known[p] = true
	}
	for _, a := range ACLs() {
		if !known[a.Principal] {
			t.Errorf("ACL %+v: unknown principal", a)
		}
	}
	// No consumer group's principal may write an event topic.
	for _, g := range ConsumerGroups() {
		for _, a := range ACLs() {
			if a.Principal == g && a.Operation == OpWrite && (a.Prefixed || !strings.HasSuffix(a.Name, ".dlq")) {
				t.Errorf("group %s may write %+v", g, a)
			}
		}
	}
}

// A consumer takes ConsumerFetchBounds: librdkafka accepts them (the
// fetch size it derives from them included).
func TestConsumerFetchBounds(t *testing.T) {
	cm := Config{Bootstrap: "127.0.0.1:1"}.ConfigMap()
	for k, v := range ConsumerFetchBounds() {
		cm[k] = v
	}
	cm["group.id"] = "bounds"
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		t.Fatalf("a consumer with the fetch bounds: %v", err)
	}
	defer c.Close()
	if got, want := ConsumerFetchBounds()["queued.max.messages.kbytes"], 8192; got != want {
		t.Errorf("queued.max.messages.kbytes %v, want %v", got, want)
	}
}
