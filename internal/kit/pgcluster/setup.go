package pgcluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/lib/pq"
)

// confMarker starts the block of settings that setup appends to
// postgresql.conf; its presence means the block is already there.
const confMarker = "# Added by pgcluster (private development/test cluster)."

// staticConf holds the settings that do not change from one start to the
// next. Port and durability are passed on the command line at each start
// instead, so that one data dir can be started either way.
const staticConf = "\n" + confMarker + `
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
wal_level = logical
max_replication_slots = 32
max_wal_senders = 32
max_connections = 300
wal_sender_timeout = '60s'
`

// hbaReplication lets replication connections in from 127.0.0.1, with a
// password.
const hbaReplication = "\n# Added by pgcluster.\nhost    replication     postgres        127.0.0.1/32            scram-sha-256\n"

// passwordFile, in the data dir (mode 0600), holds the superuser's password.
const passwordFile = "pgcluster-superuser.password"

// authMethod is how every connection authenticates.
const authMethod = "scram-sha-256"

// account is the system user that runs initdb and postgres when this
// process runs as root, which PostgreSQL refuses to run as.
type account struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32
	home   string
}

// serverAccount returns the account to run the server as: nil (the current
// user) unless this process runs as root, and then the postgres system user.
func serverAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	const name = "postgres"
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root, which PostgreSQL refuses, and cannot find the %q system user to run it as "+
			"(the postgresql package creates it): %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", name, u.Gid, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("user %s has uid 0: PostgreSQL refuses to run as root", name)
	}
	a := &account{name: name, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("user %s: list groups: %w", name, err)
	}
	for _, g := range gids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("user %s: group id %q: %w", name, g, err)
		}
		a.groups = append(a.groups, uint32(n))
	}
	return a, nil
}

// credential returns the credential for a child process; nil (run as the
// current user) for a nil account.
func (a *account) credential() *syscall.Credential {
	if a == nil {
		return nil
	}
	return &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}
}

// checkTraverse returns an error naming the first folder, from / down to
// dir, that the account may not enter. Only the permission bits are
// consulted: ACLs and the like are left for postgres itself to trip on.
func (a *account) checkTraverse(dir string) error {
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", dir, err)
	}
	var chain []string
	for d := resolved; ; d = filepath.Dir(d) {
		chain = append(chain, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	slices.Reverse(chain)
	for _, d := range chain {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("check access of the %s user: %w", a.name, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			continue
		}
		perm := fi.Mode().Perm()
		var bit fs.FileMode
		switch {
		case st.Uid == a.uid:
			bit = 0o100
		case st.Gid == a.gid || slices.Contains(a.groups, st.Gid):
			bit = 0o010
		default:
			bit = 0o001
		}
		if perm&bit == 0 {
			return fmt.Errorf("the %s user, which runs PostgreSQL because this process runs as root, cannot enter %s "+
				"(mode %s, owner uid %d, gid %d): grant it access (e.g. chmod o+x %s) or put the data dir elsewhere",
				a.name, d, perm, st.Uid, st.Gid, d)
		}
	}
	return nil
}

// chownTree gives dir and everything in it to the account, touching only
// the entries it does not already own.
func (a *account) chownTree(dir string) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == a.uid && st.Gid == a.gid {
			return nil
		}
		return os.Lchown(path, int(a.uid), int(a.gid))
	})
	if err != nil {
		return fmt.Errorf("give %s to the %s user: %w", dir, a.name, err)
	}
	return nil
}

// env returns the environment for initdb and postgres: this process's,
// without the PG* variables (PGDATA, PGPORT, ... must not steer the server)
// and, when running as another user, with that user's HOME, USER and
// LOGNAME.
func (c *Cluster) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PG") {
			continue
		}
		if c.runAs != nil && (name == "HOME" || name == "USER" || name == "LOGNAME") {
			continue
		}
		env = append(env, kv)
	}
	if c.runAs != nil {
		env = append(env, "HOME="+c.runAs.home, "USER="+c.runAs.name, "LOGNAME="+c.runAs.name)
	}
	return env
}

// setup makes the data dir ready to start: creates it, runs initdb when it
// holds no cluster, adds the static settings and creates the log folder.
func (c *Cluster) setup(ctx context.Context) error {
	// Missing ancestors get the usual 0755 so that the postgres user can
	// reach the data dir when we are root; the data dir itself is private.
	if err := os.MkdirAll(filepath.Dir(c.dataDir), 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := os.Mkdir(c.dataDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create data dir: %w", err)
	}
	if c.runAs != nil {
		if err := c.runAs.checkTraverse(filepath.Dir(c.dataDir)); err != nil {
			return fmt.Errorf("data dir %s: %w", c.dataDir, err)
		}
		if err := c.runAs.chownTree(c.dataDir); err != nil {
			return err
		}
	}

	_, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := c.initdb(ctx); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("check data dir: %w", err)
	default:
		if err := c.loadPassword(); err != nil {
			return err
		}
	}

	if err := c.configure(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.logPath), 0o700); err != nil {
		return fmt.Errorf("create log folder: %w", err)
	}
	if c.runAs != nil {
		return c.runAs.chownTree(c.dataDir)
	}
	return nil
}

