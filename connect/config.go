// Package connect is what both CDC engines share: the Debezium connector
// configuration (outbox-connector.json) as the embedded engine understands
// it, the Outbox Event Router that turns an outbox row into a Kafka record,
// and the Kafka Connect REST API's shapes.
//
// The embedded engine accepts only the options it implements, with the
// values it implements: anything else is refused with an error naming the
// key, so a config that runs here behaves the same on Debezium.
package connect

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/outboxpay/outboxpay/internal/event"
)

// Class names the embedded engine stands in for.
const (
	PostgresConnectorClass = "io.debezium.connector.postgresql.PostgresConnector"
	EventRouterType        = "io.debezium.transforms.outbox.EventRouter"
	StringConverter        = "org.apache.kafka.connect.storage.StringConverter"
)

// Config is a validated connector configuration.
type Config struct {
	Database        Database
	SlotName        string
	PublicationName string
	// CreatePublication is publication.autocreate.mode=filtered: create the
	// publication FOR TABLE the outbox (every operation) if missing, or set
	// an existing one's table list to it, as Debezium does.
	CreatePublication bool
	Table             Table
	// TopicPrefix is topic.prefix, Debezium's logical name of the source.
	// The outbox records' topics come from the router, not from it; it
	// names the heartbeat topic (HeartbeatTopic) and the topic of captured
	// logical decoding messages (MessageTopic).
	TopicPrefix string
	// HeartbeatInterval is heartbeat.interval.ms: a heartbeat record
	// (HeartbeatRecord) and the heartbeat.action.query every interval; 0:
	// none.
	HeartbeatInterval time.Duration
	Heartbeat         *Heartbeat // heartbeat.action.query, run every HeartbeatInterval; nil: none
	// Messages is message.prefix.include.list and .exclude.list: which
	// logical decoding messages are captured, each published as a
	// MessageRecord (the heartbeat.action.query's too, unless left out).
	Messages MessageFilter
	Router   Router
	// MaxRetries is errors.max.retries: how many consecutive retriable
	// failures restart the task before it fails; -1 without limit, 0 none.
	MaxRetries int
	// RestartWait is retriable.restart.connector.wait.ms: the fixed wait
	// before the task restarts after a retriable failure.
	RestartWait        time.Duration
	StatusUpdatePeriod time.Duration // status.update.interval.ms: standby status to the server
}

// Database is where the outbox lives.
type Database struct {
	Host, User, Password, Name string
	Port                       int
	// SSLMode is database.sslmode, as libpq and Debezium read it: disable,
	// prefer (TLS if the server offers it, else plaintext), require (TLS,
	// server not verified unless SSLRootCert is set), verify-ca (TLS, server
	// certificate signed by SSLRootCert's CAs) or verify-full (verify-ca and
	// the host name matches).
	SSLMode string
	// SSLRootCert is database.sslrootcert: a file of trusted CA certificates;
	// empty means the system's.
	SSLRootCert string
}

// URL returns a libpq connection URL for the database. It holds the
// password: use it to connect, never show or log it.
func (d Database) URL() string {
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(d.User, d.Password),
		Host:   fmt.Sprintf("%s:%d", d.Host, d.Port),
		Path:   "/" + d.Name,
	}
	if d.Password == "" {
		u.User = url.User(d.User)
	}
	q := url.Values{"sslmode": {d.SSLMode}}
	if d.SSLRootCert != "" {
		q.Set("sslrootcert", d.SSLRootCert)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Table is a schema-qualified table name.
type Table struct{ Schema, Name string }

func (t Table) String() string { return t.Schema + "." + t.Name }

// FieldError is one invalid configuration key.
type FieldError struct {
	Key     string
	Message string
}

// ConfigError lists every invalid key of a configuration, as Kafka Connect
// reports a failed validation.
type ConfigError []FieldError

func (e ConfigError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Connector configuration is invalid and contains the following %d error(s):", len(e))
	for _, f := range e {
		fmt.Fprintf(&b, "\n%s: %s", f.Key, f.Message)
	}
	return b.String()
}

// Keys returns the invalid keys.
func (e ConfigError) Keys() []string {
	keys := make([]string, len(e))
	for i, f := range e {
		keys[i] = f.Key
	}
	return keys
}

// ErrInvalidConfig is wrapped by ParseConfig's errors.
var ErrInvalidConfig = errors.New("invalid connector configuration")

func (e ConfigError) Unwrap() error { return ErrInvalidConfig }

// option is a key the embedded engine accepts.
type option struct {
	def   string                       // default value; "" with required means no default
	req   bool                         // no default
	check func(v, shown string) string // message for a wrong v, "" if fine; it quotes shown, never v
}

func oneOf(values ...string) func(string, string) string {
	return func(v, shown string) string {
		if slices.Contains(values, v) {
			return ""
		}
		return fmt.Sprintf("the embedded engine supports %s, not %s", strings.Join(quoteAll(values), " or "), shown)
	}
}

func quoteAll(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = strconv.Quote(v)
	}
	return out
}

