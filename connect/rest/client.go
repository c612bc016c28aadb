package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/outboxpay/outboxpay/connect"
)

// maxResponseBytes bounds the responses the client reads.
const maxResponseBytes = 16 << 20

// APIError is an error response of the Kafka Connect REST API.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("kafka connect: %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Client calls a Kafka Connect REST API: the embedded engine's or a real
// Kafka Connect's. It relies only on the documented shapes, ignores fields
// it does not know, and returns an *APIError for every error response.
type Client struct {
	base           string
	hc             *http.Client
	user, password string
}

// ClientOption configures NewClient.
type ClientOption func(*Client)

// BasicAuth makes the client send HTTP Basic credentials with every request
// (Kafka Connect's BasicAuthSecurityRestExtension, or the embedded engine's
// CONNECT_REST_CREDENTIALS_FILE). An empty user sends none.
func BasicAuth(user, password string) ClientOption {
	return func(c *Client) { c.user, c.password = user, password }
}

// NewClient returns a client of the API at baseURL (e.g.
// "http://localhost:8083"); hc nil means http.DefaultClient.
func NewClient(baseURL string, hc *http.Client, opts ...ClientOption) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
	for _, o := range opts {
		o(c)
	}
	return c
}

// ServerInfo is GET /.
func (c *Client) ServerInfo(ctx context.Context) (connect.ServerInfo, error) {
	var out connect.ServerInfo
	_, err := c.do(ctx, http.MethodGet, "/", nil, nil, &out)
	return out, err
}

// Connectors is GET /connectors: the connectors' names.
func (c *Client) Connectors(ctx context.Context) ([]string, error) {
	var out []string
	_, err := c.do(ctx, http.MethodGet, "/connectors", nil, nil, &out)
	return out, err
}

// ConnectorsExpanded is GET /connectors?expand=status&expand=info, with the
// expansions asked for (at least one), by connector name.
func (c *Client) ConnectorsExpanded(ctx context.Context, status, info bool) (map[string]ConnectorExpansion, error) {
	q := url.Values{}
	if status {
		q.Add("expand", "status")
	}
	if info {
		q.Add("expand", "info")
	}
	if len(q) == 0 {
		return nil, errors.New("kafka connect: list connectors: no expansion asked for")
	}
	var out map[string]ConnectorExpansion
	_, err := c.do(ctx, http.MethodGet, "/connectors", q, nil, &out)
	return out, err
}

// CreateConnector is POST /connectors.
func (c *Client) CreateConnector(ctx context.Context, name string, config map[string]string) (connect.ConnectorInfo, error) {
	var out connect.ConnectorInfo
	_, err := c.do(ctx, http.MethodPost, "/connectors", nil, connect.CreateRequest{Name: name, Config: config}, &out)
	return out, err
}

// Connector is GET /connectors/{name}.
func (c *Client) Connector(ctx context.Context, name string) (connect.ConnectorInfo, error) {
	var out connect.ConnectorInfo
	_, err := c.do(ctx, http.MethodGet, connectorPath(name, ""), nil, nil, &out)
	return out, err
}

// ConnectorConfig is GET /connectors/{name}/config.
func (c *Client) ConnectorConfig(ctx context.Context, name string) (map[string]string, error) {
	var out map[string]string
	_, err := c.do(ctx, http.MethodGet, connectorPath(name, "/config"), nil, nil, &out)
	return out, err
}

// PutConnectorConfig is PUT /connectors/{name}/config; created reports
// whether it created the connector (201) rather than updated it (200).
func (c *Client) PutConnectorConfig(ctx context.Context, name string, config map[string]string) (info connect.ConnectorInfo, created bool, err error) {
	status, err := c.do(ctx, http.MethodPut, connectorPath(name, "/config"), nil, config, &info)
	return info, status == http.StatusCreated, err
}

// ConnectorStatus is GET /connectors/{name}/status.
func (c *Client) ConnectorStatus(ctx context.Context, name string) (connect.ConnectorStatus, error) {
	var out connect.ConnectorStatus
	_, err := c.do(ctx, http.MethodGet, connectorPath(name, "/status"), nil, nil, &out)
	return out, err
}

