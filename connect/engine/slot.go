package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// prepare checks the database, creates the publication (if the config asks)
// and the slot (if missing), and returns the slot's confirmed position. Both
// of its connections honour database.sslmode as libpq does (pgconn).
func (s *session) prepare(ctx context.Context) (pglogrepl.LSN, error) {
	cfg := s.e.cfg
	connConfig, err := pgx.ParseConfig(cfg.Database.URL())
	if err != nil {
		// pgconn's message quotes the connection string: not shown.
		return 0, permanent("database settings: %s", connectSettingsError(err))
	}
	// The password is the config's, never the worker's PGPASSWORD or
	// .pgpass, which the ${env:...} allow-list would not let a config reach.
	connConfig.Password = cfg.Database.Password
	db := stdlib.OpenDB(*connConfig)
	db.SetMaxOpenConns(2)
	s.db = db

	var walLevel string
	if err := db.QueryRowContext(ctx, `SHOW wal_level`).Scan(&walLevel); err != nil {
		return 0, dbError("connect to the database", err)
	}
	if walLevel != "logical" {
		return 0, permanent("wal_level is %q; logical decoding needs wal_level=logical", walLevel)
	}
	if err := s.ensurePublication(ctx); err != nil {
		return 0, err
	}

	replConfig, err := pgconn.ParseConfig(cfg.Database.URL() + "&replication=database")
	if err != nil {
		return 0, permanent("database settings: %s", connectSettingsError(err))
	}
	replConfig.Password = cfg.Database.Password
	s.conn, err = pgconn.ConnectConfig(ctx, replConfig)
	if err != nil {
		return 0, dbError("open replication connection", err)
	}
	var confirmed sql.NullString
	err = db.QueryRowContext(ctx,
		`SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, cfg.SlotName).Scan(&confirmed)
	if errors.Is(err, sql.ErrNoRows) {
		_, err = pglogrepl.CreateReplicationSlot(ctx, s.conn, cfg.SlotName, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" { // created meanwhile by another session
			err = nil
		}
		if err != nil {
			return 0, dbError("create replication slot "+cfg.SlotName, err)
		}
		s.e.logger.Info("replication slot created", "slot", cfg.SlotName)
		err = db.QueryRowContext(ctx,
			`SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, cfg.SlotName).Scan(&confirmed)
	}
	if err != nil {
		return 0, dbError("read replication slot "+cfg.SlotName, err)
	}
	if !confirmed.Valid {
		return 0, permanent("replication slot %s is not a logical slot", cfg.SlotName)
	}
	lsn, err := pglogrepl.ParseLSN(confirmed.String)
	if err != nil {
		return 0, fmt.Errorf("read replication slot %s: %w", cfg.SlotName, err)
	}
	return lsn, nil
}

// ensurePublication makes sure the publication exists, as Debezium's
// PostgresReplicationConnection.initPublication does for pgoutput. With
// publication.autocreate.mode=disabled it must exist (and, here, cover the
// outbox table). With filtered, a missing one is created
// `CREATE PUBLICATION <name> FOR TABLE "<schema>"."<table>"`, with
// Postgres's default publish (insert, update, delete, truncate), and an
// existing one gets its table list set, at every start, with
// `ALTER PUBLICATION <name> SET TABLE ...`, which leaves its publish list as
// it is; a publication FOR ALL TABLES cannot be altered and fails the task.
func (s *session) ensurePublication(ctx context.Context) error {
	cfg := s.e.cfg
	var allTables bool
	err := s.db.QueryRowContext(ctx, `SELECT puballtables FROM pg_publication WHERE pubname = $1`,
		cfg.PublicationName).Scan(&allTables)
	exists := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return dbError("check publication "+cfg.PublicationName, err)
	}
	if !cfg.CreatePublication {
		if !exists {
			return permanent("publication %s does not exist and publication.autocreate.mode is disabled", cfg.PublicationName)
		}
		var covers bool
		err := s.db.QueryRowContext(ctx,
			`SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)`,
			cfg.PublicationName, cfg.Table.Schema, cfg.Table.Name).Scan(&covers)
		if err != nil {
			return dbError("check publication "+cfg.PublicationName, err)
		}
		if !covers {
			return permanent("publication %s does not cover table %s", cfg.PublicationName, cfg.Table)
		}
		return nil
	}
	if allTables {
		return permanent("publication %s is FOR ALL TABLES and cannot be altered to the table of publication.autocreate.mode=filtered: "+
			"drop it or recreate it for %s", cfg.PublicationName, cfg.Table)
	}
	var tableExists bool
	if err := s.db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`,
		pgx.Identifier{cfg.Table.Schema, cfg.Table.Name}.Sanitize()).Scan(&tableExists); err != nil {
		return dbError("check table "+cfg.Table.String(), err)
	}
	if !tableExists {
		return permanent("table %s does not exist: no table for the filtered publication %s", cfg.Table, cfg.PublicationName)
	}
	name, table := pgx.Identifier{cfg.PublicationName}.Sanitize(), pgx.Identifier{cfg.Table.Schema, cfg.Table.Name}.Sanitize()
	doing := "update publication " + cfg.PublicationName
	stmt := fmt.Sprintf(`ALTER PUBLICATION %s SET TABLE %s`, name, table)
	if !exists {
		doing, stmt = "create publication "+cfg.PublicationName, fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE %s`, name, table)
	}
	_, err = s.db.ExecContext(ctx, stmt)
	var pgErr *pgconn.PgError
	if !exists && errors.As(err, &pgErr) && pgErr.Code == "42710" { // created meanwhile: set its tables instead
		doing = "update publication " + cfg.PublicationName
		_, err = s.db.ExecContext(ctx, fmt.Sprintf(`ALTER PUBLICATION %s SET TABLE %s`, name, table))
	}
	if errors.As(err, &pgErr) && pgErr.Code == "42501" { // not the owner, or no CREATE on the database
		return permanent("%w", dbError(doing, err))
	}
	if err != nil {
		return dbError(doing, err)
	}
	s.e.logger.Info("publication set up for publication.autocreate.mode=filtered", "publication", cfg.PublicationName,
		"table", cfg.Table.String(), "statement", stmt)
	return nil
}

func (s *session) startReplication(ctx context.Context) error {
	cfg := s.e.cfg
	err := pglogrepl.StartReplication(ctx, s.conn, cfg.SlotName, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '1'",
			"publication_names " + quoteLiteral(cfg.PublicationName),
			"messages 'true'",
		},
	})
	if err != nil {
		return dbError("start replication from slot "+cfg.SlotName, err)
	}
	return nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
