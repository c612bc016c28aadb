package connect

import (
	"errors"
	"regexp"
	"strings"
)

// Heartbeat is a parsed heartbeat.action.query: a logical decoding message
// the engine emits with pg_logical_emit_message, its arguments bound as
// parameters. The configured SQL itself is never run.
type Heartbeat struct {
	Transactional bool
	Prefix        string
	// Content is the message's text; when ContentNow is set, the time of
	// the heartbeat (now()::text) instead.
	Content    string
	ContentNow bool
}

// heartbeatGrammar is the one heartbeat.action.query form the embedded
// engine accepts; see heartbeatQuery.
var heartbeatGrammar = regexp.MustCompile(`(?is)^\s*select\s+pg_logical_emit_message\s*\(` +
	`\s*(true|false)\s*,` +
	`\s*'((?:[^']|'')*)'\s*,` +
	`\s*(?:(now\s*\(\s*\)\s*::\s*(?:varchar|text))|'((?:[^']|'')*)')` +
	`\s*\)\s*;?\s*$`)

// errHeartbeatQuery is the message for any heartbeat.action.query outside
// the grammar; it does not echo the query.
var errHeartbeatQuery = errors.New("the embedded engine runs only SELECT pg_logical_emit_message(<true|false>, '<prefix>', <now()::varchar | now()::text | '<text>'>) " +
	"(string literals in single quotes, a quote inside doubled; no other SQL)")

// ParseHeartbeat parses a heartbeat.action.query of the grammar
//
//	SELECT pg_logical_emit_message(<transactional>, '<prefix>', <content>) [;]
//
// where transactional is true or false, prefix is a non-empty string
// literal, and content is now()::varchar, now()::text or a string literal.
// Keywords are case-insensitive, whitespace between tokens is free, string
// literals are standard SQL (” for a quote inside; no E”, $$ or
// backslash escapes) without control characters. Anything else is an error.
func ParseHeartbeat(q string) (Heartbeat, error) {
	m := heartbeatGrammar.FindStringSubmatch(q)
	if m == nil {
		return Heartbeat{}, errHeartbeatQuery
	}
	h := Heartbeat{
		Transactional: strings.EqualFold(m[1], "true"),
		Prefix:        strings.ReplaceAll(m[2], "''", "'"),
		ContentNow:    m[3] != "",
		Content:       strings.ReplaceAll(m[4], "''", "'"),
	}
	if h.Prefix == "" || strings.ContainsFunc(m[2]+m[4], isControl) {
		return Heartbeat{}, errHeartbeatQuery
	}
	return h, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// heartbeatQuery checks heartbeat.action.query; empty means no heartbeat.
func heartbeatQuery(v, _ string) string {
	if strings.TrimSpace(v) == "" {
		return ""
	}
	if _, err := ParseHeartbeat(v); err != nil {
		return err.Error()
	}
	return ""
}

// Statement returns the SQL that emits h and its arguments, to run with
// bind parameters.
func (h Heartbeat) Statement() (sql string, args []any) {
	if h.ContentNow {
		return `SELECT pg_logical_emit_message($1::boolean, $2::text, now()::text)`, []any{h.Transactional, h.Prefix}
	}
	return `SELECT pg_logical_emit_message($1::boolean, $2::text, $3::text)`, []any{h.Transactional, h.Prefix, h.Content}
}
