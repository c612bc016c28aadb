package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/rest"
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

// registerConnector puts the connector config through the Kafka Connect REST
// API (idempotent), then waits until its task runs and holds its slot.
func registerConnector(ctx context.Context, cfg config, connectURL string, lookup func(string) (string, bool),
	db *sql.DB, logger *slog.Logger) error {
	req, err := loadConnector(cfg.ConnectorConfig)
	if err != nil {
		return err
	}
	parsed, err := (connect.Env{Lookup: lookup, Allow: cfg.envAllowlist}).ParseConfig(req.Config)
	if err != nil {
		return fmt.Errorf("connector %s: %w", req.Name, err)
	}
	client := cfg.connectClient(connectURL, 30*time.Second)
	if _, _, err := client.PutConnectorConfig(ctx, req.Name, req.Config); err != nil {
		return fmt.Errorf("register connector %s: %w", req.Name, err)
	}

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := client.ConnectorStatus(ctx, req.Name)
		if err == nil && len(st.Tasks) > 0 && st.Tasks[0].State == connect.StateFailed {
			return fmt.Errorf("connector %s failed: %s", req.Name, st.Tasks[0].Trace)
		}
		var active bool
		if err == nil {
			err = db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active AND confirmed_flush_lsn IS NOT NULL)`,
				parsed.SlotName).Scan(&active)
		}
		if active {
			logger.Info("connector running", "connector", req.Name, "slot", parsed.SlotName)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connector %s did not start streaming within a minute (last error: %v)", req.Name, err)
		case <-tick.C:
		}
	}
}

// loadConnector reads a connector (name and config, as POST /connectors
// takes it) from path, or the shipped outbox-connector.json when path is "".
func loadConnector(path string) (connect.CreateRequest, error) {
	if path == "" {
		return connect.OutboxConnector()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return connect.CreateRequest{}, fmt.Errorf("read connector config: %w", err)
	}
	var req connect.CreateRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Name == "" || req.Config == nil {
		return connect.CreateRequest{}, fmt.Errorf("%s: want {\"name\": ..., \"config\": {...}} (%v)", path, err)
	}
	return req, nil
}
