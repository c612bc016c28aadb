package main

import (
	"context"
	"fmt"
	"time"
)

// superuser is the role of the bench's own sessions (pgcluster's superuser).
const superuser = "postgres"

// statement is one row of pg_stat_statements: a normalized statement of one
// role, its calls and execution time since the last reset.
type statement struct {
	role  string
	query string // whitespace collapsed
	calls int64
	total time.Duration // total_exec_time
	mean  time.Duration // mean_exec_time
}

// statementStats are pg_stat_statements over the rates: the product's
// statements of dbName by total execution time, and the time of the
// bench's own (the superuser's), left out.
type statementStats struct {
	top      []statement // the product's, most total time first
	others   int         // the product's statements not in top
	product  time.Duration
	bench    time.Duration
	payments int // 2xx payments of the rates
}

// resetStatements empties pg_stat_statements.
func (s *system) resetStatements(ctx context.Context) error {
	if _, err := s.stats.ExecContext(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
		return fmt.Errorf("reset pg_stat_statements: %w", err)
	}
	return nil
}

// statements reads pg_stat_statements of dbName: the n statements with the
// most total execution time, not counting the bench's own.
func (s *system) statements(ctx context.Context, n int) (statementStats, error) {
	rows, err := s.stats.QueryContext(ctx, `
		SELECT r.rolname, regexp_replace(st.query, '\s+', ' ', 'g'), st.calls, st.total_exec_time, st.mean_exec_time
		FROM pg_stat_statements st
		JOIN pg_roles r ON r.oid = st.userid
		JOIN pg_database d ON d.oid = st.dbid
		WHERE d.datname = $1
		ORDER BY st.total_exec_time DESC`, dbName)
	if err != nil {
		return statementStats{}, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	defer rows.Close()
	var st statementStats
	for rows.Next() {
		var row statement
		var total, mean float64 // ms
		if err := rows.Scan(&row.role, &row.query, &row.calls, &total, &mean); err != nil {
			return statementStats{}, fmt.Errorf("read pg_stat_statements: %w", err)
		}
		row.total, row.mean = msDuration(total), msDuration(mean)
		if row.role == superuser {
			st.bench += row.total
			continue
		}
		st.product += row.total
		if len(st.top) < n {
			st.top = append(st.top, row)
		} else {
			st.others++
		}
	}
	if err := rows.Err(); err != nil {
		return statementStats{}, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	return st, nil
}

func msDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }
