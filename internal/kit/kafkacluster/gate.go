package kafkacluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
)

// gate sits between kfake and its listeners, so that the cluster can be
// taken off the network without losing its state: offline, the listeners
// are closed (clients get "connection refused") and every accepted
// connection is dropped; online again, the listeners reopen on the same
// addresses. kfake's accept loop never sees the outage: Accept blocks until
// the gate is online again.
type gate struct {
	logger *slog.Logger

	mu        sync.Mutex
	offline   bool
	online    chan struct{} // closed when online; replaced on going offline
	listeners map[*gatedListener]struct{}
	conns     map[*gatedConn]struct{}
}

func newGate(logger *slog.Logger) *gate {
	online := make(chan struct{})
	close(online)
	return &gate{
		logger:    logger,
		online:    online,
		listeners: make(map[*gatedListener]struct{}),
		conns:     make(map[*gatedConn]struct{}),
	}
}

// listen is kfake's ListenFn.
func (g *gate) listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	l := &gatedListener{g: g, network: network, addr: ln.Addr(), ln: ln, done: make(chan struct{})}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.offline {
		// Bound once to fix the port, then refused until online.
		_ = ln.Close()
		l.ln = nil
	}
	g.listeners[l] = struct{}{}
	return l, nil
}

// setOffline takes the listeners and connections down, or brings the
// listeners back up on their addresses. It fails when an address cannot be
// listened on again; that listener's Accept then retries once and fails.
func (g *gate) setOffline(offline bool) error {
	g.mu.Lock()
	if offline == g.offline {
		g.mu.Unlock()
		return nil
	}
	g.offline = offline
	if !offline {
		defer g.mu.Unlock()
		var errs []error
		for l := range g.listeners {
			if l.ln != nil {
				continue
			}
			ln, err := net.Listen(l.network, l.addr.String())
			if err != nil {
				errs = append(errs, fmt.Errorf("kafkacluster: listen again on %s: %w", l.addr, err))
				continue
			}
			l.ln = ln
		}
		close(g.online)
		return errors.Join(errs...)
	}
	g.online = make(chan struct{})
	for l := range g.listeners {
		if l.ln != nil {
			_ = l.ln.Close()
			l.ln = nil
		}
	}
	conns := make([]*gatedConn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return nil
}

// gatedListener is a listener whose socket the gate can close and reopen.
type gatedListener struct {
	g       *gate
	network string
	addr    net.Addr
	done    chan struct{} // closed by Close

	// Guarded by g.mu.
	ln     net.Listener // nil while offline
	closed bool
}

// Accept waits for a connection, across outages of the gate. It fails only
// once the listener is closed, or when it cannot listen again after an
// outage.
func (l *gatedListener) Accept() (net.Conn, error) {
	g := l.g
	for {
		g.mu.Lock()
		if l.closed {
			g.mu.Unlock()
			return nil, net.ErrClosed
		}
		if g.offline {
			online := g.online
			g.mu.Unlock()
			select {
			case <-online:
			case <-l.done:
			}
			continue
		}
		if l.ln == nil {
			ln, err := net.Listen(l.network, l.addr.String())
			if err != nil {
				g.mu.Unlock()
				g.logger.Error("listen again after outage", "addr", l.addr.String(), "err", err)
				return nil, fmt.Errorf("kafkacluster: listen again on %s: %w", l.addr, err)
			}
			l.ln = ln
		}
		ln := l.ln
		g.mu.Unlock()

		conn, err := ln.Accept()
		if err != nil {
			g.mu.Lock()
			replaced := !l.closed && l.ln != ln // closed by going offline
			g.mu.Unlock()
			if replaced {
				continue
			}
			return nil, err
		}
		g.mu.Lock()
		if g.offline || l.closed {
			g.mu.Unlock()
			_ = conn.Close()
			continue
		}
		gc := &gatedConn{Conn: conn, g: g}
		g.conns[gc] = struct{}{}
		g.mu.Unlock()
		return gc, nil
	}
}

// Close closes the listener for good.
func (l *gatedListener) Close() error {
	g := l.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.done)
	delete(g.listeners, l)
	var err error
	if l.ln != nil {
		err = l.ln.Close()
		l.ln = nil
	}
	return err
}

// Addr returns the listener's address, the same across outages.
func (l *gatedListener) Addr() net.Addr { return l.addr }

// gatedConn is an accepted connection the gate can drop.
type gatedConn struct {
	net.Conn
	g *gate

	once sync.Once
	err  error
}

// Close closes the connection and forgets it.
func (c *gatedConn) Close() error {
	c.once.Do(func() {
		c.g.mu.Lock()
		delete(c.g.conns, c)
		c.g.mu.Unlock()
		c.err = c.Conn.Close()
	})
	return c.err
}

// isOffline reports whether the gate is offline.
func (g *gate) isOffline() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.offline
}
