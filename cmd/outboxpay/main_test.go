package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
)

// binDir holds the outboxpay binary the tests run as a separate process.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "outboxpay-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := pgtest.Run(m)
	if err := stopSharedDev(); err != nil {
		fmt.Fprintln(os.Stderr, "stop the shared dev system:", err)
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
	buildOut  []byte
)

// binary builds the outboxpay command once per test run.
func binary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binDir, "outboxpay")
	buildOnce.Do(func() {
		buildOut, buildErr = exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build: %v\n%s", buildErr, buildOut)
	}
	return bin
}
