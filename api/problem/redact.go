package problem

import (
	"errors"
	"net"
	"regexp"
	"strings"
)

// hostPort matches an IPv4 or bracketed IPv6 address with a port, and a
// hostname with a port after "host" words such as pgx's "(host)" or "host=".
var hostPort = regexp.MustCompile(`(\[[0-9A-Fa-f.]*:[0-9A-Fa-f:.%\w]*\]|\b(?:\d{1,3}\.){3}\d{1,3})(:\d+)?|\bhost=\S+`)

// Redact returns err's message for logs, without network addresses: a
// failed dial or read on a connection to peer (such as "database") becomes
// "<peer> unreachable" and the operation's cause (such as "connection
// refused"); any address left in the text is replaced by "<addr>". It keeps
// the rest of the message, so the log still says what was being done.
func Redact(err error, peer string) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	var op *net.OpError
	if errors.As(err, &op) {
		cause := "network error"
		if op.Err != nil {
			cause = op.Err.Error()
		}
		msg = strings.Replace(msg, op.Error(), peer+" unreachable: "+op.Op+": "+cause, 1)
	}
	return hostPort.ReplaceAllString(msg, "<addr>")
}
