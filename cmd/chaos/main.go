// Command chaos runs `make chaos`: the whole system as separate processes,
// under load, with every part killed and restarted on a seeded schedule,
// then checks the invariants and prints a report. It exits 1 when an
// invariant broke, 2 when the run could not be carried out.
//
// Settings (environment):
//
//	CHAOS_DURATION          load and faults, default 10m
//	CHAOS_SEED              seed of the load and the fault schedule, default 1
//	CHAOS_RATE              orders (each then paid) per second, default 5
//	CHAOS_FAULTS            kind=count,... (default: the full profile, or the replicas
//	                        profile with CHAOS_REPLICAS >= 2; see internal/kit/chaos)
//	CHAOS_REPLICAS          processes of each consumer group and of the API, default 1;
//	                        2 or more: the replicas profile (records shared, kills
//	                        mid-rebalance, throughput with 1 and N replicas)
//	CHAOS_DRAIN_PAYMENTS    the replicas profile's throughput backlog, default 2000; 0 skips it
//	CHAOS_STUCK_AFTER       the reconciler's stuck-after, default 10s
//	CHAOS_PAUSE             how long the connector stays paused, default 45s
//	CHAOS_DEGRADE           how long the platform misbehaves each time, default 20s
//	CHAOS_CONVERGE_TIMEOUT  bound on convergence after the faults, default 5m
//	CHAOS_DIR               work folder (kept on failure), default a temporary one
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/outboxpay/outboxpay/internal/kit/chaos"
)

type settings struct {
	Duration        time.Duration `env:"CHAOS_DURATION" envDefault:"10m"`
	Seed            uint64        `env:"CHAOS_SEED" envDefault:"1"`
	Rate            float64       `env:"CHAOS_RATE" envDefault:"5"`
	Faults          string        `env:"CHAOS_FAULTS"`
	StuckAfter      time.Duration `env:"CHAOS_STUCK_AFTER" envDefault:"10s"`
	Pause           time.Duration `env:"CHAOS_PAUSE" envDefault:"45s"`
	Degrade         time.Duration `env:"CHAOS_DEGRADE" envDefault:"20s"`
	ConvergeTimeout time.Duration `env:"CHAOS_CONVERGE_TIMEOUT" envDefault:"5m"`
	Dir             string        `env:"CHAOS_DIR"`
	Replicas        int           `env:"CHAOS_REPLICAS" envDefault:"1"`
	DrainPayments   int64         `env:"CHAOS_DRAIN_PAYMENTS" envDefault:"2000"`
}

func main() {
	os.Exit(run())
}

func run() int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	s, err := env.ParseAs[settings]()
	if err != nil {
		logger.Error("read settings", "err", err)
		return 2
	}
	if s.Replicas < 1 || s.Replicas > 8 || s.DrainPayments < 0 {
		logger.Error("read settings", "err", "CHAOS_REPLICAS must be 1..8 and CHAOS_DRAIN_PAYMENTS not negative")
		return 2
	}
	faults := chaos.DefaultFaults()
	if s.Replicas >= 2 {
		faults = chaos.ReplicaFaults()
	}
	if s.Faults != "" {
		if faults, err = chaos.ParseSchedule(s.Faults); err != nil {
			logger.Error("read settings", "err", err)
			return 2
		}
	}
	dir := s.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "outboxpay-chaos-"); err != nil {
			logger.Error("work folder", "err", err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	bin := filepath.Join(dir, "bin", "outboxpay")
	logger.Info("building outboxpay", "bin", bin)
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/outboxpay").CombinedOutput(); err != nil {
		logger.Error("build outboxpay", "err", err, "output", string(out))
		return 2
	}
	report, err := chaos.Run(ctx, chaos.Config{
		Binary: bin, Dir: dir, Duration: s.Duration, Seed: s.Seed, Rate: s.Rate, Faults: faults,
		StuckAfter: s.StuckAfter, Pause: s.Pause, Degrade: s.Degrade, ConvergeTimeout: s.ConvergeTimeout,
		Replicas: s.Replicas, DrainPayments: s.DrainPayments, Logger: logger,
	})
	if err != nil {
		logger.Error("chaos run", "err", err, "logs", filepath.Join(dir, "logs"))
		return 2
	}
	fmt.Println()
	report.Print(os.Stdout)
	if !report.OK() {
		fmt.Printf("\nlogs of every process: %s\n", filepath.Join(dir, "logs"))
		return 1
	}
	if s.Dir == "" {
		os.RemoveAll(dir)
	}
	return 0
}
