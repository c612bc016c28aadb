package main

import (
	"net/http"
	"time"
)

// readHeaderTimeout bounds the request line and headers; a shorter
// HTTP_READ_TIMEOUT bounds them instead.
const readHeaderTimeout = 10 * time.Second

// newHTTPServer returns the http.Server of every HTTP listener of this
// process, serving h with the limits HTTP_READ_TIMEOUT (request line,
// headers and body), HTTP_IDLE_TIMEOUT (a keep-alive connection between
// requests) and HTTP_MAX_HEADER_BYTES of cfg, and writeTimeout (from the end
// of the request headers to the end of the response; it must exceed the
// longest request the server lets a handler work on).
func newHTTPServer(cfg config, h http.Handler, writeTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(readHeaderTimeout, cfg.HTTPReadTimeout),
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    cfg.HTTPMaxHeaderBytes,
	}
}
