package engine_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/eventually"
)

// recorder keeps the warnings logged through it.
type recorder struct {
	mu       sync.Mutex
	warnings []map[string]string // attributes by key, "msg" the message
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	w := map[string]string{"msg": rec.Message}
	rec.Attrs(func(a slog.Attr) bool { w[a.Key] = a.Value.String(); return true })
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warnings = append(r.warnings, w)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// prefixes returns the prefixes of the logical decoding messages warned
// about, with the topic each names.
func (r *recorder) prefixes() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for _, w := range r.warnings {
		if p, ok := w["prefix"]; ok {
			out[p] = w["topic"]
		}
	}
	return out
}

// A logical decoding message that message.prefix.exclude.list does not
// exclude is one Debezium would publish to topic.prefix + ".message": the
// engine says so in a warning and publishes nothing; the excluded ones
// (the heartbeats) pass silently.
func TestCapturedMessagesAreReported(t *testing.T) {
	r := newRig(t, map[string]string{"message.prefix.exclude.list": "heartbeat,quiet.*"})
	rec := &recorder{}
	r.startLogged(nil, slog.New(rec))
	for _, prefix := range []string{"heartbeat", "quiet.one", "audit"} {
		if _, err := r.db.Exec(`SELECT pg_logical_emit_message(false, $1, 'x')`, prefix); err != nil {
			t.Fatal(err)
		}
	}
	eventually.True(t, 30*time.Second, "a warning about the audit message", func() (bool, error) {
		return rec.prefixes()["audit"] != "", nil
	})
	got := rec.prefixes()
	if got["audit"] != "outboxpay.message" {
		t.Errorf("warning names topic %q, want outboxpay.message", got["audit"])
	}
	for _, quiet := range []string{"heartbeat", "quiet.one"} {
		if _, ok := got[quiet]; ok {
			t.Errorf("warned about the excluded prefix %q", quiet)
		}
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	if !slices.Equal(keys, []string{"audit"}) {
		t.Errorf("warned about prefixes %v, want [audit]", keys)
	}
}
