package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/api/operator"
	"github.com/outboxpay/outboxpay/internal/ops"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

const opsUsage = `usage: outboxpay ops <subcommand> [arguments]

The operator API's reads and actions (CONSOLE_URL, signed in as
CONSOLE_USERNAME with CONSOLE_PASSWORD), the answer as JSON on stdout:

  summary [--window 60s]          the pipeline now, and over the window
  series [--minutes 10] [--step 5s]
                                  completions over the last minutes, in buckets
  events [--order N] [--event ID] [--status S] [--type T] [--aggregatetype A]
         [--aggregateid A] [--older-than D] [--newer-than D] [--limit N]
                                  search the outbox, newest first
  event ID                        one event's life
  retry ID --reason R             send a FAILED or PARKED row back through the normal path
  park ID --reason R              set a row aside (PARKED)
  discard ID --reason R           give a row up for good (DISCARDED)
  dlq [--topic T] [--event ID] [--limit N]
                                  dead-lettered records
  redrive --topic T [--partition P --offset O] --reason R
                                  re-drive one record, or every record of the topic
  connector pause|resume|restart --reason R
  audit [--target X] [--limit N]  the audit log, newest first

Exit status: 0 done, 1 the API refused or failed (its detail on stderr), 2 bad usage.
`

// opsCall is one `outboxpay ops` subcommand with its arguments parsed.
type opsCall struct {
	name    string
	window  time.Duration
	minutes int
	step    time.Duration
	query   ops.Query
	id      uuid.UUID
	reason  string
	dlq     ops.DLQQuery
	redrive ops.Redrive
	action  string // connector: pause, resume or restart
	audit   ops.AuditQuery
}

