// Package contractdoc reads the example records of docs/EVENT-CONTRACT.md,
// so tests can hold them to what the product builds and the engines emit.
// It is meant for tests.
//
// An example record is a line "topic=T partition=P offset=O key=K ...",
// then lines "  header NAME=VALUE", then a line "  value BYTES".
package contractdoc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"

	"github.com/outboxpay/outboxpay/internal/event"
)

// Record is one example record of the document, its parts as written.
type Record struct {
	Line      int // where it starts in the document
	Topic     string
	Partition int32
	Key       string
	Headers   []event.Header
	Value     string
}

// Header returns the value of the record's header key, and whether it has
// one.
func (r Record) Header(key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

var (
	recordLine = regexp.MustCompile(`^topic=(\S+) partition=(\d+) offset=\d+ key=(\S+) `)
	headerLine = regexp.MustCompile(`^  header ([^=\s]+)=(.*)$`)
	valueLine  = regexp.MustCompile(`^  value (.*)$`)
)

// Records reads the example records of the document at path, in order.
func Records(path string) ([]Record, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the contract document: %w", err)
	}
	var recs []Record
	var cur *Record
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := recordLine.FindStringSubmatch(line); m != nil {
			p, err := strconv.ParseInt(m[2], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: partition %q: %w", path, n, m[2], err)
			}
			cur = &Record{Line: n, Topic: m[1], Partition: int32(p), Key: m[3]}
			continue
		}
		if cur == nil {
			continue
		}
		if m := headerLine.FindStringSubmatch(line); m != nil {
			cur.Headers = append(cur.Headers, event.Header{Key: m[1], Value: []byte(m[2])})
			continue
		}
		if m := valueLine.FindStringSubmatch(line); m != nil {
			cur.Value = m[1]
			recs = append(recs, *cur)
		}
		cur = nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the contract document: %w", err)
	}
	return recs, nil
}

// Message builds the outbox message of an example record with the
// product's constructor for its eventType header, from the fields of its
// value (a field the payload type lacks is an error). The message gets the
// example's id header as its id.
func Message(r Record) (event.Message, error) {
	typ, _ := r.Header(event.HeaderEventType)
	dec := func(v any) error {
		d := json.NewDecoder(bytes.NewReader([]byte(r.Value)))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			return fmt.Errorf("line %d: decode the %s value: %w", r.Line, typ, err)
		}
		return nil
	}
	var msg event.Message
	var err error
	switch typ {
	case event.TypePaymentCompleted:
		var p event.PaymentCompleted
		if err := dec(&p); err != nil {
			return event.Message{}, err
		}
		msg, err = event.NewPaymentCompleted(p)
	case event.TypeOrderPaid:
		var p event.OrderPaid
		if err := dec(&p); err != nil {
			return event.Message{}, err
		}
		msg, err = event.NewOrderPaid(p)
	case event.TypePaymentRefunded:
		var p event.PaymentRefunded
		if err := dec(&p); err != nil {
			return event.Message{}, err
		}
		msg, err = event.NewPaymentRefunded(p)
	default:
		return event.Message{}, fmt.Errorf("line %d: unknown event type %q", r.Line, typ)
	}
	if err != nil {
		return event.Message{}, fmt.Errorf("line %d: %w", r.Line, err)
	}
	id, _ := r.Header(event.HeaderID)
	if err := msg.ID.UnmarshalText([]byte(id)); err != nil {
		return event.Message{}, fmt.Errorf("line %d: id header %q: %w", r.Line, id, err)
	}
	return msg, nil
}
