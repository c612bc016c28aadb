package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/internal/basicauth"
)

// connectClient is a client of the Kafka Connect REST API at url that sends
// CONNECT_REST_USERNAME and CONNECT_REST_PASSWORD, if set.
func (c config) connectClient(url string, timeout time.Duration) *rest.Client {
	return rest.NewClient(url, &http.Client{Timeout: timeout}, rest.BasicAuth(c.ConnectRESTUsername, c.ConnectRESTPassword))
}

// isLoopback reports whether addr (host:port) names this machine only:
// localhost or a loopback IP. An empty host (every interface) does not.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// operatorCredentials are the credentials of the operator endpoints served
// on addr, from the credentials file at path (the variable envName). With
// no file they are nil (the endpoints are open): allowed, with a warning,
// on a loopback address only; on any other address it is an error, so
// that an operator plane is never open to the network by omission.
func operatorCredentials(what, envName, path, addr string, logger *slog.Logger) (*basicauth.Credentials, error) {
	if path == "" {
		if !isLoopback(addr) {
			return nil, fmt.Errorf("%s: %s is not set: refusing to serve it without authentication on %s, which is not a loopback address (set %s, or listen on 127.0.0.1)",
				what, envName, addr, envName)
		}
		logger.Warn(what+": no credentials required ("+envName+" is not set); open to every local user", "addr", addr)
		return nil, nil
	}
	creds, err := basicauth.Load(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", what, envName, err)
	}
	return creds, nil
}

// connectUnauthorized writes a 401 in Kafka Connect's error shape.
func connectUnauthorized(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(connect.ErrorBody{ErrorCode: http.StatusUnauthorized,
		Message: "Unauthorized: this Kafka Connect REST API requires HTTP Basic credentials"})
}
