package main

import (
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strings"

	"github.com/outboxpay/outboxpay/internal/event"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

// curlCredentials is what the banner's curl commands pass to -u: a command
// substitution that reads dev's generated password from its file (so the
// password itself is never printed), or the CONNECT_REST_* variables.
func curlCredentials(cfg config) string {
	if isDevCredentialsFile(cfg, cfg.ConnectRESTCredentialsFile) {
		return fmt.Sprintf(`"%s:$(sed -n 's/^%s: *//p' '%s')"`, devUser, devUser, cfg.ConnectRESTCredentialsFile)
	}
	return `"$CONNECT_REST_USERNAME:$CONNECT_REST_PASSWORD"`
}

// isDevCredentialsFile reports whether path is the credentials file `dev`
// generated (under DATA_DIR) and the REST clients sign in as its user.
func isDevCredentialsFile(cfg config, path string) bool {
	return cfg.ConnectRESTUsername == devUser && path == cfg.ConnectRESTCredentialsFile &&
		strings.HasSuffix(path, string(filepath.Separator)+devCredentialsFile)
}

// consoleLogin is how the banner tells to log in to the console: with
// dev's generated file, its user and password (a local development
// password, made for this machine, which the browser's login asks for);
// otherwise the users of the file the console uses (CONSOLE_CREDENTIALS_FILE,
// else CONNECT_REST_CREDENTIALS_FILE), named but not read.
func consoleLogin(cfg config) string {
	if isDevCredentialsFile(cfg, cfg.ConsoleCredentialsFile) {
		return fmt.Sprintf("log in as %s, password %s", devUser, cfg.ConnectRESTPassword)
	}
	return "log in as one of the users of " + cfg.ConsoleCredentialsFile
}

// devEndpoints are what `dev` runs, for its banner.
type devEndpoints struct {
	api, metrics            net.Addr
	connectURL, platformURL string
	consoleURL              string // the operator API's base URL; "" when not served
	database, kafka         string
	kafkaUsersFile          string           // the embedded Kafka's users; "" for another Kafka
	tokens                  map[int64]string // demo user -> token file; empty with an external identity provider
}

func banner(ep devEndpoints, cfg config) string {
	base := "http://" + localAddr(ep.api)
	creds := curlCredentials(cfg)
	// The curls read the token from its file, as they do the password.
	bearer := `"Authorization: Bearer $TOKEN"`
	if path, ok := ep.tokens[1]; ok {
		bearer = fmt.Sprintf(`"Authorization: Bearer $(cat '%s')"`, path)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\noutboxpay is running. Ctrl-C stops everything.\n\n")
	fmt.Fprintf(&b, "  API            %s   (OpenAPI: %s/openapi.yaml)\n", base, base)
	if ep.consoleURL != "" {
		fmt.Fprintf(&b, "  Console        %s/console   (%s)\n", ep.consoleURL, consoleLogin(cfg))
	}
	fmt.Fprintf(&b, "  Metrics        http://%s/metrics   (the API's, the consumers' and the reconciler's)\n", localAddr(ep.metrics))
	fmt.Fprintf(&b, "  Kafka Connect  %s   (connector: %s/connectors/outbox/status, metrics: %s/metrics)\n", ep.connectURL, ep.connectURL, ep.connectURL)
	fmt.Fprintf(&b, "  Platform       %s/events   (what the data-platform consumer delivered)\n", ep.platformURL)
	fmt.Fprintf(&b, "  Kafka          %s\n", ep.kafka)
	fmt.Fprintf(&b, "  Postgres       %s\n", redactDatabaseURL(ep.database))
	fmt.Fprintf(&b, "  Credentials    Kafka Connect and the platform mock's /events and /faults need HTTP Basic:\n")
	fmt.Fprintf(&b, "                 user %s, password in %s\n", cfg.ConnectRESTUsername, cfg.ConnectRESTCredentialsFile)
	if len(ep.tokens) > 0 {
		users := slices.Sorted(maps.Keys(ep.tokens))
		fmt.Fprintf(&b, "                 the API needs a bearer token: demo users %v have one (every scope, valid %v) in %s\n",
			users, cfg.DevTokenTTL, filepath.Dir(ep.tokens[users[0]]))
		fmt.Fprintf(&b, "                 more: outboxpay token --user N --scope 'orders payments'\n\n")
	} else {
		fmt.Fprintf(&b, "                 the API needs a bearer token of %s for %s: put it in $TOKEN\n\n", cfg.AuthIssuer, cfg.AuthAudience)
	}
	fmt.Fprintf(&b, "Try:\n")
	fmt.Fprintf(&b, "  curl -s -u %s %s/connectors/outbox/status\n", creds, ep.connectURL)
	fmt.Fprintf(&b, "  curl -s -u %s %s/events\n", creds, ep.platformURL)
	fmt.Fprintf(&b, "  curl -s -X POST %s/users/1/balance/charge -H %s -H 'Content-Type: application/json' -d '{\"amount\": 50000}'\n", base, bearer)
	fmt.Fprintf(&b, "  curl -s -X POST %s/orders -H %s -H 'Content-Type: application/json' -d '{\"items\": [{\"productDetailId\": 1, \"quantity\": 2}]}'\n", base, bearer)
	fmt.Fprintf(&b, "  curl -s -X POST %s/orders/1/payment -H %s -H 'Content-Type: application/json' -H 'Idempotency-Key: first-try' -d '{}'\n", base, bearer)
	fmt.Fprintf(&b, "  curl -s %s/orders/1 -H %s\n", base, bearer)
	if ep.kafkaUsersFile == "" {
		fmt.Fprintf(&b, "  kcat -b %s -C -t %s -f '%%k %%h %%s\\n' -e\n\n", strings.Split(ep.kafka, ",")[0], event.Topic(event.AggregatePayment))
	} else {
		fmt.Fprintf(&b, "  kcat -b %s -X security.protocol=SASL_PLAINTEXT -X sasl.mechanism=%s -X sasl.username=%s \\\n"+
			"    -X sasl.password=\"$(sed -n 's/^%s: //p' %s)\" -C -t %s -f '%%k %%h %%s\\n' -e\n\n",
			strings.Split(ep.kafka, ",")[0], kafkaclient.EmbeddedMechanism, kafkaclient.PrincipalAdmin, kafkaclient.PrincipalAdmin, ep.kafkaUsersFile, event.Topic(event.AggregatePayment))
	}
	return b.String()
}
