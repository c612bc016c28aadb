// Package basicauth is the HTTP Basic authentication of the operator
// endpoints (the embedded engine's Kafka Connect REST API and the platform
// mock's): credentials files in the format of Kafka Connect's
// BasicAuthSecurityRestExtension (PropertyFileLoginModule: a Java
// properties file of `user: password` or `user=password` lines), and a
// constant-time check of a user and password against them.
package basicauth

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// ErrNoCredentials is the error of a credentials file without any user.
// (Kafka Connect's PropertyFileLoginModule lets everybody in then; this
// package refuses such a file instead.)
var ErrNoCredentials = errors.New("no credentials in the file")

// User is one line of a credentials file.
type User struct {
	Name     string
	Password string
}

// Credentials are the users allowed in. The zero value allows nobody. It is
// safe for concurrent use.
type Credentials struct {
	entries []entry
}

type entry struct {
	user, pass [sha256.Size]byte
}

// New returns the credentials of users.
func New(users ...User) *Credentials {
	c := &Credentials{entries: make([]entry, 0, len(users))}
	for _, u := range users {
		c.entries = append(c.entries, entry{user: sha256.Sum256([]byte(u.Name)), pass: sha256.Sum256([]byte(u.Password))})
	}
	return c
}

// Load reads the credentials file at path (see Parse).
func Load(path string) (*Credentials, error) {
	users, err := ParseFile(path)
	if err != nil {
		return nil, err
	}
	return New(users...), nil
}

// ParseFile reads the users of the credentials file at path (see Parse).
func ParseFile(path string) ([]User, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read credentials file: %w", err)
	}
	defer f.Close()
	users, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	return users, nil
}

// Verify reports whether user and password are those of one of the users.
// It takes the same time whichever user is asked for and whether it exists:
// it compares SHA-256 digests with every entry in constant time.
func (c *Credentials) Verify(user, password string) bool {
	u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	ok := 0
	for _, e := range c.entries {
		ok |= subtle.ConstantTimeCompare(u[:], e.user[:]) & subtle.ConstantTimeCompare(p[:], e.pass[:])
	}
	return ok == 1
}

// Challenge is the WWW-Authenticate value of a 401 for realm.
func Challenge(realm string) string { return "Basic realm=" + strconv.Quote(realm) }

// Handler serves next to requests that carry the Basic credentials of one of
// c's users. Other requests get deny's answer, with the status 401 and
// WWW-Authenticate set before deny runs (deny writes the body; nil writes
// a plain-text one).
func (c *Credentials) Handler(realm string, deny func(w http.ResponseWriter, r *http.Request), next http.Handler) http.Handler {
	challenge := Challenge(realm)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); ok && c.Verify(user, pass) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", challenge)
		if deny == nil {
			http.Error(w, "401 Unauthorized: missing or wrong credentials", http.StatusUnauthorized)
			return
		}
		deny(w, r)
	})
}

// Parse reads a credentials file in the format of Kafka Connect's
// PropertyFileLoginModule, a java.util.Properties file: each entry is
// `user: password`, `user=password` or `user password`, with whitespace
// around the separator ignored; lines whose first non-blank character is #
// or ! are comments; a line ending in an odd number of backslashes continues
// on the next; backslash escapes (\t, \n, \r, \f, \uXXXX, \x for x) work in
// names and passwords. A later entry of a user replaces an earlier one. An
// entry with an empty name or password is an error (naming the line, never
// its content), and so is a file without entries (ErrNoCredentials).
func Parse(r io.Reader) ([]User, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var users []User
	index := map[string]int{}
	lineNo, logical, start := 0, "", 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimLeft(sc.Text(), " \t\f")
		if logical == "" {
			start = lineNo
			if line == "" || line[0] == '#' || line[0] == '!' {
				continue
			}
		}
		if trailingBackslashes(line)%2 == 1 {
			logical += line[:len(line)-1]
			continue
		}
		logical += line
		u, err := parseEntry(logical)
		logical = ""
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", start, err)
		}
		if i, ok := index[u.Name]; ok {
			users[i] = u
			continue
		}
		index[u.Name] = len(users)
		users = append(users, u)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if logical != "" {
		u, err := parseEntry(logical)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", start, err)
		}
		if i, ok := index[u.Name]; ok {
			users[i] = u
		} else {
			users = append(users, u)
		}
	}
	if len(users) == 0 {
		return nil, ErrNoCredentials
	}
	return users, nil
}

func trailingBackslashes(s string) int {
	n := 0
	for i := len(s) - 1; i >= 0 && s[i] == '\\'; i-- {
		n++
	}
	return n
}

// parseEntry splits one logical line into name and password.
func parseEntry(line string) (User, error) {
	end := len(line)
	for i := 0; i < len(line); i++ {
		if line[i] == '\\' {
			i++
			continue
		}
		if strings.IndexByte("=: \t\f", line[i]) >= 0 {
			end = i
			break
		}
	}
	rawName, rest := line[:end], line[end:]
	rest = strings.TrimLeft(rest, " \t\f")
	if rest != "" && (rest[0] == '=' || rest[0] == ':') {
		rest = strings.TrimLeft(rest[1:], " \t\f")
	}
	name, err := unescape(rawName)
	if err != nil {
		return User{}, err
	}
	pass, err := unescape(rest)
	if err != nil {
		return User{}, err
	}
	switch {
	case name == "":
		return User{}, errors.New("an entry without a user name")
	case pass == "":
		return User{}, errors.New("an entry without a password")
	}
	return User{Name: name, Password: pass}, nil
}

// unescape resolves the backslash escapes of a Java properties key or value.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			break
		}
		switch s[i] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if i+5 > len(s) {
				return "", errors.New(`a malformed \uXXXX escape`)
			}
			n, err := strconv.ParseUint(s[i+1:i+5], 16, 16)
			if err != nil {
				return "", errors.New(`a malformed \uXXXX escape`)
			}
			b.WriteRune(rune(n))
			i += 4
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), nil
}

// escape writes s as a Java properties key or value that Parse reads back.
func escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\' || r == '=' || r == ':' || r == '#' || r == '!':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == ' ':
			b.WriteString(`\ `)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\f':
			b.WriteString(`\f`)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// RandomPassword is 32 hex digits from crypto/rand (128 bits).
func RandomPassword() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// WriteFile creates a credentials file at path, readable by its owner only
// (0600), with one `user: password` line per user. It fails if the file
// exists.
func WriteFile(path string, users ...User) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create credentials file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("write credentials file: %w", cerr)
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	var b strings.Builder
	b.WriteString("# Kafka Connect BasicAuthSecurityRestExtension credentials (PropertyFileLoginModule): user: password\n")
	for _, u := range users {
		fmt.Fprintf(&b, "%s: %s\n", escape(u.Name), escape(u.Password))
	}
	if _, err := f.WriteString(b.String()); err != nil {
		return fmt.Errorf("write credentials file: %w", err)
	}
	return nil
}
