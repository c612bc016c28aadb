package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// sanitizedError is an error of the database whose message says what went
// wrong without the database's address, user, password or connection
// string, which pgconn's and the network's own messages carry. It keeps
// the original for errors.Is and errors.As.
type sanitizedError struct {
	msg string
	err error
}

func (e *sanitizedError) Error() string { return e.msg }
func (e *sanitizedError) Unwrap() error { return e.err }

// dbError wraps err, an error of a database operation (doing), so its
// message is safe to show in a task's trace and to log.
func dbError(doing string, err error) error {
	return &sanitizedError{msg: doing + ": " + describeDBError(err), err: err}
}

// describeDBError says what err, an error talking to the database, means,
// without addresses or credentials.
func describeDBError(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "28P01":
			return "authentication failed (SQLSTATE 28P01)"
		case pgErr.Code == "28000" && strings.Contains(pgErr.Message, "pg_hba.conf"): // the message names the client's address
			return "the server does not allow this connection (pg_hba.conf; SQLSTATE 28000)"
		case strings.HasPrefix(pgErr.Code, "08"):
			return "connection failed (SQLSTATE " + pgErr.Code + ")"
		default:
			// A server error's primary message names objects, not addresses.
			return pgErr.Message + " (SQLSTATE " + pgErr.Code + ")"
		}
	}
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	var recordErr tls.RecordHeaderError
	var netErr net.Error
	switch msg := err.Error(); {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return "timed out"
	case strings.Contains(msg, "server refused TLS connection"):
		return "the server does not accept TLS connections (database.sslmode requires TLS)"
	case errors.As(err, &hostnameErr):
		return "the server's TLS certificate does not name the host (database.sslmode=verify-full)"
	case errors.As(err, &unknownAuthority), errors.As(err, &certErr):
		return "the server's TLS certificate could not be verified (database.sslrootcert)"
	case errors.As(err, &recordErr):
		return "TLS handshake failed"
	case strings.Contains(msg, "read CA file"), strings.Contains(msg, "unable to add CA to cert pool"):
		return "cannot use database.sslrootcert as a CA certificate file"
	case errors.As(err, &dnsErr):
		return "the database host name does not resolve"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "database host unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timed out"
	case errors.Is(err, net.ErrClosed), strings.Contains(msg, "conn closed"):
		return "connection closed"
	}
	var connectErr *pgconn.ConnectError
	var opErr *net.OpError
	if errors.As(err, &connectErr) || errors.As(err, &opErr) {
		return "connection failed"
	}
	// Errors of neither pgconn's connecting nor the network (a row that
	// does not scan, a protocol violation) carry no address.
	return err.Error()
}

// connectSettingsError describes an error parsing the connection settings
// without quoting them (pgconn's message does, password masked, host not).
func connectSettingsError(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) && pe.Unwrap() != nil {
		return "invalid: " + describeDBError(pe.Unwrap())
	}
	return "invalid"
}
