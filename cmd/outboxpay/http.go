package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

// newRegistry returns the process's metrics registry, with Go runtime and
// process metrics.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// serveMetrics serves reg at /metrics on METRICS_ADDR, and /healthz (the
// process is up) for container health checks.
func serveMetrics(ctx context.Context, cfg config, reg *prometheus.Registry, logger *slog.Logger, listening func(net.Addr)) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return serveHTTP(ctx, cfg, "metrics", cfg.MetricsAddr, mux, cfg.HTTPWriteTimeout, logger, listening)
}

// serveHTTP serves h on addr, with newHTTPServer's limits and writeTimeout,
// until ctx is done, then shuts down within cfg.ShutdownTimeout (in-flight
// requests' contexts are canceled then).
func serveHTTP(ctx context.Context, cfg config, what, addr string, h http.Handler, writeTimeout time.Duration,
	logger *slog.Logger, listening func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", what, addr, err)
	}
	baseCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	srv := newHTTPServer(cfg, h, writeTimeout)
	srv.BaseContext = func(net.Listener) context.Context { return baseCtx }
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info(what+" listening", "addr", ln.Addr().String())
	if listening != nil {
		listening(ln.Addr())
	}
	select {
	case err := <-served:
		return fmt.Errorf("%s: %w", what, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	go func() { <-shutdownCtx.Done(); cancelRequests() }()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: shut down: %w", what, err)
	}
	return nil
}

// localAddr turns a listener's address into one a client on this machine can dial.
func localAddr(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	if tcp.IP.IsUnspecified() {
		return fmt.Sprintf("localhost:%d", tcp.Port)
	}
	return tcp.String()
}