// parseOps parses the arguments of `outboxpay ops`; flags may come before
// or after the positional arguments.
func parseOps(args []string) (opsCall, error) {
	if len(args) == 0 {
		return opsCall{}, errors.New("name a subcommand")
	}
	c := opsCall{name: args[0]}
	fs := flag.NewFlagSet("outboxpay ops "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		positional                         []string
		wantPositional                     int
		reason, status, event              string
		partition, offset                  int64 = -1, -1
		hasReason                          bool
		order                              int64
		older, newer                       time.Duration
		limit                              int
		topic, target, aggType, aggID, typ string
	)
	reasonFlag := func() {
		fs.Func("reason", "why (kept in the audit log)", func(s string) error { reason, hasReason = s, true; return nil })
	}
	switch c.name {
	case "summary":
		fs.DurationVar(&c.window, "window", 0, "")
	case "series":
		fs.IntVar(&c.minutes, "minutes", 0, "")
		fs.DurationVar(&c.step, "step", 0, "")
	case "events":
		fs.Int64Var(&order, "order", 0, "")
		fs.StringVar(&event, "event", "", "")
		fs.StringVar(&status, "status", "", "")
		fs.StringVar(&typ, "type", "", "")
		fs.StringVar(&aggType, "aggregatetype", "", "")
		fs.StringVar(&aggID, "aggregateid", "", "")
		fs.DurationVar(&older, "older-than", 0, "")
		fs.DurationVar(&newer, "newer-than", 0, "")
		fs.IntVar(&limit, "limit", 0, "")
	case "event":
		wantPositional = 1
	case "retry", "park", "discard":
		wantPositional = 1
		reasonFlag()
	case "dlq":
		fs.StringVar(&topic, "topic", "", "")
		fs.StringVar(&event, "event", "", "")
		fs.IntVar(&limit, "limit", 0, "")
	case "redrive":
		fs.StringVar(&topic, "topic", "", "")
		fs.Int64Var(&partition, "partition", -1, "")
		fs.Int64Var(&offset, "offset", -1, "")
		reasonFlag()
	case "connector":
		wantPositional = 1
		reasonFlag()
	case "audit":
		fs.StringVar(&target, "target", "", "")
		fs.IntVar(&limit, "limit", 0, "")
	default:
		return opsCall{}, fmt.Errorf("unknown subcommand %q", c.name)
	}
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return opsCall{}, fmt.Errorf("%s: %w", c.name, err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(positional) != wantPositional {
		return opsCall{}, fmt.Errorf("%s takes %d argument(s) besides flags, not %d: %q", c.name, wantPositional, len(positional), positional)
	}
	if fs.Lookup("reason") != nil && (!hasReason || strings.TrimSpace(reason) == "") {
		return opsCall{}, fmt.Errorf("%s: --reason is required (it goes into the audit log)", c.name)
	}
	c.reason = reason
	var err error
	switch c.name {
	case "events":
		c.query = ops.Query{OrderID: order, AggregateType: aggType, AggregateID: aggID, Type: typ,
			Status: outbox.Status(strings.ToUpper(status)), OlderThan: older, NewerThan: newer, Limit: limit}
		if event != "" {
			if c.query.EventID, err = uuid.Parse(event); err != nil {
				return opsCall{}, fmt.Errorf("events: --event %q is not an event id (a UUID)", event)
			}
		}
	case "event", "retry", "park", "discard":
		if c.id, err = uuid.Parse(positional[0]); err != nil {
			return opsCall{}, fmt.Errorf("%s: %q is not an event id (a UUID)", c.name, positional[0])
		}
	case "dlq":
		c.dlq = ops.DLQQuery{Topic: topic, Limit: limit}
		if event != "" {
			if c.dlq.EventID, err = uuid.Parse(event); err != nil {
				return opsCall{}, fmt.Errorf("dlq: --event %q is not an event id (a UUID)", event)
			}
		}
	case "redrive":
		if topic == "" {
			return opsCall{}, errors.New("redrive: --topic is required (a DLQ topic such as outbox.event.payment.dlq)")
		}
		c.redrive.Topic = topic
		switch {
		case (partition < 0) != (offset < 0):
			return opsCall{}, errors.New("redrive: --partition and --offset go together (one record), or neither (every record of the topic)")
		case partition > 1<<31-1:
			return opsCall{}, fmt.Errorf("redrive: --partition %d is out of range", partition)
		case partition >= 0:
			p := int32(partition)
			c.redrive.Partition, c.redrive.Offset = &p, &offset
		}
	case "connector":
		c.action = positional[0]
		if c.action != "pause" && c.action != "resume" && c.action != "restart" {
			return opsCall{}, fmt.Errorf("connector: the action is pause, resume or restart, not %q", c.action)
		}
	case "audit":
		c.audit = ops.AuditQuery{Target: target, Limit: limit}
	}
	return c, nil
}

// do makes c's request with cl and returns the answer.
func (c opsCall) do(ctx context.Context, cl *operator.Client) (any, error) {
	switch c.name {
	case "summary":
		return cl.Summary(ctx, c.window)
	case "series":
		return cl.Series(ctx, c.minutes, c.step)
	case "events":
		return cl.Search(ctx, c.query)
	case "event":
		return cl.Life(ctx, c.id)
	case "retry":
		return cl.Retry(ctx, c.id, c.reason)
	case "park":
		return cl.Park(ctx, c.id, c.reason)
	case "discard":
		return cl.Discard(ctx, c.id, c.reason)
	case "dlq":
		return cl.DLQ(ctx, c.dlq)
	case "redrive":
		return cl.Redrive(ctx, c.redrive, c.reason)
	case "connector":
		return cl.Connector(ctx, c.action, c.reason)
	case "audit":
		return cl.Audit(ctx, c.audit)
	}
	return nil, fmt.Errorf("unknown subcommand %q", c.name)
}

// runOps is `outboxpay ops`: it returns the exit status (0 done, 1 the API
// refused or failed, 2 bad usage or configuration).
func runOps(ctx context.Context, cfg config, args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, opsUsage)
		return 0
	}
	c, err := parseOps(args)
	if err != nil {
		fmt.Fprintf(stderr, "outboxpay ops: %v\n\n%s", err, opsUsage)
		return 2
	}
	if cfg.ConsoleUsername == "" || cfg.ConsolePassword == "" {
		fmt.Fprintln(stderr, "outboxpay ops: set CONSOLE_USERNAME and CONSOLE_PASSWORD to an operator's credentials (a user of the console's CONSOLE_CREDENTIALS_FILE)")
		return 2
	}
	cl := operator.NewClient(cfg.ConsoleURL, cfg.ConsoleUsername, cfg.ConsolePassword,
		&http.Client{Timeout: cfg.ConsoleRequestTimeout + 10*time.Second})
	out, err := c.do(ctx, cl)
	if err != nil {
		var oe *operator.Error
		if errors.As(err, &oe) {
			fmt.Fprintf(stderr, "outboxpay ops %s: %d %s: %s\n", c.name, oe.Status, http.StatusText(oe.Status), oe.Detail)
		} else {
			fmt.Fprintf(stderr, "outboxpay ops %s: %v\n", c.name, err)
		}
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(stderr, "outboxpay ops %s: write the answer: %v\n", c.name, err)
		return 1
	}
	return 0
}
