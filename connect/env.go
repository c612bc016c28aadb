package connect

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
)

// DefaultEnvAllowlistPattern is the default of CONNECT_ENV_ALLOWLIST_PATTERN:
// the variables outbox-connector.json references, password included.
const DefaultEnvAllowlistPattern = `OUTBOX_DB_[A-Z0-9_]*`

// CompileEnvAllowlist compiles an allow-list pattern for ${env:NAME}
// references, as Kafka's config.providers.env.param.allowlist.pattern: a
// name is allowed when the pattern matches all of it.
func CompileEnvAllowlist(pattern string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return nil, fmt.Errorf("compile ${env:...} allow-list pattern: %w", err)
	}
	return re, nil
}

// Env resolves the ${env:NAME} references of connector configs, as Kafka
// Connect's EnvVarConfigProvider with an allow-list does.
type Env struct {
	// Lookup returns a variable's value and whether it is set.
	Lookup func(string) (string, bool)
	// Allow is the allow-list (see CompileEnvAllowlist); a name it does not
	// match is refused without being looked up. nil allows no name.
	Allow *regexp.Regexp
}

var envRef = regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}`)

// envKeys are the keys whose values may hold ${env:NAME} references: where
// to connect, and as whom. A resolved value elsewhere would end up in slot,
// publication or topic names, the WAL or log lines.
var envKeys = map[string]bool{
	"database.hostname": true,
	"database.port":     true,
	"database.user":     true,
	"database.password": true,
	"database.dbname":   true,
}

// HasEnvRef reports whether v holds an ${env:NAME} reference.
func HasEnvRef(v string) bool { return envRef.MatchString(v) }

// ResolveEnv replaces the ${env:NAME} references in the values of raw and
// returns a new map. References are allowed only in the database.hostname,
// .port, .user, .password and .dbname keys; one elsewhere is an error naming
// the key. A name outside the allow-list is an error naming the key that
// says the same whether the variable is set or not; an allowed name that is
// unset is an error naming the key. No message holds a value.
func (e Env) ResolveEnv(raw map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(raw))
	var errs ConfigError
	for k, v := range raw {
		if !envKeys[k] && HasEnvRef(v) {
			errs = append(errs, FieldError{Key: k, Message: "${env:...} is allowed only in database.hostname, database.port, database.user, database.password and database.dbname"})
			out[k] = v
			continue
		}
		out[k] = envRef.ReplaceAllStringFunc(v, func(ref string) string {
			name := envRef.FindStringSubmatch(ref)[1]
			if e.Allow == nil || !e.Allow.MatchString(name) {
				errs = append(errs, FieldError{Key: k, Message: fmt.Sprintf(
					"${env:%s} is not allowed: ${env:...} resolves only names matching the worker's allow-list (CONNECT_ENV_ALLOWLIST_PATTERN)", name)})
				return ""
			}
			val, ok := e.Lookup(name)
			if !ok {
				errs = append(errs, FieldError{Key: k, Message: fmt.Sprintf("environment variable %s is not set", name)})
			}
			return val
		})
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Key < errs[j].Key })
		return nil, errs
	}
	return out, nil
}

// ParseConfig resolves the ${env:...} references of raw and validates the
// result as connect.ParseConfig does, except that a message about a key
// whose value holds a reference shows the reference, never what it
// resolved to.
func (e Env) ParseConfig(raw map[string]string) (Config, error) {
	resolved, err := e.ResolveEnv(raw)
	if err != nil {
		return Config{}, err
	}
	return parseConfig(resolved, func(k string) string {
		if HasEnvRef(raw[k]) {
			return "the value of " + strconv.Quote(raw[k])
		}
		return strconv.Quote(raw[k])
	})
}