// initdb creates a cluster in the (empty) data dir, with a new random
// superuser password that it then keeps in the data dir.
func (c *Cluster) initdb(ctx context.Context) error {
	password, err := newPassword()
	if err != nil {
		return err
	}
	// initdb wants the data dir empty: the password goes through a file
	// beside it, readable only by the server's account.
	pwfile, err := os.CreateTemp(filepath.Dir(c.dataDir), ".pgcluster-pwfile-*")
	if err != nil {
		return fmt.Errorf("initdb: password file: %w", err)
	}
	defer os.Remove(pwfile.Name())
	_, err = pwfile.WriteString(password + "\n")
	if err == nil && c.runAs != nil {
		err = pwfile.Chown(int(c.runAs.uid), int(c.runAs.gid))
	}
	if cerr := pwfile.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("initdb: password file: %w", err)
	}
	args := []string{"-D", c.dataDir, "-U", "postgres", "--pwfile", pwfile.Name(),
		"--auth-host=" + authMethod, "--auth-local=" + authMethod, "-E", "UTF8", "--no-locale"}
	if !c.durable {
		args = append(args, "--no-sync")
	}
	cmd := exec.Command(c.bins.initdb, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Dir = c.dataDir
	cmd.Env = c.env()
	// initdb removes what it created when it gets SIGTERM, not SIGKILL.
	cmd.SysProcAttr = sysProcAttr(c.runAs.credential(), syscall.SIGTERM)

	c.logger.Info("creating PostgreSQL cluster", "initdb", c.bins.initdb)
	s, err := spawn(cmd, nil)
	if err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		_ = s.Signal(syscall.SIGTERM)
		<-s.done
		return fmt.Errorf("initdb %s: %w", c.dataDir, ctx.Err())
	}
	if s.waitErr != nil {
		return fmt.Errorf("initdb %s: %w\n%s", c.dataDir, s.waitErr, bytes.TrimSpace(out.Bytes()))
	}
	return c.savePassword(password)
}

// newPassword returns a random password: 32 hex digits, safe in URLs.
func newPassword() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// savePassword keeps the superuser's password in the data dir, readable by
// its owner only.
func (c *Cluster) savePassword(password string) error {
	if err := os.WriteFile(filepath.Join(c.dataDir, passwordFile), []byte(password+"\n"), 0o600); err != nil {
		return fmt.Errorf("save superuser password: %w", err)
	}
	c.password = password
	return nil
}

// loadPassword reads the superuser's password of an existing data dir. A
// data dir made by an earlier version of this package, which trusted every
// connection and set no password, gets a new password and is marked for
// conversion: Start sets it and replaces the trust rules once the server
// runs.
func (c *Cluster) loadPassword() error {
	hba, err := os.ReadFile(filepath.Join(c.dataDir, "pg_hba.conf"))
	if err != nil {
		return fmt.Errorf("read pg_hba.conf: %w", err)
	}
	c.trusting = hasTrustRule(hba)
	data, err := os.ReadFile(filepath.Join(c.dataDir, passwordFile))
	switch {
	case err == nil:
		c.password = strings.TrimSpace(string(data))
		if c.password == "" {
			return fmt.Errorf("%s in %s is empty", passwordFile, c.dataDir)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("read superuser password: %w", err)
	case !c.trusting:
		return fmt.Errorf("data dir %s has no %s and does not trust connections: its superuser password is unknown "+
			"(remove the data dir to start afresh)", c.dataDir, passwordFile)
	}
	password, err := newPassword()
	if err != nil {
		return err
	}
	return c.savePassword(password)
}

// hasTrustRule reports whether a pg_hba.conf lets any connection in without
// authentication.
func hasTrustRule(hba []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(hba))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if f := strings.Fields(line); len(f) > 0 && slices.Contains(f, "trust") {
			return true
		}
	}
	return false
}

// replaceTrustRules rewrites the authentication method of every trust rule
// of a pg_hba.conf to scram-sha-256, keeping everything else as it was.
func replaceTrustRules(hba []byte) []byte {
	lines := strings.SplitAfter(string(hba), "\n")
	for i, l := range lines {
		rule, comment, hasComment := strings.Cut(l, "#")
		f := strings.Fields(rule)
		if !slices.Contains(f, "trust") {
			continue
		}
		for j := range f {
			if f[j] == "trust" {
				f[j] = authMethod
			}
		}
		nl := ""
		if strings.HasSuffix(l, "\n") && !hasComment {
			nl = "\n"
		}
		lines[i] = strings.Join(f, " ")
		if hasComment {
			lines[i] += " #" + comment
		}
		lines[i] += nl
	}
	return []byte(strings.Join(lines, ""))
}

