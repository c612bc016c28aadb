package kafkaclient

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// EmbeddedMechanism is the SASL mechanism of the embedded cluster that
// `dev` and `outboxpay kafka` run.
const EmbeddedMechanism = ScramSHA512

// ReadUsers reads a users file: one "name: password" line per user (the
// format of Kafka's PropertyFileLoginModule); blank lines and lines starting
// with # are skipped. Its errors never contain a password.
func ReadUsers(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read kafka users: %w", err)
	}
	users := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, pw, ok := strings.Cut(line, ":")
		name, pw = strings.TrimSpace(name), strings.TrimSpace(pw)
		if !ok || name == "" || pw == "" {
			return nil, fmt.Errorf("read kafka users: %s line %d: want \"name: password\"", path, n)
		}
		users[name] = pw
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kafka users: %w", err)
	}
	return users, nil
}

// EnsureUsers returns the users of the file at path, after adding a random
// password for each of names the file lacks (creating the file, mode 0600,
// if need be). Passwords already there are kept, so clients keep working
// across restarts.
func EnsureUsers(path string, names ...string) (map[string]string, error) {
	users, err := ReadUsers(path)
	if errors.Is(err, fs.ErrNotExist) {
		users, err = map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	changed := false
	for _, n := range names {
		if _, ok := users[n]; ok {
			continue
		}
		buf := make([]byte, 24)
		if _, err := rand.Read(buf); err != nil {
			return nil, fmt.Errorf("generate kafka password: %w", err)
		}
		users[n] = base64.RawURLEncoding.EncodeToString(buf)
		changed = true
	}
	if !changed {
		return users, nil
	}
	var b strings.Builder
	b.WriteString("# Kafka SASL/SCRAM users of the embedded cluster: name: password\n")
	for _, n := range slices.Sorted(maps.Keys(users)) {
		fmt.Fprintf(&b, "%s: %s\n", n, users[n])
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("write kafka users: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("write kafka users: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("write kafka users: %w", err)
	}
	return users, nil
}