// ConnectorTasks is GET /connectors/{name}/tasks.
func (c *Client) ConnectorTasks(ctx context.Context, name string) ([]connect.TaskInfo, error) {
	var out []connect.TaskInfo
	_, err := c.do(ctx, http.MethodGet, connectorPath(name, "/tasks"), nil, nil, &out)
	return out, err
}

// TaskStatus is GET /connectors/{name}/tasks/{task}/status.
func (c *Client) TaskStatus(ctx context.Context, name string, task int) (connect.TaskStatus, error) {
	var out connect.TaskStatus
	_, err := c.do(ctx, http.MethodGet, connectorPath(name, "/tasks/"+strconv.Itoa(task)+"/status"), nil, nil, &out)
	return out, err
}

// RestartConnector is POST /connectors/{name}/restart. With includeTasks
// or onlyFailed (KIP-745, Kafka 3.0+) it returns the status with what is
// being restarted as RESTARTING; without, the connector alone restarts and
// the status is nil.
func (c *Client) RestartConnector(ctx context.Context, name string, includeTasks, onlyFailed bool) (*connect.ConnectorStatus, error) {
	q := url.Values{}
	if includeTasks {
		q.Set("includeTasks", "true")
	}
	if onlyFailed {
		q.Set("onlyFailed", "true")
	}
	var out connect.ConnectorStatus
	status, err := c.do(ctx, http.MethodPost, connectorPath(name, "/restart"), q, nil, &out)
	if err != nil || status != http.StatusAccepted {
		return nil, err
	}
	return &out, nil
}

// RestartTask is POST /connectors/{name}/tasks/{task}/restart.
func (c *Client) RestartTask(ctx context.Context, name string, task int) error {
	_, err := c.do(ctx, http.MethodPost, connectorPath(name, "/tasks/"+strconv.Itoa(task)+"/restart"), nil, nil, nil)
	return err
}

// PauseConnector is PUT /connectors/{name}/pause.
func (c *Client) PauseConnector(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodPut, connectorPath(name, "/pause"), nil, nil, nil)
	return err
}

// ResumeConnector is PUT /connectors/{name}/resume.
func (c *Client) ResumeConnector(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodPut, connectorPath(name, "/resume"), nil, nil, nil)
	return err
}

// StopConnector is PUT /connectors/{name}/stop (Kafka 3.5+).
func (c *Client) StopConnector(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodPut, connectorPath(name, "/stop"), nil, nil, nil)
	return err
}

// DeleteConnector is DELETE /connectors/{name}.
func (c *Client) DeleteConnector(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, connectorPath(name, ""), nil, nil, nil)
	return err
}

// ConnectorPlugins is GET /connector-plugins; connectorsOnly=false also
// lists transformations and converters.
func (c *Client) ConnectorPlugins(ctx context.Context, connectorsOnly bool) ([]PluginInfo, error) {
	q := url.Values{}
	if !connectorsOnly {
		q.Set("connectorsOnly", "false")
	}
	var out []PluginInfo
	_, err := c.do(ctx, http.MethodGet, "/connector-plugins", q, nil, &out)
	return out, err
}

func connectorPath(name, suffix string) string {
	return "/connectors/" + url.PathEscape(name) + suffix
}

// do sends one request with body as JSON, if not nil, and decodes a
// successful response into out, if not nil and the response has a body.
// It returns the status code, and an *APIError for an error response.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) (int, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var reqBody io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("kafka connect: %s %s: encode body: %w", method, path, err)
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, reqBody)
	if err != nil {
		return 0, fmt.Errorf("kafka connect: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("kafka connect: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("kafka connect: %s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, newAPIError(resp.StatusCode, data)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return resp.StatusCode, fmt.Errorf("kafka connect: %s %s: decode response: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

// newAPIError builds the error of a response: Connect's JSON message, or the
// body's text when it is not Connect's JSON (a proxy's error page).
func newAPIError(status int, body []byte) *APIError {
	var eb connect.ErrorBody
	if err := json.Unmarshal(body, &eb); err == nil && eb.Message != "" {
		return &APIError{StatusCode: status, Message: eb.Message}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &APIError{StatusCode: status, Message: msg}
}
