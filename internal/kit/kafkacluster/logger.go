package kafkacluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// maxKeptErrors bounds the error messages a kfakeLogger keeps for stop.
const maxKeptErrors = 16

// kfakeLogger is kfake's logger writing to slog: kfake errors and warnings
// at the same levels, its informational and debug messages at debug level.
// It also keeps the error messages, since kfake reports a failure to save
// its state on Close only through its logger.
type kfakeLogger struct {
	l *slog.Logger

	mu   sync.Mutex
	errs []string
}

func newKfakeLogger(l *slog.Logger) *kfakeLogger {
	return &kfakeLogger{l: l.With("component", "kfake")}
}

// Logf implements kfake.Logger.
func (k *kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	case kfake.LogLevelInfo:
		sl = slog.LevelDebug
	default:
		sl = slog.LevelDebug - 4
	}
	if level == kfake.LogLevelError {
		msg := fmt.Sprintf(format, args...)
		k.mu.Lock()
		if len(k.errs) < maxKeptErrors {
			k.errs = append(k.errs, msg)
		}
		k.mu.Unlock()
	}
	ctx := context.Background()
	if !k.l.Enabled(ctx, sl) {
		return
	}
	k.l.Log(ctx, sl, fmt.Sprintf(format, args...))
}

// drainErrors returns the error messages logged since the last call.
func (k *kfakeLogger) drainErrors() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	errs := k.errs
	k.errs = nil
	return errs
}