func intBetween(lo, hi int64) func(string, string) string {
	return func(v, shown string) string {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < lo || n > hi {
			return fmt.Sprintf("must be an integer from %d to %d, not %s", lo, hi, shown)
		}
		return ""
	}
}

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func pgIdentifier(v, shown string) string {
	if !identifier.MatchString(v) {
		return fmt.Sprintf("must be a lowercase Postgres identifier (letters, digits, _), not %s", shown)
	}
	return ""
}

func isPgIdentifier(v string) bool { return identifier.MatchString(v) }

func nonEmpty(v, _ string) string {
	if strings.TrimSpace(v) == "" {
		return "must not be empty"
	}
	return ""
}

const transformPrefix = "transforms.outbox."

// options is every key the embedded engine implements. Keys are Debezium's
// and Kafka Connect's; defaults are theirs where the engine has the same
// behaviour. heartbeat.action.query is not SQL the engine runs: it accepts
// only the grammar of ParseHeartbeat, SELECT pg_logical_emit_message(
// <true|false>, '<prefix>', <now()::varchar|now()::text|'<text>'>), and
// executes that with bind parameters.
var options = map[string]option{
	"name":                                {},
	"connector.class":                     {req: true, check: oneOf(PostgresConnectorClass)},
	"tasks.max":                           {def: "1", check: oneOf("1")},
	"plugin.name":                         {def: "decoderbufs", check: oneOf("pgoutput")},
	"database.hostname":                   {req: true, check: nonEmpty},
	"database.port":                       {def: "5432", check: intBetween(1, 65535)},
	"database.user":                       {req: true, check: nonEmpty},
	"database.password":                   {},
	"database.dbname":                     {req: true, check: nonEmpty},
	"database.sslmode":                    {def: "prefer", check: oneOf("disable", "prefer", "require", "verify-ca", "verify-full")},
	"database.sslrootcert":                {},
	"topic.prefix":                        {req: true, check: topicName},
	"slot.name":                           {def: "debezium", check: pgIdentifier},
	"publication.name":                    {def: "dbz_publication", check: pgIdentifier},
	"publication.autocreate.mode":         {def: "all_tables", check: publicationMode},
	"table.include.list":                  {req: true, check: nonEmpty},
	"snapshot.mode":                       {def: "initial", check: oneOf("no_data", "never")},
	"tombstones.on.delete":                {def: "true", check: oneOf("false")},
	"heartbeat.interval.ms":               {def: "0", check: intBetween(0, 24*3600*1000)},
	"heartbeat.action.query":              {check: heartbeatQuery},
	"message.prefix.include.list":         {check: regexList},
	"message.prefix.exclude.list":         {check: regexList},
	"status.update.interval.ms":           {def: "10000", check: intBetween(100, 3600*1000)},
	"errors.max.retries":                  {def: "-1", check: intBetween(-1, 1<<31-1)},
	"errors.tolerance":                    {def: "none", check: oneOf("none")},
	"retriable.restart.connector.wait.ms": {def: "10000", check: intBetween(1, 24*3600*1000)},
	"key.converter":                       {req: true, check: oneOf(StringConverter)},
	"value.converter":                     {req: true, check: oneOf(StringConverter)},
	"transforms":                          {req: true, check: oneOf("outbox")},

	transformPrefix + "type":                              {req: true, check: oneOf(EventRouterType)},
	transformPrefix + "route.by.field":                    {def: "aggregatetype", check: pgIdentifier},
	transformPrefix + "route.topic.replacement":           {def: event.TopicTemplate, check: topicReplacement},
	transformPrefix + "table.field.event.id":              {def: "id", check: pgIdentifier},
	transformPrefix + "table.field.event.key":             {def: "aggregateid", check: pgIdentifier},
	transformPrefix + "table.field.event.payload":         {def: "payload", check: pgIdentifier},
	transformPrefix + "table.fields.additional.placement": {},
	transformPrefix + "table.op.invalid.behavior":         {def: "warn", check: oneOf("warn")},
	transformPrefix + "table.expand.json.payload":         {def: "false", check: oneOf("false")},
	// Unset, the EventRouter stamps a record with the time Debezium processed
	// the change (the envelope's ts_ms), as the engine does.
	transformPrefix + "table.field.event.timestamp": {check: func(string, string) string {
		return "the embedded engine does not take the record timestamp from a column: leave it unset, " +
			"and both engines stamp a record with the time they processed the change"
	}},
}

