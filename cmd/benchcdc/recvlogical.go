package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/jackc/pglogrepl"
)

// recvlogicalPass is (b): pg_recvlogical streams slot B to /dev/null with
// the engine's pgoutput options, and exits by itself at the backlog's end
// (--endpos). The plugin is the slot's (pgoutput, chosen at creation).
func recvlogicalPass(ctx context.Context, env *benchEnv, tools pgTools, endLSN pglogrepl.LSN, events int) (passResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.Command(tools.recvlogical,
		"-d", env.url,
		"--slot", slotRecv,
		"--start",
		"--endpos", endLSN.String(),
		"--no-loop",
		"--fsync-interval", "0", // no fsync: neither (a) nor (c) writes to disk
		"-o", "proto_version=1",
		"-o", "publication_names=outbox_publication",
		"-o", "messages=true",
		"-f", "/dev/null",
	)
	cmd.Env = clientEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out

	win := env.sampler.begin()
	start := time.Now()
	c, err := startChild("pg_recvlogical", cmd)
	if err != nil {
		win.end()
		return passResult{}, err
	}
	err = c.wait(ctx)
	elapsed := time.Since(start)
	cpu := win.end()
	if err != nil {
		return passResult{}, fmt.Errorf("%w\n%s", err, tail(out.String(), 20))
	}

	res := passResult{events: events, elapsed: elapsed, cpu: cpu}
	if err := env.slotInactive(ctx, slotRecv, 30*time.Second); err != nil {
		return res, err
	}
	if res.slot, err = env.slotStats(ctx, slotRecv); err != nil {
		return res, err
	}
	if res.slot.decodedTxns > 0 && res.slot.decodedTxns < int64(events) {
		return res, fmt.Errorf("pg_recvlogical exited having decoded %d transactions, want %d", res.slot.decodedTxns, events)
	}
	return res, nil
}
