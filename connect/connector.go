package connect

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

//go:embed outbox-connector.json
var outboxConnectorJSON []byte

// OutboxConnector returns the shipped connector, outbox-connector.json: the
// one configuration both Debezium and the embedded engine run.
func OutboxConnector() (CreateRequest, error) {
	var req CreateRequest
	if err := json.Unmarshal(outboxConnectorJSON, &req); err != nil {
		return CreateRequest{}, fmt.Errorf("read outbox-connector.json: %w", err)
	}
	return req, nil
}

// DatabaseEnv returns the OUTBOX_DB_* values that outbox-connector.json
// references for the database at a postgres:// URL.
func DatabaseEnv(databaseURL string) (map[string]string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, errors.New("the database URL is not a postgres:// URL") // not quoted: it may hold a password
	}
	password, _ := u.User.Password()
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	return map[string]string{
		"OUTBOX_DB_HOST":     u.Hostname(),
		"OUTBOX_DB_PORT":     port,
		"OUTBOX_DB_USER":     u.User.Username(),
		"OUTBOX_DB_PASSWORD": password,
		"OUTBOX_DB_NAME":     strings.TrimPrefix(u.Path, "/"),
	}, nil
}
