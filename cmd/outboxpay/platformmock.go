package main

import (
	"context"
	"log/slog"
	"net"

	"github.com/outboxpay/outboxpay/internal/kit/platformmock"
)

// runPlatformMock serves the mock external data platform on PLATFORM_MOCK_ADDR.
func runPlatformMock(ctx context.Context, cfg config, logger *slog.Logger) error {
	return servePlatformMock(ctx, cfg, logger, nil)
}

// servePlatformMock serves the mock on PLATFORM_MOCK_ADDR; its operator
// endpoints need the credentials of PLATFORM_MOCK_CREDENTIALS_FILE, and
// without that file it serves a loopback address only.
func servePlatformMock(ctx context.Context, cfg config, logger *slog.Logger, listening func(net.Addr)) error {
	creds, err := operatorCredentials("platform mock", "PLATFORM_MOCK_CREDENTIALS_FILE",
		cfg.PlatformMockCredentialsFile, cfg.PlatformMockAddr, logger)
	if err != nil {
		return err
	}
	mock := platformmock.New(platformmock.Config{
		Operators:   creds,
		FailureRate: cfg.PlatformMockFailureRate,
		Latency:     cfg.PlatformMockLatency,
		TimeoutRate: cfg.PlatformMockTimeoutRate,
		Logger:      logger.With("component", "platform-mock"),
	})
	// The mock may hold a response for up to platformmock.MaxLatency
	// (PUT /faults), on purpose: its write timeout leaves room for that.
	return serveHTTP(ctx, cfg, "platform mock", cfg.PlatformMockAddr, mock, cfg.HTTPWriteTimeout+platformmock.MaxLatency, logger, listening)
}
