package main

import (
	"context"
	"net/http"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/platformmock"
)

// runPlatformMock serves the mock external data platform on PLATFORM_MOCK_ADDR.
func runPlatformMock(ctx context.Context, d deps) error {
	h, err := platformMock(d)
	if err != nil {
		return err
	}
	return listenAndServe(ctx, d, "platform mock", d.cfg.PlatformMockAddr, h, platformMockWriteTimeout(d.cfg))
}

// platformMock is the mock of PLATFORM_MOCK_*: its operator endpoints need
// the credentials of PLATFORM_MOCK_CREDENTIALS_FILE, and without that file
// it may serve a loopback PLATFORM_MOCK_ADDR only.
func platformMock(d deps) (http.Handler, error) {
	cfg := d.cfg
	creds, err := operatorCredentials("platform mock", "PLATFORM_MOCK_CREDENTIALS_FILE",
		cfg.PlatformMockCredentialsFile, cfg.PlatformMockAddr, d.logger)
	if err != nil {
		return nil, err
	}
	return platformmock.New(platformmock.Config{
		Operators:   creds,
		FailureRate: cfg.PlatformMockFailureRate,
		Latency:     cfg.PlatformMockLatency,
		TimeoutRate: cfg.PlatformMockTimeoutRate,
		Logger:      d.logger.With("component", "platform-mock"),
	}), nil
}

// platformMockWriteTimeout is the mock's write timeout: the mock may hold a
// response for up to platformmock.MaxLatency (PUT /faults), on purpose, and
// its write timeout leaves room for that.
func platformMockWriteTimeout(cfg config) time.Duration {
	return cfg.HTTPWriteTimeout + platformmock.MaxLatency
}
