// Package kafkaclient holds the connection and security settings every Kafka
// client of the product starts from: bootstrap servers, security protocol
// and SASL credentials. A Config never prints or logs its password.
package kafkaclient

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/caarlos0/env/v11"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// SASL mechanisms a Config accepts.
const (
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// Security protocols a Config accepts (librdkafka's security.protocol).
const (
	Plaintext     = "PLAINTEXT"
	SASLPlaintext = "SASL_PLAINTEXT"
	SSL           = "SSL"
	SASLSSL       = "SASL_SSL"
)

// ErrInvalid is wrapped by Validate's errors.
var ErrInvalid = errors.New("invalid kafka client settings")

// Config is how a client reaches Kafka. The zero security settings mean no
// SASL over PLAINTEXT, for clusters without authentication.
type Config struct {
	// Bootstrap lists the bootstrap servers, host:port[,host:port...].
	Bootstrap string `env:"KAFKA_BOOTSTRAP_SERVERS"`
	// SecurityProtocol is PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL;
	// empty: SASL_PLAINTEXT when SASLMechanism is set, else PLAINTEXT.
	SecurityProtocol string `env:"KAFKA_SECURITY_PROTOCOL"`
	// SASLMechanism is SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL.
	SASLMechanism string `env:"KAFKA_SASL_MECHANISM"`
	// SASLUsername and SASLPassword are the principal's credentials,
	// required with SASLMechanism.
	SASLUsername string `env:"KAFKA_SASL_USERNAME"`
	SASLPassword string `env:"KAFKA_SASL_PASSWORD"`
}

// FromEnv reads a Config from KAFKA_BOOTSTRAP_SERVERS,
// KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and
// KAFKA_SASL_PASSWORD, and validates it.
func FromEnv() (Config, error) {
	c, err := env.ParseAs[Config]()
	if err != nil {
		return Config{}, fmt.Errorf("read kafka client settings: %w", err)
	}
	return c, c.Validate()
}

// WithUser returns c authenticating as user with password over mechanism.
func (c Config) WithUser(mechanism, user, password string) Config {
	c.SASLMechanism, c.SASLUsername, c.SASLPassword = mechanism, user, password
	return c
}

// Protocol returns the effective security protocol.
func (c Config) Protocol() string {
	switch {
	case c.SecurityProtocol != "":
		return strings.ToUpper(c.SecurityProtocol)
	case c.SASLMechanism != "":
		return SASLPlaintext
	default:
		return Plaintext
	}
}

// Validate checks the security settings (not Bootstrap, which the callers
// that need it check): a known mechanism with a username and password, a
// known protocol, and SASL protocols only with a mechanism. Its errors
// never contain the password.
func (c Config) Validate() error {
	switch c.SASLMechanism {
	case "":
		if c.SASLUsername != "" || c.SASLPassword != "" {
			return fmt.Errorf("%w: KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD set without KAFKA_SASL_MECHANISM", ErrInvalid)
		}
	case ScramSHA256, ScramSHA512:
		if c.SASLUsername == "" || c.SASLPassword == "" {
			return fmt.Errorf("%w: KAFKA_SASL_MECHANISM %s needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD", ErrInvalid, c.SASLMechanism)
		}
	default:
		return fmt.Errorf("%w: KAFKA_SASL_MECHANISM must be %s or %s, not %q", ErrInvalid, ScramSHA256, ScramSHA512, c.SASLMechanism)
	}
	switch p := c.Protocol(); p {
	case Plaintext, SSL:
		if c.SASLMechanism != "" {
			return fmt.Errorf("%w: KAFKA_SECURITY_PROTOCOL %s does not use SASL, but KAFKA_SASL_MECHANISM is set", ErrInvalid, p)
		}
	case SASLPlaintext, SASLSSL:
		if c.SASLMechanism == "" {
			return fmt.Errorf("%w: KAFKA_SECURITY_PROTOCOL %s needs KAFKA_SASL_MECHANISM", ErrInvalid, p)
		}
	default:
		return fmt.Errorf("%w: KAFKA_SECURITY_PROTOCOL must be PLAINTEXT, SASL_PLAINTEXT, SSL or SASL_SSL, not %q", ErrInvalid, c.SecurityProtocol)
	}
	return nil
}

// ConfigMap returns the librdkafka settings every client starts from:
// bootstrap.servers, security.protocol and, with SASL, the mechanism and
// credentials. Each call returns a new map the caller may extend.
func (c Config) ConfigMap() kafka.ConfigMap {
	cm := kafka.ConfigMap{
		"bootstrap.servers": c.Bootstrap,
		"security.protocol": strings.ToLower(c.Protocol()),
	}
	if c.SASLMechanism != "" {
		cm["sasl.mechanism"] = c.SASLMechanism
		cm["sasl.username"] = c.SASLUsername
		cm["sasl.password"] = c.SASLPassword
	}
	return cm
}

// String describes c without its password.
func (c Config) String() string {
	if c.SASLMechanism == "" {
		return fmt.Sprintf("%s (%s)", c.Bootstrap, c.Protocol())
	}
	return fmt.Sprintf("%s (%s, %s as %s)", c.Bootstrap, c.Protocol(), c.SASLMechanism, c.SASLUsername)
}

// GoString is String, so %#v does not print the password either.
func (c Config) GoString() string { return c.String() }

// LogValue logs c without its password.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("bootstrap", c.Bootstrap), slog.String("security_protocol", c.Protocol())}
	if c.SASLMechanism != "" {
		attrs = append(attrs, slog.String("sasl_mechanism", c.SASLMechanism), slog.String("sasl_username", c.SASLUsername))
	}
	return slog.GroupValue(attrs...)
}

// ConsumerFetchBounds are the librdkafka settings that bound what a
// consumer of the product prefetches: at most 1,000 records per partition
// (queued.min.messages) and 8 MiB in all (queued.max.messages.kbytes,
// which also caps fetch.max.bytes). librdkafka's defaults, 100,000 records
// per partition and 64 MiB per consumer, let every consumer of a group
// that lags behind hold 64 MiB of records in C memory; the product's
// consumer groups already queue up to 1,000 records per partition in Go
// ahead of their handlers, so a deeper C queue buys nothing.
func ConsumerFetchBounds() map[string]any {
	return map[string]any{
		"queued.min.messages":        1000,
		"queued.max.messages.kbytes": 8192,
	}
}
