package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/api/problem"
	"github.com/outboxpay/outboxpay/internal/ops"
)

// Client is a client of the operator API (`outboxpay ops`, tests).
type Client struct {
	base           string
	user, password string
	http           *http.Client
}

// NewClient returns a client of the operator API at baseURL
// (http://127.0.0.1:8088) that signs in as user; nil hc: a client with a
// 30 s timeout.
func NewClient(baseURL, user, password string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), user: user, password: password, http: hc}
}

// Error is an error answer of the operator API: its status and problem.
type Error struct {
	Status int
	Type   string
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("operator API: %d %s", e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("operator API: %d %s: %s", e.Status, http.StatusText(e.Status), e.Detail)
}

// Summary is GET /ops/summary; window 0: the server's default.
func (c *Client) Summary(ctx context.Context, window time.Duration) (ops.Summary, error) {
	var s ops.Summary
	q := url.Values{}
	if window != 0 {
		q.Set("window", window.String())
	}
	return s, c.do(ctx, http.MethodGet, "/ops/summary", q, nil, &s)
}

// Series is GET /ops/series; zero arguments: the server's defaults.
func (c *Client) Series(ctx context.Context, minutes int, step time.Duration) (ops.Series, error) {
	var s ops.Series
	q := url.Values{}
	if minutes != 0 {
		q.Set("minutes", strconv.Itoa(minutes))
	}
	if step != 0 {
		q.Set("step", step.String())
	}
	return s, c.do(ctx, http.MethodGet, "/ops/series", q, nil, &s)
}

// Search is GET /ops/events with sq's non-zero fields.
func (c *Client) Search(ctx context.Context, sq ops.Query) ([]ops.Event, error) {
	q := url.Values{}
	set := func(name, v string) {
		if v != "" {
			q.Set(name, v)
		}
	}
	if sq.OrderID != 0 {
		set("order", strconv.FormatInt(sq.OrderID, 10))
	}
	if sq.EventID != uuid.Nil {
		set("event", sq.EventID.String())
	}
	set("aggregatetype", sq.AggregateType)
	set("aggregateid", sq.AggregateID)
	set("type", sq.Type)
	set("status", string(sq.Status))
	if sq.OlderThan != 0 {
		set("older_than", sq.OlderThan.String())
	}
	if sq.NewerThan != 0 {
		set("newer_than", sq.NewerThan.String())
	}
	if sq.Limit != 0 {
		set("limit", strconv.Itoa(sq.Limit))
	}
	var out struct {
		Events []ops.Event `json:"events"`
	}
	return out.Events, c.do(ctx, http.MethodGet, "/ops/events", q, nil, &out)
}

// Life is GET /ops/events/{id}.
func (c *Client) Life(ctx context.Context, id uuid.UUID) (ops.EventLife, error) {
	var l ops.EventLife
	return l, c.do(ctx, http.MethodGet, "/ops/events/"+id.String(), nil, nil, &l)
}

// Retry is POST /ops/events/{id}/retry.
func (c *Client) Retry(ctx context.Context, id uuid.UUID, reason string) (ops.Result, error) {
	return c.action(ctx, "/ops/events/"+id.String()+"/retry", map[string]any{"reason": reason})
}

// Park is POST /ops/events/{id}/park.
func (c *Client) Park(ctx context.Context, id uuid.UUID, reason string) (ops.Result, error) {
	return c.action(ctx, "/ops/events/"+id.String()+"/park", map[string]any{"reason": reason})
}

// Discard is POST /ops/events/{id}/discard.
func (c *Client) Discard(ctx context.Context, id uuid.UUID, reason string) (ops.Result, error) {
	return c.action(ctx, "/ops/events/"+id.String()+"/discard", map[string]any{"reason": reason})
}

// DLQ is GET /ops/dlq with dq's non-zero fields.
func (c *Client) DLQ(ctx context.Context, dq ops.DLQQuery) ([]ops.DLQRecord, error) {
	q := url.Values{}
	if dq.Topic != "" {
		q.Set("topic", dq.Topic)
	}
	if dq.EventID != uuid.Nil {
		q.Set("event", dq.EventID.String())
	}
	if dq.Limit != 0 {
		q.Set("limit", strconv.Itoa(dq.Limit))
	}
	var out struct {
		Records []ops.DLQRecord `json:"records"`
	}
	return out.Records, c.do(ctx, http.MethodGet, "/ops/dlq", q, nil, &out)
}

// Redrive is POST /ops/dlq/redrive: one record (r's Partition and Offset
// set) or every record of r.Topic.
func (c *Client) Redrive(ctx context.Context, r ops.Redrive, reason string) (ops.Result, error) {
	body := map[string]any{"topic": r.Topic, "reason": reason}
	if r.Partition != nil {
		body["partition"] = *r.Partition
	}
	if r.Offset != nil {
		body["offset"] = *r.Offset
	}
	return c.action(ctx, "/ops/dlq/redrive", body)
}

// Connector is POST /ops/connector/{action}: action is pause, resume or
// restart.
func (c *Client) Connector(ctx context.Context, action, reason string) (ops.Result, error) {
	return c.action(ctx, "/ops/connector/"+url.PathEscape(action), map[string]any{"reason": reason})
}

// Audit is GET /ops/audit with aq's non-zero fields.
func (c *Client) Audit(ctx context.Context, aq ops.AuditQuery) ([]ops.AuditEntry, error) {
	q := url.Values{}
	if aq.Target != "" {
		q.Set("target", aq.Target)
	}
	if aq.Limit != 0 {
		q.Set("limit", strconv.Itoa(aq.Limit))
	}
	var out struct {
		Entries []ops.AuditEntry `json:"entries"`
	}
	return out.Entries, c.do(ctx, http.MethodGet, "/ops/audit", q, nil, &out)
}

func (c *Client) action(ctx context.Context, path string, body any) (ops.Result, error) {
	var r ops.Result
	return r, c.do(ctx, http.MethodPost, path, nil, body, &r)
}

// do sends a request and decodes a 200's JSON into out; another status is
// an *Error with the problem's detail.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.SetBasicAuth(c.user, c.password)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &Error{Status: resp.StatusCode}
		var p problem.Problem
		if json.Unmarshal(data, &p) == nil {
			e.Type, e.Detail = p.Type, p.Detail
		}
		return e
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
	}
	return nil
}
