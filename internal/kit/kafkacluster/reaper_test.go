package kafkacluster

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/logtest"
)

// rawMember is a consumer group member speaking the classic group protocol
// request by request, so a test can stop it at any step.
type rawMember struct {
	t     *testing.T
	cl    *kgo.Client
	group string
	id    string
	gen   int32

	mu    sync.Mutex
	addrs []string // local addresses of the client's connections
}

const reaperTopic = "reaped"

func newRawMember(t *testing.T, c *Cluster, group string) *rawMember {
	t.Helper()
	m := &rawMember{t: t, group: group}
	dialer := &net.Dialer{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(c.Bootstrap(), ",")...),
		kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, host)
			if err == nil {
				m.mu.Lock()
				m.addrs = append(m.addrs, conn.LocalAddr().String())
				m.mu.Unlock()
			}
			return conn, err
		}))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(cl.Close)
	m.cl = cl
	return m
}

// connected reports whether the cluster still has a connection of m's
// client open.
func (m *rawMember) connected(c *Cluster) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	c.gate.mu.Lock()
	defer c.gate.mu.Unlock()
	for conn := range c.gate.conns {
		if slices.Contains(m.addrs, conn.RemoteAddr().String()) {
			return true
		}
	}
	return false
}

// join sends JoinGroup (twice for a new member: the first answer names its
// member id) and returns the answer; it blocks while the group waits for
// its other members.
func (m *rawMember) join(ctx context.Context) (*kmsg.JoinGroupResponse, error) {
	for {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = m.group, m.id, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 1000, 1000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name = "range"
		p.Metadata = (&kmsg.ConsumerMemberMetadata{Topics: []string{reaperTopic}}).AppendTo(nil)
		req.Protocols = append(req.Protocols, p)
		resp, err := req.RequestWith(ctx, m.cl)
		if err != nil {
			return nil, err
		}
		if resp.ErrorCode == kerr.MemberIDRequired.Code {
			m.id = resp.MemberID
			continue
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return nil, err
		}
		m.id, m.gen = resp.MemberID, resp.Generation
		return resp, nil
	}
}

// syncAsLeader gives every member of the join one partition of its own and
// sends the plan.
func (m *rawMember) syncAsLeader(ctx context.Context, join *kmsg.JoinGroupResponse) error {
	if join.LeaderID != m.id {
		m.t.Fatalf("member %s: leader is %s, want this member", m.id, join.LeaderID)
	}
	req := kmsg.NewPtrSyncGroupRequest()
	req.Group, req.MemberID, req.Generation = m.group, m.id, m.gen
	for i, jm := range join.Members {
		a := kmsg.NewSyncGroupRequestGroupAssignment()
		a.MemberID = jm.MemberID
		a.MemberAssignment = (&kmsg.ConsumerMemberAssignment{Topics: []kmsg.ConsumerMemberAssignmentTopic{
			{Topic: reaperTopic, Partitions: []int32{int32(i)}}}}).AppendTo(nil)
		req.GroupAssignment = append(req.GroupAssignment, a)
	}
	resp, err := req.RequestWith(ctx, m.cl)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.ErrorCode)
}

// rejoin joins and, as the group's only live member and so its leader,
// syncs.
func (m *rawMember) rejoin(ctx context.Context) error {
	join, err := m.join(ctx)
	if err != nil {
		return err
	}
	return m.syncAsLeader(ctx, join)
}

// heartbeat sends one heartbeat and returns its error code as an error.
func (m *rawMember) heartbeat(ctx context.Context) error {
	req := kmsg.NewPtrHeartbeatRequest()
	req.Group, req.MemberID, req.Generation = m.group, m.id, m.gen
	resp, err := req.RequestWith(ctx, m.cl)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.ErrorCode)
}

func (c *Cluster) groupInfo(group string) *kfake.GroupInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inst.kc.GroupInfo(group)
}

