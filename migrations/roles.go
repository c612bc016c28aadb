package migrations

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lib/pq"
)

// The database roles the migrations create, one per component. They are
// NOLOGIN until [SetRolePasswords] gives them a password; 00004_roles.sql
// and 00011_operator_console.sql list what each may do.
const (
	// RoleAPI is the HTTP API's role: DML on the tables its requests touch.
	RoleAPI = "outboxpay_api"
	// RoleWorker is the role of the consumer groups, the reconciler, the lag
	// exporter and replay.
	RoleWorker = "outboxpay_worker"
	// RoleCDC is the CDC connector's role: REPLICATION, SELECT on the outbox
	// and the embedded worker's config store.
	RoleCDC = "outboxpay_cdc"
	// RoleOperator is the operator console's role: it reads the outbox and
	// the inbox, changes an outbox row's status and delivery columns, and
	// appends to the operator's audit and re-drive tables.
	RoleOperator = "outboxpay_operator"
)

// Roles returns the roles the migrations create.
func Roles() []string { return []string{RoleAPI, RoleWorker, RoleCDC, RoleOperator} }

var (
	// ErrUnknownRole is returned by [SetRolePasswords] for a role that the
	// migrations do not create.
	ErrUnknownRole = errors.New("not a role of the migrations")
	// ErrEmptyPassword is returned by [SetRolePasswords] for an empty password.
	ErrEmptyPassword = errors.New("empty password")
	// ErrPasswordCharacters is returned by [SetRolePasswords] for a password
	// that is not printable ASCII: its SCRAM verifier, made here without
	// SASLprep, would not match what the server computes at login.
	ErrPasswordCharacters = errors.New("password must be printable ASCII")
)

// scramIterations is PostgreSQL's default scram_iterations.
const scramIterations = 4096

// SetRolePasswords gives each role of passwords (keys among [Roles]) LOGIN
// and its password, in one transaction; the roles must exist ([Up] creates
// them). The password reaches the server only as a SCRAM-SHA-256 verifier,
// so it appears in no server log or statistics view, and errors never
// contain it. The caller needs CREATEROLE (the migrating superuser has it).
// Roles not in passwords are left alone.
func SetRolePasswords(ctx context.Context, db *sql.DB, passwords map[string]string) error {
	roles := make([]string, 0, len(passwords))
	for role, pw := range passwords {
		if !slices.Contains(Roles(), role) {
			return fmt.Errorf("set password of %q: %w", role, ErrUnknownRole)
		}
		if pw == "" {
			return fmt.Errorf("set password of %s: %w", role, ErrEmptyPassword)
		}
		if strings.ContainsFunc(pw, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			return fmt.Errorf("set password of %s: %w", role, ErrPasswordCharacters)
		}
		roles = append(roles, role)
	}
	slices.Sort(roles) // a fixed order: concurrent callers cannot deadlock
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set role passwords: %w", err)
	}
	defer tx.Rollback()
	for _, role := range roles {
		verifier, err := scramVerifier(passwords[role])
		if err != nil {
			return fmt.Errorf("set password of %s: %w", role, err)
		}
		stmt := "ALTER ROLE " + pq.QuoteIdentifier(role) + " WITH LOGIN PASSWORD " + pq.QuoteLiteral(verifier)
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("set password of %s: %w", role, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("set role passwords: %w", err)
	}
	return nil
}

// scramVerifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for
// password (RFC 5802, RFC 7677), with a random salt:
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>. PostgreSQL
// normalizes passwords with SASLprep; this one is used as given, which is
// the same for the ASCII passwords generated here.
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("scram salt: %w", err)
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("scram key: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// NewPassword returns a random password for a role: 32 characters from
// [0-9a-f], safe in URLs and in the verifier without SASLprep.
func NewPassword() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	return hex.EncodeToString(b), nil
}
