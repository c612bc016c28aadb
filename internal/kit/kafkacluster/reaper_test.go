package kafkacluster

import (
	"context"
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
}

const reaperTopic = "reaped"

func newRawMember(t *testing.T, c *Cluster, group string) *rawMember {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(c.Bootstrap(), ",")...))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(cl.Close)
	return &rawMember{t: t, cl: cl, group: group}
}

// join sends JoinGroup (twice for a new member: the first answer names its
// member id) and returns the answer; it blocks while the group waits for
// its other members.
func (m *rawMember) join(ctx context.Context) (*kmsg.JoinGroupResponse, error) {
	for {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = m.group, m.id, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 6000, 6000
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

func (c *Cluster) openConns() int {
	c.gate.mu.Lock()
	defer c.gate.mu.Unlock()
	return len(c.gate.conns)
}

// A new member whose client dies while it waits for its JoinGroup answer
// gets no session timer from kfake; once the leader syncs, nothing removes
// it and its partitions have no consumer. The reaper removes it, and leaves
// a member that heartbeats alone.
func TestReaperRemovesMemberThatDiedJoining(t *testing.T) {
	logger, logs := logtest.New()
	c := startCluster(t, Options{Logger: logger})
	ctx := testCtx(t)
	const group = "reaper-test"

	live := newRawMember(t, c, group)
	if err := live.rejoin(ctx); err != nil {
		t.Fatalf("first member joins: %v", err)
	}

	before := c.openConns()
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
		return c.openConns() <= before, nil
	})

	// The live member learns of the rebalance, rejoins and, as leader,
	// gives the dead member a partition.
	if err := live.heartbeat(ctx); err == nil {
		t.Fatal("heartbeat during the rebalance succeeded, want REBALANCE_IN_PROGRESS")
	}
	if err := live.rejoin(ctx); err != nil {
		t.Fatalf("rejoin with the dead member: %v", err)
	}
	if info := c.groupInfo(group); info == nil || len(info.Members) != 2 {
		t.Fatalf("group after the rebalance: %+v, want the live and the dead member", info)
	}

	// The live member keeps heartbeating (and rejoins when told to); the
	// dead one must go.
	hctx, stopHeartbeats := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(500 * time.Millisecond)
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
	if !strings.Contains(logs.String(), deadID) {
		t.Errorf("log does not name the removed member %s:\n%s", deadID, logs.String())
	}
}