// A new member whose client dies while it waits for its JoinGroup answer
// may get no session timer from kfake (when its answer is dropped: kfake
// picks at random between the dead connection and its reply queue); once
// the leader syncs, nothing removes it and its partitions have no consumer.
// The scenario runs until kfake keeps a dead member (each run's dead member
// must go, whoever removes it), and the reaper must then remove it and
// leave the member that heartbeats alone.
func TestReaperRemovesMemberThatDiedJoining(t *testing.T) {
	logger, logs := logtest.New()
	c := startCluster(t, Options{Logger: logger})
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	// Short sessions, so that a run in which kfake removes the dead
	// member itself costs a second.
	setBrokerConfig(t, ctx, newRawMember(t, c, ""), "group.min.session.timeout.ms", "500")

	const attempts = 20
	for i := 1; i <= attempts; i++ {
		deadID := dieWhileJoining(t, ctx, c, fmt.Sprintf("reaper-test-%d", i))
		if strings.Contains(logs.String(), deadID) {
			t.Logf("run %d: kfake kept the dead member; the reaper removed it", i)
			return
		}
		t.Logf("run %d: kfake removed the dead member itself", i)
	}
	t.Fatalf("kfake removed the dead member itself in all %d runs: the reaper was never needed", attempts)
}

// dieWhileJoining runs the scenario in group and returns the dead member's
// id once it is gone, failing the test if it stays.
func dieWhileJoining(t *testing.T, ctx context.Context, c *Cluster, group string) string {
	t.Helper()
	live := newRawMember(t, c, group)
	defer live.cl.Close()
	if err := live.rejoin(ctx); err != nil {
		t.Fatalf("first member joins: %v", err)
	}

	dead := newRawMember(t, c, group)
	joining := make(chan error, 1)
	jctx, cancelJoin := context.WithCancel(ctx)
	defer cancelJoin()
	go func() {
		_, err := dead.join(jctx)
		joining <- err
	}()
	eventually.True(t, wait, "the second member waiting in JoinGroup", func() (bool, error) {
		info := c.groupInfo(group)
		return info != nil && info.State == "PreparingRebalance" && len(info.Members) == 2, nil
	})
	deadID := dead.id
	// The second member's process dies: its connections close.
	cancelJoin()
	dead.cl.Close()
	<-joining
	eventually.True(t, wait, "the second member's connections closing", func() (bool, error) {
		return !dead.connected(c), nil
	})

	// The live member learns of the rebalance, rejoins and, as leader,
	// gives the dead member a partition.
	if err := live.heartbeat(ctx); err == nil {
		t.Fatal("heartbeat during the rebalance succeeded, want REBALANCE_IN_PROGRESS")
	}
	if err := live.rejoin(ctx); err != nil {
		t.Fatalf("rejoin with the dead member: %v", err)
	}

	// The live member keeps heartbeating (and rejoins when told to); the
	// dead one must go.
	hctx, stopHeartbeats := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-hctx.Done():
				return
			case <-tick.C:
			}
			if err := live.heartbeat(hctx); err != nil && hctx.Err() == nil {
				if err := live.rejoin(hctx); err != nil && hctx.Err() == nil {
					t.Errorf("live member rejoins: %v", err)
					return
				}
			}
		}
	})
	defer func() { stopHeartbeats(); wg.Wait() }()
	eventually.True(t, wait, "only the live member left, the dead one "+deadID+" removed", func() (bool, error) {
		info := c.groupInfo(group)
		return info != nil && info.State == "Stable" && len(info.Members) == 1 && info.Members[0].MemberID == live.id, nil
	})
	return deadID
}

// setBrokerConfig sets a dynamic config of every broker.
func setBrokerConfig(t *testing.T, ctx context.Context, m *rawMember, key, value string) {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	r := kmsg.NewIncrementalAlterConfigsRequestResource()
	r.ResourceType = kmsg.ConfigResourceTypeBroker
	cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	cfg.Name, cfg.Value, cfg.Op = key, &value, kmsg.IncrementalAlterConfigOpSet
	r.Configs = append(r.Configs, cfg)
	req.Resources = append(req.Resources, r)
	resp, err := req.RequestWith(ctx, m.cl)
	if err == nil && len(resp.Resources) > 0 {
		err = kerr.ErrorForCode(resp.Resources[0].ErrorCode)
	}
	if err != nil {
		t.Fatalf("set %s=%s: %v", key, value, err)
	}
}