// notConnectorOptions are retry options that do nothing for a Debezium
// connector's own errors on Kafka Connect, which the engine refuses with
// what to set instead: errors.retry.delay.initial.ms and .max.ms are the
// Debezium Engine's (EmbeddedEngineConfig), which Connect does not read; on
// Connect errors.retry.delay.max.ms is ConnectorConfig's bound on retrying
// a converter or transform (RetryWithToleranceOperator), which with
// errors.retry.timeout at its default 0 (the only value here) never retries.
var notConnectorOptions = map[string]string{
	"errors.retry.delay.initial.ms": "is an option of the Debezium Engine, not of the connector: Kafka Connect ignores it; " +
		"after a retriable error the task restarts after retriable.restart.connector.wait.ms",
	"errors.retry.delay.max.ms": "bounds Kafka Connect's retries of converters and transforms, which never retry with errors.retry.timeout=0; " +
		"after a retriable error the task restarts after retriable.restart.connector.wait.ms",
}

// publicationMode checks publication.autocreate.mode. Debezium's all_tables
// creates a publication FOR ALL TABLES (a superuser's privilege) and
// no_tables one without tables; the engine implements neither.
func publicationMode(v, shown string) string {
	switch v {
	case "disabled", "filtered":
		return ""
	case "all_tables":
		return `the embedded engine does not create publications FOR ALL TABLES (all_tables, Debezium's default); ` +
			`set "filtered" (FOR TABLE the outbox) or "disabled" (an existing publication)`
	}
	return fmt.Sprintf(`the embedded engine supports "disabled" or "filtered", not %s`, shown)
}

func topicReplacement(v, shown string) string {
	if !strings.Contains(v, "${routedByValue}") {
		return fmt.Sprintf("must contain ${routedByValue}, not %s", shown)
	}
	return ""
}

// ParseConfig validates a connector configuration and returns it typed. A
// ConfigError lists every key that is unknown to the embedded engine,
// missing, or has a value it does not implement; its messages may quote the
// values of raw. A config with ${env:...} references goes through
// Env.ParseConfig instead.
func ParseConfig(raw map[string]string) (Config, error) {
	return parseConfig(raw, func(k string) string { return strconv.Quote(raw[k]) })
}

