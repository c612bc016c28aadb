// Package platformmock is a stand-in for the external data platform that the
// data-platform consumer group POSTs payment events to. It records each
// event once per Idempotency-Key, answers repeats as duplicates, and can
// inject faults (5xx answers, added latency, requests that never answer) so
// that the consumer's retries and idempotency can be tested in-process or
// against a separate process (the platform-mock subcommand).
package platformmock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/outboxpay/outboxpay/internal/basicauth"
	"github.com/outboxpay/outboxpay/internal/logging"
)

const (
	// MaxBodyBytes bounds a POSTed event body; larger bodies get 413.
	MaxBodyBytes = 1 << 20
	// MaxKeyLen is the longest accepted Idempotency-Key (and X-Event-Type).
	MaxKeyLen = 255
	// MaxLatency bounds the latency that PUT /faults accepts.
	MaxLatency = 10 * time.Minute
)

// Config sets the faults the server starts with. Rates are shares in [0, 1];
// values outside are clamped, and TimeoutRate is limited to 1-FailureRate
// (one random draw per POST decides: fail, hang or serve).
type Config struct {
	FailureRate float64       // share of POSTs answered 503 before anything is recorded (0..1)
	Latency     time.Duration // added to every POST
	TimeoutRate float64       // share of POSTs that hang until the client gives up (the request context ends), recording nothing
	Seed        int64         // for the random choices; 0 = time-based
	Logger      *slog.Logger  // nil discards
	// Operators, if not nil, are required (HTTP Basic) on the operator
	// endpoints: everything but POST /events (the data platform's API that
	// the consumer calls) and GET /healthz. Without them those answer 401
	// and change nothing. Nil leaves them open.
	Operators *basicauth.Credentials
}

// Realm is the realm of the operator endpoints' 401 challenge.
const Realm = "platform mock operator"

// Stats counts what the server did with POST /events.
type Stats struct {
	Received        int `json:"received"`        // POSTs that reached recording: FirstDeliveries + Duplicates + Conflicts
	FirstDeliveries int `json:"firstDeliveries"` // keys seen for the first time (201)
	Duplicates      int `json:"duplicates"`      // repeats of a key with the same event (200, not recorded again)
	Conflicts       int `json:"conflicts"`       // repeats of a key with a different event (422)
	Invalid         int `json:"invalid"`         // refused before recording: bad key, event type or body (400, 413)
	Failed          int `json:"failed"`          // injected 503s
	TimedOut        int `json:"timedOut"`        // POSTs chosen to hang, counted when the hang starts
}

// Event is one recorded event: the first delivery of its Idempotency-Key.
type Event struct {
	IdempotencyKey string          `json:"idempotencyKey"`
	EventType      string          `json:"eventType"` // the X-Event-Type header; "" when absent
	Body           json.RawMessage `json:"body"`      // the JSON object as received, compacted
	ReceivedAt     time.Time       `json:"receivedAt"`
	LastReceivedAt time.Time       `json:"lastReceivedAt"`
	Deliveries     int             `json:"deliveries"` // the first delivery plus its duplicates
}

// Server is the mock platform's HTTP handler. It is safe for concurrent use.
type Server struct {
	logger *slog.Logger
	mux    http.Handler

	mu     sync.Mutex
	rng    *rand.Rand
	faults faults
	events map[string]*record
	order  []*record // first-receipt order
	stats  Stats
}

type faults struct {
	failureRate float64
	latency     time.Duration
	timeoutRate float64
}

type record struct {
	Event
	canonical []byte // the body re-encoded with sorted keys, to compare repeats
}

// New returns a server with cfg's faults and nothing recorded.
func New(cfg Config) *Server {
	logger := cfg.Logger
	logger = logging.OrDiscard(logger)
	seed := cfg.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	s := &Server{
		logger: logger,
		rng:    rand.New(rand.NewPCG(uint64(seed), 0)),
		faults: clampFaults(cfg.FailureRate, cfg.Latency, cfg.TimeoutRate),
		events: make(map[string]*record),
	}
	s.mux = s.routes(cfg.Operators)
	return s
}

// ServeHTTP serves the mock platform's API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// SetFaults changes the injected faults for the POSTs that arrive from now
// on. Out-of-range values are clamped as in [Config].
func (s *Server) SetFaults(failureRate float64, latency time.Duration, timeoutRate float64) {
	f := clampFaults(failureRate, latency, timeoutRate)
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
	s.logger.Info("platform mock faults set",
		"failureRate", f.failureRate, "latency", f.latency, "timeoutRate", f.timeoutRate)
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Events returns the recorded events in first-receipt order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, 0, len(s.order))
	for _, rec := range s.order {
		out = append(out, rec.snapshot())
	}
	return out
}

