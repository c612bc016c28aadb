package api

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/outboxpay/outboxpay/api/problem"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// Problem is an RFC 7807 problem detail, the body of every error response.
type Problem = problem.Problem

// ProblemContentType is the media type of error responses.
const ProblemContentType = problem.ContentType

// domainProblems maps the shop's sentinel errors to a status and problem type.
var domainProblems = []problem.Sentinel{
	{Err: shop.ErrInvalid, Status: http.StatusBadRequest, Kind: "invalid-request"},
	{Err: shop.ErrNotFound, Status: http.StatusNotFound, Kind: "not-found"},
	{Err: shop.ErrInsufficientBalance, Status: http.StatusConflict, Kind: "insufficient-balance"},
	{Err: shop.ErrBalanceLimit, Status: http.StatusConflict, Kind: "balance-limit"},
	{Err: shop.ErrOutOfStock, Status: http.StatusConflict, Kind: "out-of-stock"},
	{Err: shop.ErrOrderNotPayable, Status: http.StatusConflict, Kind: "order-not-payable"},
	{Err: shop.ErrIdempotencyKeyReuse, Status: http.StatusUnprocessableEntity, Kind: "idempotency-key-reused"},
}

// problemFor turns an error returned by a handler or by Echo into a problem.
func problemFor(err error, r *http.Request) Problem {
	return problem.For(err, r, domainProblems, timedOut)
}

// timedOut reports whether err is work cut short: the request's deadline,
// its client going away, or the database's own timeouts. Nothing of such
// work remains (shop rolls it back), so it is a 503 the client may retry,
// not a fault of the server.
func timedOut(err error) bool {
	return problem.ContextDone(err) || errors.Is(err, shop.ErrTimeout)
}

// errorHandler writes every error as application/problem+json and logs the
// ones that are the server's fault.
func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := problemFor(err, c.Request())
		switch {
		case errors.Is(err, shop.ErrTimeout):
			logger.WarnContext(c.Request().Context(), "database timeout",
				"method", c.Request().Method, "path", c.Request().URL.Path, "err", problem.Redact(err, "database"))
		case timedOut(err):
			// Overload or a client that gave up, not a fault: no error
			// line per request (the metrics count the 503s).
			logger.DebugContext(c.Request().Context(), "request cut short",
				"method", c.Request().Method, "path", c.Request().URL.Path, "err", problem.Redact(err, "database"))
		case p.Status >= 500 && !errors.As(err, new(*problem.Error)):
			// The cause is logged without addresses: see problem.Redact.
			logger.ErrorContext(c.Request().Context(), "request failed",
				"method", c.Request().Method, "path", c.Request().URL.Path, "err", problem.Redact(err, "database"))
		}
		if err := problem.Write(c, p); err != nil {
			logger.WarnContext(c.Request().Context(), "write error response", "err", err)
		}
	}
}
