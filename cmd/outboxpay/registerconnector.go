package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/rest"
)

// runRegisterConnector is `outboxpay register-connector`: registerConnector
// on the Kafka Connect cluster at CONNECT_URL (the embedded engine's or
// Debezium's).
func runRegisterConnector(ctx context.Context, d deps) error {
	st, err := registerConnector(ctx, d, d.cfg.ConnectURL, nil)
	if err != nil {
		return err
	}
	fmt.Printf("connector %s RUNNING at %s (%d task(s))\n", st.Name, d.cfg.ConnectURL, len(st.Tasks))
	return nil
}

// registerConnector makes the Kafka Connect cluster at connectURL run the
// connector of CONNECTOR_CONFIG: it puts the config unless the cluster
// already holds exactly that config (so a re-run does not restart a healthy
// connector), then waits up to CONNECTOR_WAIT until the connector and all
// its tasks are RUNNING and, with slotDB (the connector's database; nil: not
// checked), until its replication slot is active and has confirmed a
// position, so that change data capture sees every outbox row written after
// it returns. It returns the connector's status.
func registerConnector(ctx context.Context, d deps, connectURL string, slotDB *sql.DB) (connect.ConnectorStatus, error) {
	cfg := d.cfg
	req, err := loadConnector(cfg.ConnectorConfig)
	if err != nil {
		return connect.ConnectorStatus{}, err
	}
	var slot string
	if slotDB != nil {
		parsed, err := (connect.Env{Lookup: d.lookup, Allow: cfg.envAllowlist}).ParseConfig(req.Config)
		if err != nil {
			return connect.ConnectorStatus{}, fmt.Errorf("connector %s: %w", req.Name, err)
		}
		slot = parsed.SlotName
	}
	client := cfg.connectClient(connectURL, 30*time.Second)
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectorWait)
	defer cancel()

	// Kafka Connect may still be starting: retry until it answers.
	var current map[string]string
	err = retry(ctx, func(ctx context.Context) error {
		current, err = client.ConnectorConfig(ctx, req.Name)
		var apiErr *rest.APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound {
			current, err = nil, nil
		}
		return err
	})
	if err != nil {
		return connect.ConnectorStatus{}, fmt.Errorf("read connector %s from %s: %w", req.Name, connectURL, err)
	}
	if maps.Equal(current, withName(req.Config, req.Name)) || maps.Equal(current, req.Config) {
		d.logger.Info("connector config unchanged", "connector", req.Name, "connect", connectURL)
	} else {
		_, created, err := client.PutConnectorConfig(ctx, req.Name, req.Config)
		if err != nil {
			return connect.ConnectorStatus{}, fmt.Errorf("register connector %s at %s: %w", req.Name, connectURL, err)
		}
		d.logger.Info("connector config put", "connector", req.Name, "created", created, "connect", connectURL)
	}

	var last connect.ConnectorStatus
	err = retry(ctx, func(ctx context.Context) error {
		st, err := client.ConnectorStatus(ctx, req.Name)
		if err != nil {
			return err
		}
		last = st
		if failed := failedTrace(st); failed != "" {
			return backoff.Permanent(fmt.Errorf("connector %s failed: %s", req.Name, failed))
		}
		if !running(st) {
			return errors.New("not running yet")
		}
		if slotDB == nil {
			return nil
		}
		var active bool
		err = slotDB.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active AND confirmed_flush_lsn IS NOT NULL)`,
			slot).Scan(&active)
		if err != nil {
			return fmt.Errorf("read replication slot %s: %w", slot, err)
		}
		if !active {
			return fmt.Errorf("replication slot %s not streaming yet", slot)
		}
		return nil
	})
	if err != nil {
		return last, fmt.Errorf("connector %s not RUNNING within %v (last status %s): %w",
			req.Name, cfg.ConnectorWait, describeStatus(last), err)
	}
	d.logger.Info("connector running", "connector", req.Name, "tasks", len(last.Tasks), "slot", slot)
	return last, nil
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

// retry calls op, with a backoff from 100 ms up to 1 s between calls, until
// it succeeds, returns a backoff.Permanent error, or ctx ends; then it
// returns op's last error (the cause, not the deadline that interrupted a
// call), or ctx's if op never failed.
func retry(ctx context.Context, op func(context.Context) error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 100*time.Millisecond, time.Second
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		err := op(ctx)
		if err != nil && (ctx.Err() == nil || last == nil) {
			last = err
		}
		return struct{}{}, err
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0))
	if err != nil && ctx.Err() != nil && last != nil {
		return last
	}
	return err
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
