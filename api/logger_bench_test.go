package api

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/labstack/echo/v4"
)

// BenchmarkRequestLogger is the cost of the request log line at info (the
// text handler writing to a file, as `dev` logs to a redirected stderr)
// against the same request with the line at debug, filtered out: what
// logging successes at info costs per request.
func BenchmarkRequestLogger(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for _, bc := range []struct {
		name  string
		level slog.Level
	}{{"info", slog.LevelInfo}, {"filtered", slog.LevelWarn}} {
		b.Run(bc.name, func(b *testing.B) {
			logger := slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: bc.level}))
			e := echo.New()
			e.Use(requestLogger(logger))
			e.POST("/orders/:orderId/payment", func(c echo.Context) error { return c.NoContent(http.StatusCreated) })
			req := httptest.NewRequest(http.MethodPost, "/orders/42/payment", nil)
			b.ReportAllocs()
			for b.Loop() {
				e.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
