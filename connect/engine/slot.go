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

// ensurePublication checks that the publication exists and covers the outbox
// table, creating it (inserts only) when publication.autocreate.mode=filtered.
func (s *session) ensurePublication(ctx context.Context) error {
	cfg := s.e.cfg
	var covers bool
	err := s.db.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)`,
		cfg.PublicationName, cfg.Table.Schema, cfg.Table.Name).Scan(&covers)
	if err != nil {
		return dbError("check publication "+cfg.PublicationName, err)
	}
	if covers {
		return nil
	}
	var exists bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`,
		cfg.PublicationName).Scan(&exists); err != nil {
		return dbError("check publication "+cfg.PublicationName, err)
	}
	switch {
	case exists:
		return permanent("publication %s does not cover table %s", cfg.PublicationName, cfg.Table)
	case !cfg.CreatePublication:
		return permanent("publication %s does not exist and publication.autocreate.mode is disabled", cfg.PublicationName)
	}
	_, err = s.db.ExecContext(ctx, fmt.Sprintf(`CREATE PUBLICATION %s FOR TABLE %s WITH (publish = 'insert')`,
		pgx.Identifier{cfg.PublicationName}.Sanitize(), pgx.Identifier{cfg.Table.Schema, cfg.Table.Name}.Sanitize()))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" { // created meanwhile
		err = nil
	}
	if err != nil {
		return dbError("create publication "+cfg.PublicationName, err)
	}
	s.e.logger.Info("publication created", "publication", cfg.PublicationName, "table", cfg.Table.String())
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
