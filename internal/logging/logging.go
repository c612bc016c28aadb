// Package logging holds the one convention of the project's constructors
// about loggers: a nil *slog.Logger means "log nothing".
package logging

import "log/slog"

// OrDiscard returns l, or a logger that discards everything when l is nil.
func OrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
