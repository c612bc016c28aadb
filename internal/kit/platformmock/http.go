package platformmock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/strictjson"
)

// problem is an RFC 7807 problem detail, the body of every error response,
// in the same shape as the API's.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// problemContentType is the media type of error responses.
const problemContentType = "application/problem+json"

// Problem types ("" is about:blank, for plain HTTP errors).
const (
	kindInvalid   = "invalid-request"
	kindNotFound  = "not-found"
	kindKeyReused = "idempotency-key-reused"
	kindInjected  = "injected-failure"
)

// faultsJSON is the body of GET and PUT /faults. PUT replaces all three:
// an omitted field is 0.
type faultsJSON struct {
	FailureRate float64 `json:"failureRate"`
	LatencyMs   int64   `json:"latencyMs"`
	TimeoutRate float64 `json:"timeoutRate"`
}

// eventsJSON is the body of GET /events.
type eventsJSON struct {
	Stats
	Events []Event `json:"events"`
}

// postJSON is the body of a successful POST /events.
type postJSON struct {
	IdempotencyKey string `json:"idempotencyKey"`
	Duplicate      bool   `json:"duplicate"`
}

// routes is the server's API; with operators, every path but POST /events
// and GET /healthz requires their credentials.
func (s *Server) routes(operators *basicauth.Credentials) http.Handler {
	all := http.NewServeMux()
	s.addRoutes(all)
	if operators == nil {
		return all
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /events", s.postEvent)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("/", operators.Handler(Realm, func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusUnauthorized, "", "this operator endpoint requires HTTP Basic credentials")
	}, all))
	return mux
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) addRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /events", s.postEvent)
	mux.HandleFunc("GET /events", s.listEvents)
	mux.HandleFunc("/events", methodNotAllowed("GET, HEAD, POST"))
	mux.HandleFunc("GET /events/{key...}", s.getEvent)
	mux.HandleFunc("/events/{key...}", methodNotAllowed("GET, HEAD"))
	mux.HandleFunc("GET /faults", s.getFaults)
	mux.HandleFunc("PUT /faults", s.putFaults)
	mux.HandleFunc("/faults", methodNotAllowed("GET, HEAD, PUT"))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("/healthz", methodNotAllowed("GET, HEAD"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, http.StatusNotFound, "", fmt.Sprintf("no resource at %s %s", r.Method, r.URL.Path))
	})
}

// postEvent records one delivery. The body is read first (an oversized or
// unreadable one is refused at once); then come the faults (latency, then a
// 503 or a hang), validation, and the idempotent record.
func (s *Server) postEvent(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	raw, err := readBody(w, r)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		s.invalid(w, r, status, err)
		return
	}

	fate, latency := s.decide()
	if err := sleep(ctx, latency); err != nil {
		s.logger.DebugContext(ctx, "platform mock: client gave up during the added latency", "err", err)
		return
	}
	switch fate {
	case fail:
		s.logger.DebugContext(ctx, "platform mock: injected failure")
		writeProblem(w, r, http.StatusServiceUnavailable, kindInjected, "injected failure; nothing was recorded, try again")
		return
	case hang:
		s.logger.DebugContext(ctx, "platform mock: injected timeout, holding the request")
		<-ctx.Done()
		return
	}

	key, present, err := headerToken(r, "Idempotency-Key")
	if err == nil && !present {
		err = errors.New("the Idempotency-Key header is required")
	}
	if err != nil {
		s.invalid(w, r, http.StatusBadRequest, err)
		return
	}
	eventType, _, err := headerToken(r, "X-Event-Type")
	if err != nil {
		s.invalid(w, r, http.StatusBadRequest, err)
		return
	}
	body, canonical, err := parseEvent(raw)
	if err != nil {
		s.invalid(w, r, http.StatusBadRequest, err)
		return
	}

	switch out, ev := s.record(key, eventType, body, canonical); out {
	case firstDelivery:
		s.logger.DebugContext(ctx, "platform mock: event recorded", "key", key, "eventType", eventType)
		s.writeJSON(w, r, http.StatusCreated, postJSON{IdempotencyKey: key})
	case duplicate:
		s.logger.DebugContext(ctx, "platform mock: duplicate delivery", "key", key, "deliveries", ev.Deliveries)
		s.writeJSON(w, r, http.StatusOK, postJSON{IdempotencyKey: key, Duplicate: true})
	default:
		s.logger.WarnContext(ctx, "platform mock: idempotency key reused for a different event",
			"key", key, "eventType", eventType, "firstEventType", ev.EventType)
		writeProblem(w, r, http.StatusUnprocessableEntity, kindKeyReused, fmt.Sprintf(
			"Idempotency-Key %q was first used for a different event (another body or X-Event-Type)", key))
	}
}

