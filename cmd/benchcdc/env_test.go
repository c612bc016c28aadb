package main

import (
	"strings"
	"testing"
)

// The bench logs its database's URL without the password (it logged the
// private cluster's superuser password before).
func TestRedactedURL(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"postgres://postgres:s3cret@127.0.0.1:5432/bench?sslmode=disable", "postgres://postgres:xxxxx@127.0.0.1:5432/bench?sslmode=disable"},
		{"postgres://postgres@127.0.0.1:5432/bench", "postgres://postgres@127.0.0.1:5432/bench"},
		{"postgres://postgres:s3cret@[::1", ""},
	} {
		got := redactedURL(c.url)
		if got != c.want || strings.Contains(got, "s3cret") {
			t.Errorf("redactedURL(%q) = %q, want %q", c.url, got, c.want)
		}
	}
}
