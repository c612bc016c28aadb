package connect

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/outboxpay/outboxpay/internal/event"
)

// Router is the Outbox Event Router (Debezium's EventRouter transform) as
// configured: it turns an inserted outbox row into the Kafka record of the
// event contract (package event). Both the embedded engine and the reconciler's direct
// publishing use it, so their records are the same.
type Router struct {
	RouteBy       string // column whose value routes the topic (aggregatetype)
	TopicTemplate string // with ${routedByValue}
	IDField       string // column -> header "id"
	KeyField      string // column -> record key
	PayloadField  string // column -> record value
	Headers       []HeaderPlacement
}

// HeaderPlacement copies a column into a record header.
type HeaderPlacement struct {
	Column string
	Header string
}

// Record is one Kafka record, the contract's (event.Record).
type Record = event.Record

// Header is one Kafka record header, the contract's (event.Header).
type Header = event.Header

// DefaultRouter is the router of the default EventRouter settings plus the
// eventType header of outbox-connector.json.
var DefaultRouter = Router{
	RouteBy:       "aggregatetype",
	TopicTemplate: event.TopicTemplate,
	IDField:       "id",
	KeyField:      "aggregateid",
	PayloadField:  "payload",
	Headers:       []HeaderPlacement{{Column: "type", Header: event.HeaderEventType}},
}

func newRouter(v map[string]string, shown func(key string) string) (Router, ConfigError) {
	r := Router{
		RouteBy:       v[transformPrefix+"route.by.field"],
		TopicTemplate: v[transformPrefix+"route.topic.replacement"],
		IDField:       v[transformPrefix+"table.field.event.id"],
		KeyField:      v[transformPrefix+"table.field.event.key"],
		PayloadField:  v[transformPrefix+"table.field.event.payload"],
	}
	var errs ConfigError
	key := transformPrefix + "table.fields.additional.placement"
	for _, p := range splitList(v[key]) {
		parts := strings.Split(p, ":")
		// column:header[:alias]; Debezium also has envelope placement, which
		// changes the value and is not implemented here.
		if len(parts) < 2 || len(parts) > 3 || parts[1] != "header" || !isPgIdentifier(parts[0]) {
			errs = append(errs, FieldError{Key: key,
				Message: fmt.Sprintf("the embedded engine supports column:header[:name] placements, not %s", shown(key))})
			continue
		}
		h := HeaderPlacement{Column: parts[0], Header: parts[0]}
		if len(parts) == 3 && parts[2] != "" {
			h.Header = parts[2]
		}
		r.Headers = append(r.Headers, h)
	}
	return r, errs
}

// ReadColumns lists the columns Route reads, once each: what a caller
// reads of a row (as text) to route it.
func (r Router) ReadColumns() []string {
	var cols []string
	seen := map[string]bool{}
	add := func(c string) {
		if c != "" && !seen[c] {
			seen[c] = true
			cols = append(cols, c)
		}
	}
	add(r.IDField)
	add(r.RouteBy)
	add(r.KeyField)
	add(r.PayloadField)
	for _, h := range r.Headers {
		add(h.Column)
	}
	return cols
}

// Columns are the text values of an outbox row by column name, as Postgres
// outputs them (pgoutput's text format, or ::text in SQL). A NULL is absent.
type Columns map[string]string

// Route builds the record of a row the engine (or the reconciler) processes
// at processed: topic from the routing column, key from the key column,
// value the payload text as is (never re-encoded), header id from the id
// column, the additional headers (a NULL column gives its header a null
// value, as Debezium's EventRouterDelegate adds it), and processed,
// truncated to the millisecond, as timestamp: Debezium's EventRouter stamps
// the envelope's ts_ms, the connector's clock when it processed the change,
// when table.field.event.timestamp is unset (which the embedded engine
// refuses). It is not the commit time: after a backlog or downtime it is
// later.
func (r Router) Route(row Columns, processed time.Time) (Record, error) {
	return r.RouteFunc(func(col string) ([]byte, bool) {
		v, ok := row[col]
		return []byte(v), ok
	}, processed)
}

// RouteFunc is Route for a row read through get, which returns a column's
// text value, or false for a NULL. The record's key, value and headers are
// the slices get returns, not copies: the engine hands them to Kafka before
// the buffer they point into is reused.
func (r Router) RouteFunc(get func(column string) ([]byte, bool), processed time.Time) (Record, error) {
	must := func(col string) ([]byte, error) {
		v, ok := get(col)
		if !ok {
			return nil, fmt.Errorf("outbox row has no value in column %q", col)
		}
		return v, nil
	}
	routeBy, err := must(r.RouteBy)
	if err != nil {
		return Record{}, err
	}
	id, err := must(r.IDField)
	if err != nil {
		return Record{}, err
	}
	payload, err := must(r.PayloadField)
	if err != nil {
		return Record{}, err
	}
	rec := Record{
		Topic:     strings.ReplaceAll(r.TopicTemplate, "${routedByValue}", string(routeBy)),
		Value:     payload,
		Timestamp: processed.Truncate(time.Millisecond),
		Headers:   make([]Header, 0, 1+len(r.Headers)),
	}
	if key, ok := get(r.KeyField); ok {
		rec.Key = key
	}
	rec.Headers = append(rec.Headers, Header{Key: event.HeaderID, Value: bytes.ToLower(id)})
	for _, h := range r.Headers {
		v, ok := get(h.Column)
		if !ok {
			v = nil // NULL: Kafka's null header value, not an empty one
		} else if v == nil {
			v = []byte{} // '': an empty value, not a null one
		}
		rec.Headers = append(rec.Headers, Header{Key: h.Header, Value: v})
	}
	return rec, nil
}
