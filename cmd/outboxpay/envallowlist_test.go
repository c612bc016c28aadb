package main

import (
	"strings"
	"testing"
)

// CONNECT_ENV_ALLOWLIST_PATTERN is compiled once by loadConfig, matches
// whole names, and an invalid pattern stops start-up.
func TestConnectEnvAllowlistPattern(t *testing.T) {
	cases := []struct {
		pattern      string // "" leaves the default
		allowed, not []string
	}{
		{"", []string{"OUTBOX_DB_PASSWORD", "OUTBOX_DB_HOST"}, []string{"HOME", "PATH", "DATABASE_URL", "X_OUTBOX_DB_HOST"}},
		{"OUTBOX_DB_HOST|OUTBOX_DB_PORT", []string{"OUTBOX_DB_HOST"}, []string{"OUTBOX_DB_PASSWORD", "OUTBOX_DB_HOSTS"}},
	}
	for _, c := range cases {
		if c.pattern != "" {
			t.Setenv("CONNECT_ENV_ALLOWLIST_PATTERN", c.pattern)
		}
		cfg, err := loadConfig()
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range c.allowed {
			if !cfg.envAllowlist.MatchString(name) {
				t.Errorf("pattern %q refuses %s", c.pattern, name)
			}
		}
		for _, name := range c.not {
			if cfg.envAllowlist.MatchString(name) {
				t.Errorf("pattern %q allows %s", c.pattern, name)
			}
		}
	}
	t.Setenv("CONNECT_ENV_ALLOWLIST_PATTERN", "(")
	if _, err := loadConfig(); err == nil || !strings.Contains(err.Error(), "CONNECT_ENV_ALLOWLIST_PATTERN") {
		t.Fatalf("an invalid pattern: %v", err)
	}
}
