package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// run runs the outboxpay binary with args and env added to a clean
// environment, and returns its exit code, stdout and stderr.
func run(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("outboxpay %v did not exit within 2 minutes\n%s", args, stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}