// Event returns the event recorded under key, if any.
func (s *Server) Event(key string) (Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.events[key]
	if !ok {
		return Event{}, false
	}
	return rec.snapshot(), true
}

func (r *record) snapshot() Event {
	e := r.Event
	e.Body = bytes.Clone(r.Body)
	return e
}

func clampFaults(failureRate float64, latency time.Duration, timeoutRate float64) faults {
	clamp := func(v float64) float64 {
		if !(v > 0) { // also NaN
			return 0
		}
		return min(v, 1)
	}
	f := faults{failureRate: clamp(failureRate), latency: max(latency, 0), timeoutRate: clamp(timeoutRate)}
	f.timeoutRate = min(f.timeoutRate, 1-f.failureRate)
	return f
}

// fate is what a POST is chosen to get.
type fate int

const (
	serve fate = iota
	fail
	hang
)

// decide draws the fate of one POST under the current faults.
func (s *Server) decide() (fate, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	if f.failureRate == 0 && f.timeoutRate == 0 {
		return serve, f.latency
	}
	switch u := s.rng.Float64(); {
	case u < f.failureRate:
		s.stats.Failed++
		return fail, f.latency
	case u < f.failureRate+f.timeoutRate:
		s.stats.TimedOut++
		return hang, f.latency
	default:
		return serve, f.latency
	}
}

// outcome is what recording one delivery did.
type outcome int

const (
	firstDelivery outcome = iota
	duplicate
	conflict
)

// record stores the first delivery of key, or counts a repeat.
func (s *Server) record(key, eventType string, body, canonical []byte) (outcome, Event) {
	now := time.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Received++
	rec, ok := s.events[key]
	switch {
	case !ok:
		rec = &record{
			Event: Event{IdempotencyKey: key, EventType: eventType, Body: body,
				ReceivedAt: now, LastReceivedAt: now, Deliveries: 1},
			canonical: canonical,
		}
		s.events[key] = rec
		s.order = append(s.order, rec)
		s.stats.FirstDeliveries++
		return firstDelivery, rec.snapshot()
	case rec.EventType != eventType || !bytes.Equal(rec.canonical, canonical):
		s.stats.Conflicts++
		return conflict, rec.snapshot()
	default:
		rec.Deliveries++
		rec.LastReceivedAt = now
		s.stats.Duplicates++
		return duplicate, rec.snapshot()
	}
}

func (s *Server) countInvalid() {
	s.mu.Lock()
	s.stats.Invalid++
	s.mu.Unlock()
}

// headerToken reads a header that must hold one value of 1 to MaxKeyLen
// printable ASCII characters (no spaces). present is false when it is absent.
func headerToken(r *http.Request, name string) (v string, present bool, err error) {
	values := r.Header.Values(name)
	if len(values) == 0 {
		return "", false, nil
	}
	bad := fmt.Errorf("%s must be one value of 1 to %d printable ASCII characters", name, MaxKeyLen)
	v = values[0]
	if len(values) > 1 || v == "" || len(v) > MaxKeyLen {
		return "", true, bad
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return "", true, bad
		}
	}
	return v, true, nil
}

// errTooLarge marks a body over MaxBodyBytes.
var errTooLarge = errors.New("the request body is larger than this server accepts")

// readBody reads the whole request body, up to MaxBodyBytes. Reading it to
// the end also lets net/http notice, and end the request context, when the
// client goes away while the request is held.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errTooLarge
		}
		return nil, fmt.Errorf("read the request body: %w", err)
	}
	return raw, nil
}

// parseEvent checks that raw is exactly one JSON object. It returns the
// object compacted, and re-encoded with sorted keys for comparisons.
func parseEvent(raw []byte) (body, canonical []byte, err error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, errors.New("the request body is empty; it must be a JSON object")
		}
		return nil, nil, fmt.Errorf("the request body must be a JSON object: %w", err)
	}
	if obj == nil {
		return nil, nil, errors.New("the request body must be a JSON object, not null")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nil, errors.New("the request body must hold a single JSON object and nothing after it")
	}
	canonical, err = json.Marshal(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("re-encode the request body: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, nil, fmt.Errorf("compact the request body: %w", err)
	}
	return buf.Bytes(), canonical, nil
}