// parseConfig is ParseConfig; shown(key) is how a message may show the
// key's value.
func parseConfig(raw map[string]string, shown func(key string) string) (Config, error) {
	var errs ConfigError
	bad := func(key, format string, args ...any) {
		errs = append(errs, FieldError{Key: key, Message: fmt.Sprintf(format, args...)})
	}
	v := make(map[string]string, len(options))
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if msg, ok := notConnectorOptions[k]; ok {
			bad(k, "%s", msg)
		} else if _, ok := options[k]; !ok {
			bad(k, "the embedded engine does not implement this option")
		}
	}
	optionKeys := make([]string, 0, len(options))
	for k := range options {
		optionKeys = append(optionKeys, k)
	}
	sort.Strings(optionKeys)
	for _, k := range optionKeys {
		o := options[k]
		val, ok := raw[k]
		if !ok {
			if o.req {
				bad(k, "missing required configuration %q which has no default value", k)
				continue
			}
			val = o.def
			if val == "" {
				v[k] = ""
				continue
			}
		}
		if o.check != nil {
			show := strconv.Quote(val) // the default
			if ok {
				show = shown(k)
			}
			if msg := o.check(val, show); msg != "" {
				if !ok {
					msg = fmt.Sprintf("%s (the default); set it explicitly", msg)
				}
				bad(k, "%s", msg)
				continue
			}
		}
		v[k] = val
	}

	c := Config{
		Database: Database{
			Host: v["database.hostname"], User: v["database.user"], Password: v["database.password"],
			Name: v["database.dbname"], SSLMode: v["database.sslmode"],
		},
		SlotName:          v["slot.name"],
		PublicationName:   v["publication.name"],
		CreatePublication: v["publication.autocreate.mode"] == "filtered",
		TopicPrefix:       v["topic.prefix"],
	}
	c.Database.SSLRootCert = v["database.sslrootcert"]
	c.Database.Port, _ = strconv.Atoi(v["database.port"])
	c.HeartbeatInterval = millis(v["heartbeat.interval.ms"])
	c.StatusUpdatePeriod = millis(v["status.update.interval.ms"])
	c.RestartWait = millis(v["retriable.restart.connector.wait.ms"])
	c.MaxRetries, _ = strconv.Atoi(v["errors.max.retries"])
	include, exclude := v["message.prefix.include.list"], v["message.prefix.exclude.list"]
	if strings.TrimSpace(include) != "" && strings.TrimSpace(exclude) != "" {
		bad("message.prefix.include.list", "must not be set together with message.prefix.exclude.list")
	} else {
		c.Messages = MessageFilter{Include: compileList(include), Exclude: compileList(exclude)}
	}

	if tables := splitList(v["table.include.list"]); len(tables) != 1 {
		if v["table.include.list"] != "" {
			bad("table.include.list", "the embedded engine streams exactly one outbox table, not %s", shown("table.include.list"))
		}
	} else if schema, name, ok := strings.Cut(tables[0], "."); !ok || !isPgIdentifier(schema) || !isPgIdentifier(name) {
		bad("table.include.list", "must name the outbox table as schema.table (a plain name, not a pattern), not %s", shown("table.include.list"))
	} else {
		c.Table = Table{Schema: schema, Name: name}
	}
	if q := v["heartbeat.action.query"]; strings.TrimSpace(q) != "" {
		if c.HeartbeatInterval == 0 {
			bad("heartbeat.action.query", "needs heartbeat.interval.ms > 0 to run")
		}
		if h, err := ParseHeartbeat(q); err == nil {
			c.Heartbeat = &h
		}
	}
	router, routerErrs := newRouter(v, shown)
	errs = append(errs, routerErrs...)
	c.Router = router

	if len(errs) > 0 {
		return Config{}, errs
	}
	return c, nil
}

func millis(v string) time.Duration {
	n, _ := strconv.ParseInt(v, 10, 64)
	return time.Duration(n) * time.Millisecond
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// MessageTopic is the topic Debezium writes the logical decoding messages
// it captures to: topic.prefix + ".message".
func (c Config) MessageTopic() string { return c.TopicPrefix + ".message" }

// MessageFilter is Debezium's message.prefix.include.list and
// message.prefix.exclude.list (at most one of them is set): comma-separated
// regular expressions, each matching a whole prefix.
type MessageFilter struct {
	Include, Exclude []*regexp.Regexp
}

// Captures reports whether Debezium captures a logical decoding message of
// prefix: with an include list, one of it matches the prefix; otherwise
// none of the exclude list does.
func (f MessageFilter) Captures(prefix string) bool {
	matches := func(res []*regexp.Regexp) bool {
		return slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(prefix) })
	}
	if len(f.Include) > 0 {
		return matches(f.Include)
	}
	return !matches(f.Exclude)
}

// topicNamePattern is Debezium's check of topic.prefix (CommonConnectorConfig.validateTopicName).
var topicNamePattern = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

func topicName(v, shown string) string {
	if !topicNamePattern.MatchString(v) {
		return fmt.Sprintf("%s has invalid format (only the underscore, hyphen, dot and alphanumeric characters are allowed)", shown)
	}
	return ""
}

// regexList checks a comma-separated list of regular expressions, each
// compiled to match a whole string. Debezium's are Java's; the engine
// refuses one that Go's RE2 syntax does not accept.
func regexList(v, shown string) string {
	for _, p := range splitList(v) {
		if _, err := regexp.Compile(`^(?:` + p + `)$`); err != nil {
			return fmt.Sprintf("must be a comma-separated list of regular expressions (RE2 syntax), not %s", shown)
		}
	}
	return ""
}

// compileList compiles a list that regexList accepted.
func compileList(v string) []*regexp.Regexp {
	var res []*regexp.Regexp
	for _, p := range splitList(v) {
		res = append(res, regexp.MustCompile(`^(?:`+p+`)$`))
	}
	return res
}
