package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/outboxpay/outboxpay/consumers/consume"
)

// runReplay re-drives the dead-lettered records of REPLAY_TOPICS once.
func runReplay(ctx context.Context, cfg config, logger *slog.Logger) error {
	if cfg.KafkaBootstrap == "" {
		return errors.New("KAFKA_BOOTSTRAP_SERVERS is not set")
	}
	n, err := consume.Replay(ctx, cfg.kafka(cfg.KafkaBootstrap), cfg.ReplayTopics, logger)
	if err != nil {
		return err
	}
	fmt.Printf("replayed %d dead-lettered records from %v\n", n, cfg.ReplayTopics)
	return nil
}
