package engine_test

import (
	"log/slog"
	"testing"

	"github.com/lib/pq"

	"github.com/outboxpay/outboxpay/internal/kit/logtest"
)

func pqArray(v []string) any { return pq.Array(v) }

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return logtest.T(t, slog.LevelDebug)
}
