package pgbenchrun

import "syscall"

// sysProcAttr puts pgbench in its own process group (a Ctrl-C reaches this
// process, which stops it) and has the kernel kill it if this process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
