// Package kafkacluster runs an embedded Kafka cluster in the process, for
// development (make run) and tests. It is built on kfake
// (github.com/twmb/franz-go/pkg/kfake), which speaks the real Kafka protocol
// on real TCP ports, so any client, confluent-kafka-go included, talks to it
// unchanged: several brokers, topic auto-creation, consumer groups,
// idempotent and transactional producers, the admin API.
//
// A cluster is in memory, or with Options.DataDir kept in a folder: topics,
// records, committed offsets and producer state survive a Close and the next
// Start on the same folder.
//
// For tests of outages, a cluster can be taken off the network and back
// (SetOffline), stopped and started again on the same ports (Stop,
// Restart), and made to fail chosen requests (Fault).
package kafkacluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/logging"
)

const (
	defaultBrokers    = 3
	defaultPartitions = 3
	host              = "127.0.0.1"
)

// Options configures Start. The zero value is a valid in-memory cluster of
// three brokers on free ports.
type Options struct {
	// Brokers is the number of brokers, default 3 (or len(Ports)). Topics
	// are replicated on min(3, Brokers) brokers, all of them in sync, so
	// producers with acks=all succeed.
	Brokers int
	// Partitions is the partition count of auto-created topics (and of
	// topics created with the broker default), default 3.
	Partitions int
	// Ports are the listen ports on 127.0.0.1, one per broker; nil picks
	// free ports. The ports chosen at Start are kept by Restart.
	Ports []int
	// DataDir, when set, keeps the cluster's state in this folder: Start
	// loads what a previous cluster left there. "" keeps everything in
	// memory and loses it on Close or Stop.
	DataDir string
	// Logger receives the cluster's own messages (kfake errors and
	// warnings; its informational messages at debug level). nil discards
	// them.
	Logger *slog.Logger
	// SASL, when set, makes the cluster require SASL/SCRAM authentication
	// and enforce ACLs. nil: no authentication, everything allowed.
	SASL *SASL
}

// SASL is the authentication and authorization of a cluster. Users and
// ACLs are exactly these at every Start and Restart: with DataDir, users
// and ACLs a previous run saved that are no longer here are dropped, and
// changed passwords take effect.
type SASL struct {
	// Mechanism is kafkaclient.ScramSHA256 or kafkaclient.ScramSHA512.
	Mechanism string
	// Superuser and SuperuserPassword name the user that bypasses ACLs
	// (kafkaclient.PrincipalAdmin, say). Required.
	Superuser, SuperuserPassword string
	// Users maps the other users' names to their passwords.
	Users map[string]string
	// ACLs allow the Users what they may do; anything else is denied. With
	// DataDir, a topic is auto-created durably (see installDurableAutoCreate)
	// only when an ACL allows Create on it; other topics are auto-created,
	// for clients allowed to Describe them, in memory until Close.
	ACLs []kafkaclient.ACL
}

// Cluster is a running embedded Kafka cluster. Its methods are safe for
// concurrent use.
type Cluster struct {
	opts      Options // normalized: Brokers and Ports are final
	logger    *slog.Logger
	kfakeLog  *slog.Logger // the caller's logger, for kfake's messages
	bootstrap string
	gate      *gate

	mu     sync.Mutex // serializes Stop, Restart and Close; guards inst, closed and aclSyncPending
	inst   *instance  // nil while stopped
	closed bool
	// aclSyncPending is set when the cluster started while offline, so
	// its ACLs are brought in line with Options when it is online again.
	aclSyncPending bool
}

// instance is one run of kfake; Restart replaces it.
type instance struct {
	kc     *kfake.Cluster
	log    *kfakeLogger
	reaper *reaper // started by afterLaunch, once the bootstrap is known

	// hookMu is held for reading while the durable auto-creation hook
	// creates topics, and for writing by stop, so that no topic is
	// created (and written to DataDir) once the cluster has saved its
	// state on the way down.
	hookMu   sync.RWMutex
	stopping bool
}

// Start starts a cluster. With Options.DataDir it loads the state a
// previous cluster saved there. It fails when a port is taken or the saved
// state cannot be read.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kafkacluster: start: %w", err)
	}
	opts, err := normalize(opts)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	logger = logging.OrDiscard(logger)
	if opts.DataDir != "" {
		if err := os.MkdirAll(opts.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("kafkacluster: create data dir: %w", err)
		}
	}

	c := &Cluster{opts: opts, logger: logger.With("component", "kafkacluster"), kfakeLog: logger}
	c.gate = newGate(c.logger)
	inst, err := c.launch()
	if err != nil {
		return nil, err
	}
	c.inst = inst
	if c.opts.Ports == nil {
		// Keep the free ports we were given, so Restart and Bootstrap
		// stay the same.
		for _, addr := range inst.kc.ListenAddrs() {
			port, err := portOf(addr)
			if err != nil {
				_ = c.Close()
				return nil, err
			}
			c.opts.Ports = append(c.opts.Ports, port)
		}
	}
	addrs := make([]string, len(c.opts.Ports))
	for i, p := range c.opts.Ports {
		addrs[i] = net.JoinHostPort(host, strconv.Itoa(p))
	}
	c.bootstrap = strings.Join(addrs, ",")
	if err := c.afterLaunch(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}

	if err := ctx.Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("kafkacluster: start: %w", err)
	}
	c.logger.Info("kafka cluster started", "bootstrap", c.bootstrap, "brokers", opts.Brokers,
		"partitions", opts.Partitions, "data_dir", opts.DataDir)
	return c, nil
}

