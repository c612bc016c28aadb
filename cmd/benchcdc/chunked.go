package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// chunkPause is how long the chunked reader lets the socket fill after a
// read that emptied it.
const chunkPause = time.Millisecond

// chunkedConn reads its socket in large chunks: after a read that did not
// fill the caller's buffer (the socket was drained) it waits chunkPause
// before the next one, so the walsender's messages pile up in the socket
// buffer and leave in full TCP segments, as they do when any real consumer
// does work per message. A reader that takes each message the moment it
// arrives makes Postgres send every pgoutput message in its own segment,
// which costs the walsender twice the CPU per event.
type chunkedConn struct {
	net.Conn
	drained bool
}

func (c *chunkedConn) Read(p []byte) (int, error) {
	if c.drained {
		time.Sleep(chunkPause)
	}
	n, err := c.Conn.Read(p)
	c.drained = n < len(p)
	return n, err
}

// chunkedPass is (a2): the walsender's ceiling. A minimal pgoutput reader
// in this process streams slot slotChunked over a chunkedConn (pgconn
// reads 8 KiB at a time), parses each message and counts the inserts,
// until it has seen events of them.
func chunkedPass(ctx context.Context, env *benchEnv, events int) (passResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	u, err := url.Parse(env.url)
	if err != nil {
		return passResult{}, fmt.Errorf("database URL: %w", err)
	}
	q := u.Query()
	q.Set("replication", "database")
	u.RawQuery = q.Encode()
	cfg, err := pgconn.ParseConfig(u.String())
	if err != nil {
		return passResult{}, fmt.Errorf("replication connection config: %w", err)
	}
	var d net.Dialer
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &chunkedConn{Conn: c}, nil
	}

	win := env.sampler.begin()
	start := time.Now()
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		win.end()
		return passResult{}, fmt.Errorf("replication connection: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := pglogrepl.StartReplication(ctx, conn, slotChunked, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'outbox_publication'", "messages 'true'"},
	}); err != nil {
		win.end()
		return passResult{}, fmt.Errorf("start replication: %w", err)
	}
	var (
		inserts int
		first   time.Duration
		last    pglogrepl.LSN
		nextAck = time.Now().Add(time.Second)
	)
	for inserts < events {
		if time.Now().After(nextAck) {
			if err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: last}); err != nil {
				win.end()
				return passResult{}, fmt.Errorf("standby status update: %w", err)
			}
			nextAck = time.Now().Add(time.Second)
		}
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			win.end()
			return passResult{}, fmt.Errorf("receive after %d of %d inserts: %w", inserts, events, err)
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok {
			if e, isErr := msg.(*pgproto3.ErrorResponse); isErr {
				win.end()
				return passResult{}, fmt.Errorf("replication: %s", e.Message)
			}
			continue
		}
		switch cd.Data[0] {
		case pglogrepl.XLogDataByteID:
			x, err := pglogrepl.ParseXLogData(cd.Data[1:])
			if err != nil {
				win.end()
				return passResult{}, fmt.Errorf("parse XLogData: %w", err)
			}
			m, err := pglogrepl.Parse(x.WALData)
			if err != nil {
				win.end()
				return passResult{}, fmt.Errorf("parse pgoutput message: %w", err)
			}
			if _, isInsert := m.(*pglogrepl.InsertMessage); isInsert {
				if inserts == 0 {
					first = time.Since(start)
				}
				inserts++
			}
			last = x.WALStart + pglogrepl.LSN(len(x.WALData))
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			k, err := pglogrepl.ParsePrimaryKeepaliveMessage(cd.Data[1:])
			if err != nil {
				win.end()
				return passResult{}, fmt.Errorf("parse keepalive: %w", err)
			}
			if k.ReplyRequested {
				nextAck = time.Time{}
			}
		}
	}
	elapsed := time.Since(start)
	cpu := win.end()
	conn.Close(context.WithoutCancel(ctx))
	res := passResult{events: events, elapsed: elapsed, firstEvent: first, cpu: cpu}
	if err := env.slotInactive(ctx, slotChunked, 30*time.Second); err != nil {
		return res, err
	}
	if res.slot, err = env.slotStats(ctx, slotChunked); err != nil {
		return res, err
	}
	return res, nil
}