// invalid answers a POST refused before recording.
func (s *Server) invalid(w http.ResponseWriter, r *http.Request, status int, err error) {
	s.countInvalid()
	s.logger.WarnContext(r.Context(), "platform mock: event refused", "status", status, "err", err)
	kind := kindInvalid
	if status == http.StatusRequestEntityTooLarge {
		kind = ""
	}
	writeProblem(w, r, status, kind, err.Error())
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	resp := eventsJSON{Stats: s.Stats()}
	if r.URL.Query().Has("key") {
		resp.Events = []Event{}
		if ev, ok := s.Event(r.URL.Query().Get("key")); ok {
			resp.Events = append(resp.Events, ev)
		}
	} else {
		resp.Events = s.Events()
	}
	s.writeJSON(w, r, http.StatusOK, resp)
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	ev, ok := s.Event(key)
	if !ok {
		writeProblem(w, r, http.StatusNotFound, kindNotFound, fmt.Sprintf("no event with Idempotency-Key %q", key))
		return
	}
	s.writeJSON(w, r, http.StatusOK, ev)
}

func (s *Server) currentFaults() faultsJSON {
	s.mu.Lock()
	defer s.mu.Unlock()
	return faultsJSON{
		FailureRate: s.faults.failureRate,
		LatencyMs:   s.faults.latency.Milliseconds(),
		TimeoutRate: s.faults.timeoutRate,
	}
}

func (s *Server) getFaults(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, r, http.StatusOK, s.currentFaults())
}

func (s *Server) putFaults(w http.ResponseWriter, r *http.Request) {
	var f faultsJSON
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err == nil {
		err = strictjson.Check(body, &f) // member names exactly, no duplicates
	}
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(&f)
	}
	if err != nil {
		writeProblem(w, r, http.StatusBadRequest, kindInvalid, fmt.Sprintf(
			`the body must be {"failureRate":0..1,"latencyMs":0..%d,"timeoutRate":0..1}: %v`, MaxLatency.Milliseconds(), err))
		return
	}
	if err := f.validate(); err != nil {
		writeProblem(w, r, http.StatusBadRequest, kindInvalid, err.Error())
		return
	}
	s.SetFaults(f.FailureRate, time.Duration(f.LatencyMs)*time.Millisecond, f.TimeoutRate)
	s.writeJSON(w, r, http.StatusOK, s.currentFaults())
}

func (f faultsJSON) validate() error {
	switch {
	case !(f.FailureRate >= 0 && f.FailureRate <= 1):
		return fmt.Errorf("failureRate must be between 0 and 1, not %v", f.FailureRate)
	case !(f.TimeoutRate >= 0 && f.TimeoutRate <= 1):
		return fmt.Errorf("timeoutRate must be between 0 and 1, not %v", f.TimeoutRate)
	case f.FailureRate+f.TimeoutRate > 1:
		return fmt.Errorf("failureRate + timeoutRate must be at most 1, not %v", f.FailureRate+f.TimeoutRate)
	case f.LatencyMs < 0 || f.LatencyMs > MaxLatency.Milliseconds():
		return fmt.Errorf("latencyMs must be between 0 and %d, not %d", MaxLatency.Milliseconds(), f.LatencyMs)
	}
	return nil
}

// sleep waits d, or returns the context's error if it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait %v: %w", d, context.Cause(ctx))
	}
}

func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.logger.ErrorContext(r.Context(), "platform mock: encode response", "path", r.URL.Path, "err", err)
		writeProblem(w, r, http.StatusInternalServerError, "internal", "internal error; it has been logged")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n')) // a failed write means the client went away
}

func writeProblem(w http.ResponseWriter, r *http.Request, status int, kind, detail string) {
	p := problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Instance: r.URL.Path}
	if kind != "" {
		p.Type = "/problems/" + kind
	}
	body, _ := json.Marshal(p) // strings and an int: cannot fail
	w.Header().Set("Content-Type", problemContentType)
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n')) // a failed write means the client went away
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeProblem(w, r, http.StatusMethodNotAllowed, "", fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path))
	}
}
