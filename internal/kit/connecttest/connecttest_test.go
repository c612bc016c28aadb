package connecttest_test

import (
	"regexp"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/connecttest"
)

// Every ${env:...} placeholder of the outbox connector's config resolves
// through Lookup, and a name outside Env does not.
func TestLookupResolvesTheConfigsPlaceholders(t *testing.T) {
	config := connecttest.OutboxConfig(t)
	placeholder := regexp.MustCompile(`\$\{env:([A-Z_]+)\}`)
	found := 0
	for key, v := range config {
		for _, m := range placeholder.FindAllStringSubmatch(v, -1) {
			found++
			if got, ok := connecttest.Lookup(m[1]); !ok || got != connecttest.Env()[m[1]] {
				t.Errorf("%s: ${env:%s} looks up %q, %v", key, m[1], got, ok)
			}
		}
	}
	if found == 0 {
		t.Fatalf("no ${env:...} placeholder in %v", config)
	}
	if _, ok := connecttest.Lookup("HOME"); ok {
		t.Error("Lookup(HOME) found a value; want only the OUTBOX_DB_* of Env")
	}
}
