package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// runRegisterConnector makes the Kafka Connect cluster at CONNECT_URL (the
// embedded engine's or Debezium's) run the connector of CONNECTOR_CONFIG:
// it puts the config unless the cluster already holds exactly that config
// (so a re-run does not restart a healthy connector), then waits up to
// CONNECTOR_WAIT until the connector and all its tasks are RUNNING.
func runRegisterConnector(ctx context.Context, cfg config, logger *slog.Logger) error {
	req, err := loadConnector(cfg.ConnectorConfig)
	if err != nil {
		return err
	}
	client := cfg.connectClient(cfg.ConnectURL, 30*time.Second)
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectorWait)
	defer cancel()

	// Kafka Connect may still be starting: retry until it answers.
	var current map[string]string
	err = poll(ctx, time.Second, func() (bool, error) {
		current, err = client.ConnectorConfig(ctx, req.Name)
		var apiErr *rest.APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound {
			current, err = nil, nil
		}
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("read connector %s from %s: %w", req.Name, cfg.ConnectURL, err)
	}
	if maps.Equal(current, withName(req.Config, req.Name)) || maps.Equal(current, req.Config) {
		logger.Info("connector config unchanged", "connector", req.Name, "connect", cfg.ConnectURL)
	} else {
		_, created, err := client.PutConnectorConfig(ctx, req.Name, req.Config)
		if err != nil {
			return fmt.Errorf("register connector %s at %s: %w", req.Name, cfg.ConnectURL, err)
		}
		logger.Info("connector config put", "connector", req.Name, "created", created, "connect", cfg.ConnectURL)
	}

	var last connect.ConnectorStatus
	err = poll(ctx, time.Second, func() (bool, error) {
		st, err := client.ConnectorStatus(ctx, req.Name)
		if err != nil {
			return false, err
		}
		last = st
		if failed := failedTrace(st); failed != "" {
			return false, &permanentError{fmt.Errorf("connector %s failed: %s", req.Name, failed)}
		}
		return running(st), nil
	})
	if err != nil {
		return fmt.Errorf("connector %s not RUNNING within %v (last status %s): %w",
			req.Name, cfg.ConnectorWait, describeStatus(last), err)
	}
	logger.Info("connector running", "connector", req.Name, "tasks", len(last.Tasks))
	fmt.Printf("connector %s RUNNING at %s (%d task(s))\n", req.Name, cfg.ConnectURL, len(last.Tasks))
	return nil
}

// withName is config with the "name" key Kafka Connect adds to what GET
// /connectors/{name}/config returns.
func withName(config map[string]string, name string) map[string]string {
	c := maps.Clone(config)
	c["name"] = name
	return c
}

func running(st connect.ConnectorStatus) bool {
	if st.Connector.State != connect.StateRunning || len(st.Tasks) == 0 {
		return false
	}
	for _, t := range st.Tasks {
		if t.State != connect.StateRunning {
			return false
		}
	}
	return true
}

// failedTrace is the error of the connector or of its first failed task, or "".
func failedTrace(st connect.ConnectorStatus) string {
	if st.Connector.State == connect.StateFailed {
		return firstLine(st.Connector.Trace)
	}
	for _, t := range st.Tasks {
		if t.State == connect.StateFailed {
			return fmt.Sprintf("task %d: %s", t.ID, firstLine(t.Trace))
		}
	}
	return ""
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func describeStatus(st connect.ConnectorStatus) string {
	if st.Connector.State == "" {
		return "none"
	}
	parts := []string{"connector " + st.Connector.State}
	for _, t := range st.Tasks {
		parts = append(parts, fmt.Sprintf("task %d %s", t.ID, t.State))
	}
	return strings.Join(parts, ", ")
}

// permanentError stops poll at once.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// poll calls f every interval until it reports done, returns a
// *permanentError, or ctx ends; then it returns the last error f reported
// before ctx ended (the cause, not the deadline that interrupted a call).
func poll(ctx context.Context, interval time.Duration, f func() (bool, error)) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last error
	for {
		done, err := f()
		var perm *permanentError
		switch {
		case done:
			return nil
		case errors.As(err, &perm):
			return perm.err
		case err != nil && (ctx.Err() == nil || last == nil):
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return last
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// runSeed fills an empty database with the demo users and products, as
// `dev` does; it leaves a database with any user or product alone.
func runSeed(ctx context.Context, cfg config, logger *slog.Logger) error {
	db, err := openDB(ctx, cfg, cfg.DatabaseURL, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	seeded, err := shop.New(db).SeedDemo(ctx)
	if err != nil {
		return fmt.Errorf("seed demo data: %w", err)
	}
	if seeded {
		logger.Info("demo data seeded: users 1-3, products 1-3")
	} else {
		logger.Info("database has users or products already: nothing seeded")
	}
	return nil
}

// runHealthcheck exits 0 when url answers 2xx within a few seconds: the
// container health check of images that have no shell or curl. A non-empty
// user is sent as HTTP Basic credentials (the Kafka Connect REST API's).
func runHealthcheck(ctx context.Context, url, user, password string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health check %s: %w", url, err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health check %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health check %s: %s", url, resp.Status)
	}
	return nil
}
