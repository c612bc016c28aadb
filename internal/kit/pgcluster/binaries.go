package pgcluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// debianLibDir is where Debian and Ubuntu install the server binaries of
// each PostgreSQL major version, in debianLibDir/VERSION/bin. They are not
// on PATH there.
const debianLibDir = "/usr/lib/postgresql"

// binaries are the paths of the PostgreSQL programs a cluster needs.
type binaries struct {
	initdb   string
	postgres string
}

// findBinaries locates initdb and postgres: on PATH (through lookPath) when
// both are there, else in the highest version under libDir/*/bin that has
// both.
func findBinaries(lookPath func(file string) (string, error), libDir string) (binaries, error) {
	initdb, errInitdb := lookPath("initdb")
	postgres, errPostgres := lookPath("postgres")
	if errInitdb == nil && errPostgres == nil {
		return binaries{initdb: initdb, postgres: postgres}, nil
	}

	entries, err := os.ReadDir(libDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return binaries{}, fmt.Errorf("find PostgreSQL binaries: %w", err)
	}
	var (
		best    binaries
		bestVer []int
	)
	for _, e := range entries {
		ver, ok := parseVersion(e.Name())
		if !ok {
			continue
		}
		bin := filepath.Join(libDir, e.Name(), "bin")
		b := binaries{initdb: filepath.Join(bin, "initdb"), postgres: filepath.Join(bin, "postgres")}
		if !isExecutable(b.initdb) || !isExecutable(b.postgres) {
			continue
		}
		if bestVer == nil || slices.Compare(ver, bestVer) > 0 {
			best, bestVer = b, ver
		}
	}
	if bestVer == nil {
		return binaries{}, fmt.Errorf("PostgreSQL server binaries (initdb, postgres) not found on PATH nor in %s/*/bin: "+
			"install the postgresql package (e.g. apt-get install -y postgresql)", libDir)
	}
	return best, nil
}

// parseVersion parses a PostgreSQL version folder name such as "15" or
// "9.6" into its numeric components.
func parseVersion(name string) ([]int, bool) {
	var ver []int
	for part := range strings.SplitSeq(name, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, false
		}
		ver = append(ver, n)
	}
	return ver, true
}

// isExecutable reports whether path is a regular file with an execute bit.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// BinDir is the folder of the PostgreSQL programs Start runs, found as
// Start finds them (initdb and postgres on PATH, a symlink followed, else
// the highest version under /usr/lib/postgresql/*/bin): the folder that
// holds the client programs of the same installation (pgbench,
// pg_recvlogical, ...).
func BinDir() (string, error) {
	b, err := findBinaries(exec.LookPath, debianLibDir)
	if err != nil {
		return "", err
	}
	initdb := b.initdb
	if real, err := filepath.EvalSymlinks(initdb); err == nil {
		initdb = real
	}
	return filepath.Dir(initdb), nil
}
