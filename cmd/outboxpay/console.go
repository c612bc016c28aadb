package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/outboxpay/outboxpay/api/operator"
	"github.com/outboxpay/outboxpay/internal/basicauth"
)

// consoleHandler is the operator API and the console page on o, for the
// operators of CONSOLE_CREDENTIALS_FILE (required: the console acts on the
// pipeline, so it is never open, not even on loopback).
func consoleHandler(d deps, o operator.Operations) (http.Handler, error) {
	path := d.cfg.ConsoleCredentialsFile
	if path == "" {
		return nil, errors.New("console: CONSOLE_CREDENTIALS_FILE is not set: the operator API and the console need the operators' credentials file (`user: password` lines; see README.md, Console)")
	}
	creds, err := basicauth.Load(path)
	if err != nil {
		return nil, fmt.Errorf("console: CONSOLE_CREDENTIALS_FILE: %w", err)
	}
	return operator.New(o, operator.Config{
		Credentials:    creds,
		Logger:         d.logger.With("component", "console"),
		RequestTimeout: d.cfg.ConsoleRequestTimeout,
		MaxBodyBytes:   d.cfg.APIMaxBodyBytes,
	})
}

// serveConsole serves consoleHandler on ln until ctx is done (see serve).
func serveConsole(ctx context.Context, d deps, ln net.Listener, o operator.Operations) error {
	h, err := consoleHandler(d, o)
	if err != nil {
		return err
	}
	return serveAs(ctx, "console", ln, h, d.cfg.timeouts(d.cfg.HTTPWriteTimeout))
}
