package main

import (
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

// deps are what the subcommands share: built once by main (newDeps), given
// databases by the subcommand that opens them, and handed down whole
// instead of one parameter each.
type deps struct {
	cfg config
	// command is the subcommand being run ("api", "consumers", ...): the
	// application_name of the pool withDB opens is appName(command).
	command string
	logger  *slog.Logger
	// reg is the process's metrics registry, served on /metrics.
	reg *prometheus.Registry
	// dbs are the connection pools, one per component's role; a subcommand
	// with one database sets all three to its pool (see oneDB).
	dbs databases
	// kafkaAs returns the Kafka settings of a component by its principal
	// (kafkaclient.Principal*); outside `dev`'s embedded cluster every
	// component is the process's one principal.
	kafkaAs func(principal string) kafkaclient.Config
	// lookup resolves a connector config's ${env:NAME} references (for the
	// names CONNECT_ENV_ALLOWLIST_PATTERN allows).
	lookup func(name string) (string, bool)
}

// newDeps returns the deps of cfg: its logger, a new registry, no
// databases, the process's Kafka settings and the environment; main sets
// command.
func newDeps(cfg config) deps {
	return deps{
		cfg:     cfg,
		logger:  cfg.logger(),
		reg:     newRegistry(),
		kafkaAs: func(string) kafkaclient.Config { return cfg.kafka(cfg.KafkaBootstrap) },
		lookup:  os.LookupEnv,
	}
}

// databases are the connection pools of the API, of the workers (consumers,
// reconciler, lag exporter), of the CDC engine and of the operator console.
type databases struct {
	api, worker, cdc, operator *sql.DB
}

// oneDB is databases that are all db.
func oneDB(db *sql.DB) databases { return databases{api: db, worker: db, cdc: db, operator: db} }

// closing joins what stop returns into *err: `defer closing(&err, c.Close)`
// in a function with the named result err reports a failed stop instead of
// dropping it.
func closing(err *error, stop func() error) {
	*err = errors.Join(*err, stop())
}

// close closes the pools (each once).
func (d databases) close() error {
	var errs []error
	seen := map[*sql.DB]bool{}
	for _, db := range []*sql.DB{d.api, d.worker, d.cdc, d.operator} {
		if db != nil && !seen[db] {
			seen[db] = true
			if err := db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close database: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}
