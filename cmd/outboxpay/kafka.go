package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/kafkacluster"
)

// runKafka runs the embedded Kafka cluster as its own process: one broker
// per port of KAFKA_PORTS on 127.0.0.1, its state in DATA_DIR/kafka, so the
// process can be killed and started again and keep its topics, records and
// committed offsets. With KAFKA_USERS_FILE it requires SASL/SCRAM of those
// users and enforces the product's ACLs (kafkaclient.ACLs). It stops the
// cluster (saving its state) on SIGINT or SIGTERM.
func runKafka(ctx context.Context, d deps) (err error) {
	cfg := d.cfg
	if slices.Contains(cfg.KafkaPorts, 0) {
		return errors.New("KAFKA_PORTS: the kafka command needs fixed ports, so clients find it again after a restart")
	}
	var sasl *kafkacluster.SASL
	if cfg.KafkaUsersFile != "" {
		users, err := kafkaclient.ReadUsers(cfg.KafkaUsersFile)
		if err != nil {
			return err
		}
		if sasl, err = kafkaSASL(users); err != nil {
			return fmt.Errorf("KAFKA_USERS_FILE: %w", err)
		}
	}
	kc, err := startKafka(ctx, d, cfg.KafkaPorts, sasl)
	if err != nil {
		return err
	}
	defer closing(&err, kc.Close)
	fmt.Printf("kafka %s\n", kc.Bootstrap())
	<-ctx.Done()
	return nil
}

// startKafka starts the embedded cluster, one broker per KAFKA_PORTS entry
// on ports (nil: free ones), its state in DATA_DIR/kafka, with sasl (nil:
// none).
func startKafka(ctx context.Context, d deps, ports []int, sasl *kafkacluster.SASL) (*kafkacluster.Cluster, error) {
	dir := filepath.Join(d.cfg.DataDir, "kafka")
	kc, err := kafkacluster.Start(ctx, kafkacluster.Options{
		Brokers:    len(d.cfg.KafkaPorts),
		Partitions: d.cfg.KafkaTopicPartitions,
		Ports:      ports,
		DataDir:    dir,
		Logger:     d.logger,
		SASL:       sasl,
	})
	if err != nil {
		return nil, err
	}
	mechanism := ""
	if sasl != nil {
		mechanism = sasl.Mechanism
	}
	d.logger.Info("embedded kafka running", "bootstrap", kc.Bootstrap(), "data_dir", dir, "sasl", mechanism)
	return kc, nil
}

// embeddedSASL returns the SASL settings of the embedded cluster: the
// product's principals and ACLs, their passwords from usersFile (random
// ones added for the principals it lacks, kept across restarts).
func embeddedSASL(usersFile string) (*kafkacluster.SASL, error) {
	users, err := kafkaclient.EnsureUsers(usersFile, append([]string{kafkaclient.PrincipalAdmin}, kafkaclient.Principals()...)...)
	if err != nil {
		return nil, err
	}
	return kafkaSASL(users)
}

// kafkaSASL returns the embedded cluster's SASL settings for users (name ->
// password), which must hold the superuser and every principal.
func kafkaSASL(users map[string]string) (*kafkacluster.SASL, error) {
	s := &kafkacluster.SASL{
		Mechanism:         kafkaclient.EmbeddedMechanism,
		Superuser:         kafkaclient.PrincipalAdmin,
		SuperuserPassword: users[kafkaclient.PrincipalAdmin],
		Users:             map[string]string{},
		ACLs:              kafkaclient.ACLs(),
	}
	if s.SuperuserPassword == "" {
		return nil, fmt.Errorf("kafka users: no password for %s", kafkaclient.PrincipalAdmin)
	}
	for _, p := range kafkaclient.Principals() {
		if users[p] == "" {
			return nil, fmt.Errorf("kafka users: no password for %s", p)
		}
		s.Users[p] = users[p]
	}
	return s, nil
}
