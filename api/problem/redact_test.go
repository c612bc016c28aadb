package problem

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestRedact(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp",
		Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40915},
		Err:  os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"plain", errors.New("read balance of user 3: boom"), "read balance of user 3: boom"},
		{"dial refused", fmt.Errorf("begin: %w", refused), "begin: database unreachable: dial: connect: connection refused"},
		{"pgx connect", errors.New("failed to connect to `user=api database=x`: 10.0.0.7:5432 (db): dial error: timeout"),
			"failed to connect to `user=api database=x`: <addr> (db): dial error: timeout"},
		{"ipv6", errors.New("read tcp [::1]:5432: reset"), "read tcp <addr>: reset"},
		{"dsn host", errors.New("connect host=db.internal port=5432: refused"), "connect <addr> port=5432: refused"},
		{"field names stay", errors.New("field items[].quantity"), "field items[].quantity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Redact(c.err, "database"); got != c.want {
				t.Errorf("Redact(%v) = %q, want %q", c.err, got, c.want)
			}
		})
	}
}