// convertTrust sets the superuser's password on a running server that
// trusts connections (a data dir of an earlier version), then replaces its
// trust rules and has the server reload them.
func (c *Cluster) convertTrust(ctx context.Context) error {
	db, err := sql.Open("postgres", c.URL("postgres")) // trusted: the password is not checked yet
	if err != nil {
		return fmt.Errorf("convert to %s: %w", authMethod, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "ALTER ROLE postgres WITH PASSWORD "+pq.QuoteLiteral(c.password)); err != nil {
		return fmt.Errorf("convert to %s: set superuser password: %w", authMethod, err)
	}
	path := filepath.Join(c.dataDir, "pg_hba.conf")
	hba, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("convert to %s: %w", authMethod, err)
	}
	if err := os.WriteFile(path, replaceTrustRules(hba), 0o600); err != nil {
		return fmt.Errorf("convert to %s: %w", authMethod, err)
	}
	if _, err := db.ExecContext(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("convert to %s: reload pg_hba.conf: %w", authMethod, err)
	}
	c.trusting = false
	c.logger.Info("converted the data dir from trust to " + authMethod + " authentication")
	return nil
}

// configure appends the static settings to postgresql.conf and the
// replication rule to pg_hba.conf, unless they are already there.
func (c *Cluster) configure() error {
	conf := filepath.Join(c.dataDir, "postgresql.conf")
	data, err := os.ReadFile(conf)
	if err != nil {
		return fmt.Errorf("configure cluster: %w", err)
	}
	if !bytes.Contains(data, []byte(confMarker)) {
		if err := appendFile(conf, staticConf); err != nil {
			return fmt.Errorf("configure cluster: %w", err)
		}
	}

	hba := filepath.Join(c.dataDir, "pg_hba.conf")
	data, err = os.ReadFile(hba)
	if err != nil {
		return fmt.Errorf("configure cluster: %w", err)
	}
	if restricted := superuserReplicationOnly(data); !bytes.Equal(restricted, data) {
		if err := os.WriteFile(hba, restricted, 0o600); err != nil {
			return fmt.Errorf("configure cluster: %w", err)
		}
		data = restricted
	}
	if !allowsLocalReplication(data) {
		if err := appendFile(hba, hbaReplication); err != nil {
			return fmt.Errorf("configure cluster: %w", err)
		}
	}
	return nil
}

// superuserReplicationOnly rewrites the rules for physical replication
// connections (database "replication") of all users to the superuser
// only: a role with REPLICATION, such as the CDC connector's, may then
// stream logical changes of its database (whose connections match the
// database's rules) but not take a base backup of the whole cluster.
func superuserReplicationOnly(hba []byte) []byte {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(hba))
	for sc.Scan() {
		line := sc.Text()
		rule, comment, hasComment := strings.Cut(line, "#")
		f := strings.Fields(rule)
		if len(f) >= 4 && (f[0] == "local" || strings.HasPrefix(f[0], "host")) && f[1] == "replication" && f[2] == "all" {
			f[2] = "postgres"
			line = strings.Join(f, " ")
			if hasComment {
				line += " #" + comment
			}
		}
		out.WriteString(line + "\n")
	}
	return out.Bytes()
}

// allowsLocalReplication reports whether a pg_hba.conf has a rule for
// physical replication connections from 127.0.0.1. initdb writes one.
func allowsLocalReplication(hba []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(hba))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == "host" && f[1] == "replication" && f[3] == "127.0.0.1/32" {
			return true
		}
	}
	return false
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// openLog opens the server log for appending and returns it with its
// current size, where the output of this start begins.
func (c *Cluster) openLog() (*os.File, int64, error) {
	f, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("open server log: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && c.runAs != nil {
		err = f.Chown(int(c.runAs.uid), int(c.runAs.gid))
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("open server log: %w", err)
	}
	return f, fi.Size(), nil
}

// readLog returns the server log from offset on, at most the last limit
// bytes of it.
func (c *Cluster) readLog(offset, limit int64) ([]byte, error) {
	f, err := os.Open(c.logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	offset = min(max(offset, fi.Size()-limit, 0), fi.Size())
	return io.ReadAll(io.NewSectionReader(f, offset, fi.Size()-offset))
}

// withLogTail adds the last lines of the server log to a startup error.
func (c *Cluster) withLogTail(err error) error {
	const lines = 20
	data, rerr := c.readLog(0, 64<<10)
	if rerr != nil {
		return fmt.Errorf("%w (server log %s: %v)", err, c.logPath, rerr)
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return fmt.Errorf("%w; last lines of %s:\n%s", err, c.logPath, strings.Join(all, "\n"))
}

// sameDir reports whether a and b name the same existing directory.
func sameDir(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(fa, fb)
}
