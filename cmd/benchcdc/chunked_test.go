package main

import (
	"net"
	"testing"
	"time"
)

// TestChunkedConnPausesWhenDrained checks the reader lets the socket fill:
// a read that came back short (the socket was empty) makes the next read
// wait chunkPause, and a read that filled the buffer does not.
func TestChunkedConnPausesWhenDrained(t *testing.T) {
	server, client := net.Pipe()
	defer server.Close()
	c := &chunkedConn{Conn: client}
	defer c.Close()
	go func() {
		for _, chunk := range [][]byte{[]byte("ab"), []byte("cd"), []byte("ef")} {
			if _, err := server.Write(chunk); err != nil {
				return
			}
		}
	}()

	buf := make([]byte, 2)
	if n, err := c.Read(buf); err != nil || n != 2 {
		t.Fatalf("first read: %d bytes, %v", n, err)
	}
	if c.drained {
		t.Fatal("a read that filled the buffer counts as drained")
	}
	big := make([]byte, 8)
	if n, err := c.Read(big); err != nil || n != 2 {
		t.Fatalf("second read: %d bytes, %v", n, err)
	}
	if !c.drained {
		t.Fatal("a short read does not count as drained")
	}
	began := time.Now()
	if n, err := c.Read(big); err != nil || n != 2 || string(big[:n]) != "ef" {
		t.Fatalf("third read: %q, %v", big[:n], err)
	}
	if waited := time.Since(began); waited < chunkPause {
		t.Errorf("the read after a drained one returned after %v, want at least %v", waited, chunkPause)
	}
}
