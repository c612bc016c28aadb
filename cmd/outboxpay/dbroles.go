package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"

	"github.com/outboxpay/outboxpay/migrations"
)

// devRolesFile, under DATA_DIR, keeps the passwords `dev` gives the
// database roles, so that a restart reuses them.
const devRolesFile = "db-roles.json"

// roleURLs are the URLs of one database as each component's role.
type roleURLs struct {
	// API is the HTTP API's (outboxpay_api).
	API string
	// Worker is the consumers', the reconciler's and the lag exporter's
	// (outboxpay_worker).
	Worker string
	// CDC is the connector's and the embedded worker's config store's
	// (outboxpay_cdc).
	CDC string
	// Operator is the operator console's (outboxpay_operator).
	Operator string
}

// rolePasswords returns the role passwords of DB_API_PASSWORD,
// DB_WORKER_PASSWORD, DB_CDC_PASSWORD and DB_OPERATOR_PASSWORD, leaving out
// those unset.
func (c config) rolePasswords() map[string]string {
	pw := map[string]string{}
	for role, v := range map[string]string{
		migrations.RoleAPI: c.DBAPIPassword, migrations.RoleWorker: c.DBWorkerPassword, migrations.RoleCDC: c.DBCDCPassword,
		migrations.RoleOperator: c.DBOperatorPassword,
	} {
		if v != "" {
			pw[role] = v
		}
	}
	return pw
}

// devRoles gives the migrations' roles LOGIN and the passwords kept in
// dataDir/db-roles.json (made on the first run, mode 0600) through admin, a
// superuser's connection to the database of adminURL, and returns that
// database's URL as each role.
func devRoles(ctx context.Context, admin *sql.DB, adminURL, dataDir string, logger *slog.Logger) (roleURLs, error) {
	path := filepath.Join(dataDir, devRolesFile)
	passwords, err := loadOrCreatePasswords(path)
	if err != nil {
		return roleURLs{}, err
	}
	if err := migrations.SetRolePasswords(ctx, admin, passwords); err != nil {
		return roleURLs{}, err
	}
	logger.Info("database roles ready", "roles", migrations.Roles(), "passwords", path)
	var urls roleURLs
	for role, dst := range map[string]*string{
		migrations.RoleAPI: &urls.API, migrations.RoleWorker: &urls.Worker, migrations.RoleCDC: &urls.CDC,
		migrations.RoleOperator: &urls.Operator,
	} {
		if *dst, err = withUser(adminURL, role, passwords[role]); err != nil {
			return roleURLs{}, err
		}
	}
	return urls, nil
}

// loadOrCreatePasswords reads the role passwords kept at path, or makes
// random ones and keeps them there (mode 0600) when the file does not exist.
// A role the file lacks (one a newer migration added) gets a random
// password, and the file is rewritten with it.
func loadOrCreatePasswords(path string) (map[string]string, error) {
	pw := map[string]string{}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &pw); err != nil || pw == nil {
			return nil, fmt.Errorf("read role passwords %s: not a JSON object of role passwords", path)
		}
		for role, v := range pw {
			if !slices.Contains(migrations.Roles(), role) {
				return nil, fmt.Errorf("read role passwords %s: %q: %w", path, role, migrations.ErrUnknownRole)
			}
			if v == "" {
				return nil, fmt.Errorf("read role passwords %s: no password for %s", path, role)
			}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read role passwords: %w", err)
	}
	missing := false
	for _, role := range migrations.Roles() {
		if _, ok := pw[role]; ok {
			continue
		}
		missing = true
		if pw[role], err = migrations.NewPassword(); err != nil {
			return nil, err
		}
	}
	if !missing {
		return pw, nil
	}
	data, err = json.MarshalIndent(pw, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("write role passwords: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("write role passwords: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("write role passwords: %w", err)
	}
	return pw, nil
}

// withUser returns dbURL with user and password in place of its own.
func withUser(dbURL, user, password string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", errors.New("database URL does not parse") // the error would quote the URL, password included
	}
	u.User = url.UserPassword(user, password)
	return u.String(), nil
}
