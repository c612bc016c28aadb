package main

import (
	"context"
	"fmt"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

// runReplay re-drives the dead-lettered records of REPLAY_TOPICS once.
func runReplay(ctx context.Context, d deps) error {
	if err := needKafka(d.cfg); err != nil {
		return err
	}
	n, err := consume.Replay(ctx, d.kafkaAs(kafkaclient.PrincipalReplay), d.cfg.ReplayTopics, d.logger)
	if err != nil {
		return err
	}
	fmt.Printf("replayed %d dead-lettered records from %v\n", n, d.cfg.ReplayTopics)
	return nil
}
