package chaos

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// A start that fails returns its error and stops what it started; it once
// panicked in its cleanup on the nil system it was about to return.
func TestStartSystemFailureStopsCleanly(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := startSystem(t.Context(), Config{Dir: file}, slog.New(slog.DiscardHandler))
	if err == nil || s != nil {
		t.Fatalf("startSystem in a file's place: %v, %v; want nil and an error", s, err)
	}
}
