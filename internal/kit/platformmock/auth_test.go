package platformmock_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/kit/platformmock"
)

// With operator credentials, the operator endpoints (faults, the recorded
// events, unknown paths) answer 401 with a challenge and change nothing
// unless asked with them; POST /events, the platform's API that the
// consumer calls, and GET /healthz stay open.
func TestOperatorCredentials(t *testing.T) {
	const user, password = "admin", "mock-s3cret"
	m := start(t, platformmock.Config{Seed: 1, Operators: basicauth.New(basicauth.User{Name: user, Password: password})})
	m.must(t, http.StatusCreated, "POST", "/events", payment, "Idempotency-Key", "k1", "X-Event-Type", "PaymentCompleted")
	m.must(t, http.StatusOK, "GET", "/healthz", "")
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }

	for _, cred := range []struct{ name, header string }{
		{"none", ""},
		{"wrong password", basic(user, "guess")},
		{"unknown user", basic("root", password)},
		{"bearer", "Bearer " + password},
	} {
		for _, r := range []struct{ method, path, body string }{
			{"PUT", "/faults", `{"failureRate":1}`},
			{"GET", "/faults", ""},
			{"GET", "/events", ""},
			{"GET", "/events/k1", ""},
			{"DELETE", "/events", ""},
			{"GET", "/nothing-here", ""},
		} {
			t.Run(cred.name+"/"+r.method+" "+r.path, func(t *testing.T) {
				var headers []string
				if cred.header != "" {
					headers = []string{"Authorization", cred.header}
				}
				resp := m.must(t, http.StatusUnauthorized, r.method, r.path, r.body, headers...)
				if got := resp.header.Get("WWW-Authenticate"); got != `Basic realm="platform mock operator"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
				if ct := resp.header.Get("Content-Type"); ct != "application/problem+json" || strings.Contains(string(resp.body), password) {
					t.Errorf("Content-Type %q, body %s", ct, resp.body)
				}
			})
		}
	}
	// Nothing changed: a POST is still served (no injected failure) and
	// recorded once.
	m.must(t, http.StatusCreated, "POST", "/events", payment, "Idempotency-Key", "k2", "X-Event-Type", "PaymentCompleted")
	if st := m.Stats(); st.FirstDeliveries != 2 || st.Failed != 0 {
		t.Errorf("stats %+v after refused operator calls", st)
	}

	// With the credentials the operator endpoints work.
	auth := []string{"Authorization", basic(user, password)}
	m.must(t, http.StatusOK, "GET", "/events/k1", "", auth...)
	var events struct {
		Events []platformmock.Event `json:"events"`
	}
	m.must(t, http.StatusOK, "GET", "/events", "", auth...).decode(t, &events)
	if len(events.Events) != 2 {
		t.Errorf("GET /events with credentials: %d events, want 2", len(events.Events))
	}
	m.must(t, http.StatusOK, "PUT", "/faults", `{"failureRate":1}`, auth...)
	m.must(t, http.StatusServiceUnavailable, "POST", "/events", payment, "Idempotency-Key", "k3")
}
