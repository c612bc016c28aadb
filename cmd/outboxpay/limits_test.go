package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The rate limit, in-flight bound and order expiry settings default as
// documented, and refuse what makes no sense.
func TestLimitsConfig(t *testing.T) {
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIRateLimit != 50 || cfg.APIRateBurst != 100 || len(cfg.apiTrustedProxies) != 0 || cfg.OrderExpiry != 30*time.Minute {
		t.Errorf("defaults: rate %v, burst %d, trusted proxies %v, order expiry %v",
			cfg.APIRateLimit, cfg.APIRateBurst, cfg.apiTrustedProxies, cfg.OrderExpiry)
	}
	if cfg.APIMaxInFlight != 4*cfg.DBMaxConns || cfg.APIQueueWait != 40*time.Millisecond {
		t.Errorf("defaults: API_MAX_IN_FLIGHT %d, want 4 * DB_MAX_CONNS (%d); API_QUEUE_WAIT %v, want 40ms",
			cfg.APIMaxInFlight, 4*cfg.DBMaxConns, cfg.APIQueueWait)
	}
	cases := []struct {
		env   map[string]string
		wrong string // "" if valid
	}{
		{map[string]string{"API_MAX_IN_FLIGHT": "64"}, ""},
		{map[string]string{"API_MAX_IN_FLIGHT": "-1"}, "API_MAX_IN_FLIGHT"},
		{map[string]string{"API_QUEUE_WAIT": "0s"}, ""},
		{map[string]string{"API_QUEUE_WAIT": "-1ms"}, "API_QUEUE_WAIT"},
		{map[string]string{"API_QUEUE_WAIT": "10s"}, "API_QUEUE_WAIT"},
		{map[string]string{"API_RATE_LIMIT": "0"}, ""},
		{map[string]string{"API_RATE_LIMIT": "2.5", "API_RATE_BURST": "5"}, ""},
		{map[string]string{"API_RATE_LIMIT": "-1"}, "API_RATE_LIMIT"},
		{map[string]string{"API_RATE_BURST": "-1"}, "API_RATE_BURST"},
		{map[string]string{"API_TRUSTED_PROXIES": "10.0.0.0/8,fd00::/8"}, ""},
		{map[string]string{"API_TRUSTED_PROXIES": "10.0.0.1"}, "API_TRUSTED_PROXIES"},
		{map[string]string{"ORDER_EXPIRY": "2h"}, ""},
		{map[string]string{"ORDER_EXPIRY": "0s"}, "ORDER_EXPIRY"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.env), func(t *testing.T) {
			_, err := loadConfigWith(t, c.env)
			switch {
			case c.wrong == "" && err != nil:
				t.Fatal(err)
			case c.wrong != "" && (err == nil || !strings.Contains(err.Error(), c.wrong)):
				t.Fatalf("got %v, want an error naming %s", err, c.wrong)
			}
		})
	}
}
