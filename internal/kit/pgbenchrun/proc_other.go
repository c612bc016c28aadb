//go:build !linux

package pgbenchrun

import "syscall"

// sysProcAttr puts pgbench in its own process group (a Ctrl-C reaches this
// process, which stops it).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