// normalize applies defaults and checks opts.
func normalize(opts Options) (Options, error) {
	if opts.Brokers < 0 || opts.Partitions < 0 {
		return opts, fmt.Errorf("kafkacluster: negative Brokers (%d) or Partitions (%d)", opts.Brokers, opts.Partitions)
	}
	if opts.Brokers == 0 {
		opts.Brokers = len(opts.Ports)
		if opts.Brokers == 0 {
			opts.Brokers = defaultBrokers
		}
	}
	if opts.Ports != nil && len(opts.Ports) != opts.Brokers {
		return opts, fmt.Errorf("kafkacluster: %d ports for %d brokers", len(opts.Ports), opts.Brokers)
	}
	for _, p := range opts.Ports {
		if p <= 0 || p > 65535 {
			return opts, fmt.Errorf("kafkacluster: invalid port %d", p)
		}
	}
	opts.Ports = append([]int(nil), opts.Ports...)
	if len(opts.Ports) == 0 {
		opts.Ports = nil
	}
	if opts.Partitions == 0 {
		opts.Partitions = defaultPartitions
	}
	if opts.SASL != nil {
		if err := opts.SASL.validate(); err != nil {
			return opts, err
		}
	}
	return opts, nil
}

// launch starts kfake with the cluster's options.
func (c *Cluster) launch() (*instance, error) {
	inst := &instance{log: newKfakeLogger(c.kfakeLog)}
	kopts := []kfake.Opt{
		kfake.NumBrokers(c.opts.Brokers),
		kfake.DefaultNumPartitions(c.opts.Partitions),
		kfake.AllowAutoTopicCreation(),
		kfake.ListenFn(c.gate.listen),
		kfake.WithLogger(inst.log),
	}
	if c.opts.Ports != nil {
		kopts = append(kopts, kfake.Ports(c.opts.Ports...))
	}
	if c.opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(c.opts.DataDir))
	}
	if c.opts.SASL != nil {
		kopts = append(kopts, c.opts.SASL.kfakeOpts()...)
		if c.opts.DataDir != "" {
			if err := forgetSavedUsers(c.opts.DataDir); err != nil {
				return nil, err
			}
		}
	}
	kc, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafkacluster: start brokers on %s ports %v (data dir %q): %w",
			host, c.opts.Ports, c.opts.DataDir, err)
	}
	inst.kc = kc
	if c.opts.DataDir != "" {
		c.installDurableAutoCreate(inst)
	}
	return inst, nil
}

// installDurableAutoCreate makes topic auto-creation crash safe. kfake
// auto-creates a topic on a metadata request but writes its topic list to
// DataDir only on Close, so a process killed before then would come back
// without the topic, and without its records. This hook creates the topic
// through kfake's CreateTopic, which writes the topic list at once, before
// kfake answers the metadata request that asked for it: no record is ever
// acknowledged on a topic that is not on disk.
//
// With SASL the hook cannot tell who asks, so it creates only the topics an
// ACL allows some user to create; kfake itself auto-creates other topics
// (saved at Close) only for clients allowed to describe them.
func (c *Cluster) installDurableAutoCreate(inst *instance) {
	// kfake runs control functions on their own goroutine and keeps
	// serving admin calls such as CreateTopic while it waits for them.
	inst.kc.ControlKey(int16(kmsg.Metadata), func(req kmsg.Request) (kmsg.Response, error, bool) {
		mreq, ok := req.(*kmsg.MetadataRequest)
		if !ok || !mreq.AllowAutoTopicCreation {
			return nil, nil, false
		}
		inst.hookMu.RLock()
		defer inst.hookMu.RUnlock()
		if inst.stopping {
			return nil, nil, false
		}
		for _, t := range mreq.Topics {
			if t.Topic == nil || *t.Topic == "" || t.TopicID != [16]byte{} {
				continue
			}
			if c.opts.SASL != nil && !c.opts.SASL.mayCreate(*t.Topic) {
				continue // the hook cannot tell who asks: see SASL.ACLs
			}
			err := inst.kc.CreateTopic(*t.Topic, int32(c.opts.Partitions), nil)
			switch {
			case err == nil:
				c.logger.Info("topic auto-created", "topic", *t.Topic, "partitions", c.opts.Partitions)
			case !errors.Is(err, kerr.TopicAlreadyExists):
				c.logger.Warn("auto-create topic", "topic", *t.Topic, "err", err)
			}
		}
		return nil, nil, false // let kfake answer the request
	})
}

// Bootstrap returns the bootstrap servers, e.g.
// "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094". It does not change across
// Stop and Restart.
func (c *Cluster) Bootstrap() string { return c.bootstrap }

// Close stops the cluster for good; further calls do nothing. With
// DataDir, everything is on disk when Close returns: topics, records,
// committed offsets and producer state. It returns an error when the state
// could not be saved.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	err := c.stopLocked()
	c.logger.Info("kafka cluster closed", "bootstrap", c.bootstrap)
	return err
}

// Stop stops the brokers as a crash-free shutdown would, for tests of a
// Kafka outage: listeners close, every client connection drops, and clients
// get "connection refused" until Restart. With DataDir the state is saved
// and Restart brings it back; in memory it is lost, and Restart starts an
// empty cluster (an idempotent producer that outlives that then fails with
// a fatal out-of-order sequence error: use SetOffline for in-memory
// outages). Stop on a stopped cluster does nothing.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("kafkacluster: stop: cluster closed")
	}
	err := c.stopLocked()
	c.logger.Info("kafka cluster stopped", "bootstrap", c.bootstrap)
	return err
}

// stopLocked stops the running instance, if any. c.mu is held.
func (c *Cluster) stopLocked() error {
	inst := c.inst
	if inst == nil {
		return nil
	}
	c.inst = nil
	inst.hookMu.Lock()
	inst.stopping = true
	inst.hookMu.Unlock()
	if inst.reaper != nil {
		inst.reaper.stop()
	}
	inst.log.drainErrors() // only report what the shutdown itself logs
	inst.kc.Close()
	if msgs := inst.log.drainErrors(); len(msgs) > 0 {
		return fmt.Errorf("kafkacluster: save state to %q: %s", c.opts.DataDir, strings.Join(msgs, "; "))
	}
	return nil
}

// Restart starts the cluster again on the same ports and DataDir, stopping
// it first if it runs. See Stop for what survives.
func (c *Cluster) Restart(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafkacluster: restart: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("kafkacluster: restart: cluster closed")
	}
	if err := c.stopLocked(); err != nil {
		return fmt.Errorf("kafkacluster: restart: %w", err)
	}
	inst, err := c.launch()
	if err != nil {
		return fmt.Errorf("kafkacluster: restart: %w", err)
	}
	c.inst = inst
	if err := c.afterLaunch(ctx); err != nil {
		return fmt.Errorf("kafkacluster: restart: %w", err)
	}
	c.logger.Info("kafka cluster restarted", "bootstrap", c.bootstrap)
	return nil
}

// SetOffline takes the cluster off the network (true) or puts it back
// (false), for tests of a Kafka outage that must keep the cluster's state,
// in memory too. Going offline drops every client connection and closes the
// listeners, so clients get "connection refused"; when SetOffline(false)
// returns, the listeners accept connections again on the same ports.
// Requests being handled at that moment may still complete. The setting
// outlasts Stop and Restart. It fails when a port cannot be listened on
// again (another process took it).
func (c *Cluster) SetOffline(offline bool) error {
	if err := c.gate.setOffline(offline); err != nil {
		return err
	}
	c.logger.Info("kafka cluster network", "offline", offline)
	if !offline {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.aclSyncPending && c.inst != nil {
			if err := c.syncACLs(context.Background()); err != nil {
				return err
			}
			c.aclSyncPending = false
		}
	}
	return nil
}

// afterLaunch starts the new instance's member reaper and brings its ACLs
// in line with Options (now, or once online). c.mu is held, or c is not
// shared yet.
func (c *Cluster) afterLaunch(ctx context.Context) error {
	c.inst.reaper = c.startReaper(c.inst.kc, c.bootstrap)
	c.aclSyncPending = false
	if c.opts.SASL == nil || c.opts.DataDir == "" {
		return nil // a new cluster: kfake applied the ACLs of Options
	}
	if c.gate.isOffline() {
		c.aclSyncPending = true
		return nil
	}
	return c.syncACLs(ctx)
}

// Fault makes the running cluster fail the requests the faults select with
// the faults' errors (kfake's fault injection): for instance
// kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas,
// Count: -1} until the returned handle's Remove. Faults end with Stop.
func (c *Cluster) Fault(faults ...kfake.Fault) (*kfake.FaultHandle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inst == nil {
		return nil, errors.New("kafkacluster: fault: cluster not running")
	}
	return c.inst.kc.Fault(faults...), nil
}

// portOf returns the port of a host:port address.
func portOf(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("kafkacluster: listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return 0, fmt.Errorf("kafkacluster: listen address %q: %w", addr, err)
	}
	return port, nil
}
