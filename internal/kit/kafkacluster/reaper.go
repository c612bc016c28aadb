package kafkacluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The reaper removes consumer group members that kfake keeps after their
// client died. kfake arms a member's session timer only when a reply
// reaches it: a new member whose process dies while it waits for its
// JoinGroup answer has no timer, and once the leader's SyncGroup completes
// the rebalance nothing removes it. It keeps the partitions the leader gave
// it, and nobody consumes them, for as long as the cluster runs. (A real
// broker removes it after session.timeout.ms.)
//
// The reaper watches the group requests that carry a member id and removes,
// with a LeaveGroup on the member's behalf, a member that has sent nothing
// for longer than any member of its group may wait in a rebalance (the
// largest session or rebalance timeout its members joined with) plus
// reapMargin: by then a broker would have removed it.
type reaper struct {
	c         *Cluster
	kc        *kfake.Cluster
	bootstrap string
	mu        sync.Mutex
	seen      map[memberKey]memberSeen

	cancel context.CancelFunc
	done   chan struct{}
}

type memberKey struct{ group, member string }

// memberSeen is when a member last sent a request, and how long a broker
// lets it be silent.
type memberSeen struct {
	at      time.Time
	timeout time.Duration
}

const (
	reapInterval = 2 * time.Second
	reapMargin   = 5 * time.Second
	// defaultMemberTimeout is the silence allowed to a member the reaper
	// has not seen join (one a restarted cluster loaded from DataDir):
	// Kafka's default session.timeout.ms.
	defaultMemberTimeout = 45 * time.Second
)

// startReaper installs the request observers on kc and starts the reaping
// loop; stop ends it.
func (c *Cluster) startReaper(kc *kfake.Cluster, bootstrap string) *reaper {
	ctx, cancel := context.WithCancel(context.Background())
	r := &reaper{c: c, kc: kc, bootstrap: bootstrap, seen: make(map[memberKey]memberSeen), cancel: cancel, done: make(chan struct{})}
	observe := func(key kmsg.Key, member func(kmsg.Request) (group, id string, timeout time.Duration)) {
		kc.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
			if group, id, timeout := member(req); id != "" {
				r.saw(group, id, timeout)
			}
			return nil, nil, false // observe only: kfake answers the request
		})
	}
	observe(kmsg.JoinGroup, func(req kmsg.Request) (string, string, time.Duration) {
		j := req.(*kmsg.JoinGroupRequest)
		t := max(j.SessionTimeoutMillis, j.RebalanceTimeoutMillis)
		return j.Group, j.MemberID, time.Duration(t) * time.Millisecond
	})
	observe(kmsg.SyncGroup, func(req kmsg.Request) (string, string, time.Duration) {
		s := req.(*kmsg.SyncGroupRequest)
		return s.Group, s.MemberID, 0
	})
	observe(kmsg.Heartbeat, func(req kmsg.Request) (string, string, time.Duration) {
		h := req.(*kmsg.HeartbeatRequest)
		return h.Group, h.MemberID, 0
	})
	observe(kmsg.OffsetCommit, func(req kmsg.Request) (string, string, time.Duration) {
		o := req.(*kmsg.OffsetCommitRequest)
		return o.Group, o.MemberID, 0
	})
	go r.run(ctx)
	return r
}

// saw records a request of a member; timeout, when not 0, is the silence
// its join allows.
func (r *reaper) saw(group, member string, timeout time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := memberKey{group, member}
	s, ok := r.seen[k]
	if !ok {
		s.timeout = defaultMemberTimeout
	}
	if timeout > 0 {
		s.timeout = timeout
	}
	s.at = time.Now()
	r.seen[k] = s
}

func (r *reaper) stop() {
	r.cancel()
	<-r.done
}

func (r *reaper) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(reapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.c.gate.isOffline() {
			continue // nobody can reach the cluster: silence proves nothing
		}
		for group, members := range r.silent(time.Now()) {
			if err := r.evict(ctx, group, members); err != nil && ctx.Err() == nil {
				r.c.logger.Warn("remove dead group members", "group", group, "err", err)
			}
		}
	}
}

// silent returns, by group, the members kfake still has that have been
// silent for longer than they may be, and forgets members kfake no longer
// has.
func (r *reaper) silent(now time.Time) map[string][]string {
	r.mu.Lock()
	groups := make(map[string]bool)
	for k := range r.seen {
		groups[k.group] = true
	}
	r.mu.Unlock()

	out := make(map[string][]string)
	for group := range groups {
		info := r.kc.GroupInfo(group)
		present := make(map[string]bool)
		if info != nil {
			for _, m := range info.Members {
				present[m.MemberID] = true
			}
		}
		r.mu.Lock()
		// A live member may wait in JoinGroup or SyncGroup, silent, for as
		// long as the group's longest rebalance timeout.
		var allowed time.Duration
		for k, s := range r.seen {
			if k.group == group {
				allowed = max(allowed, s.timeout)
			}
		}
		allowed += reapMargin
		for k, s := range r.seen {
			switch {
			case k.group != group || now.Sub(s.at) <= allowed:
			case !present[k.member]:
				delete(r.seen, k) // gone, or never admitted (a join that failed)
			default:
				out[group] = append(out[group], k.member)
			}
		}
		for id := range present {
			if _, ok := r.seen[memberKey{group, id}]; !ok {
				r.seen[memberKey{group, id}] = memberSeen{at: now, timeout: defaultMemberTimeout}
			}
		}
		r.mu.Unlock()
	}
	return out
}

// evict sends a LeaveGroup for members of group, as the superuser when the
// cluster authenticates; kfake removes them and rebalances the group.
func (r *reaper) evict(ctx context.Context, group string, members []string) error {
	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(r.bootstrap, ",")...)}
	if s := r.c.opts.SASL; s != nil {
		opts = append(opts, kgo.SASL(s.mechanism()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = group
	for _, id := range members {
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = id
		req.Members = append(req.Members, m)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("leave group: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("leave group: %w", err)
	}
	var errs []error
	for _, m := range resp.Members {
		err := kerr.ErrorForCode(m.ErrorCode)
		switch {
		case err == nil:
			r.c.logger.Warn("removed a group member that sent nothing for longer than its timeouts: its client died while joining",
				"group", group, "member", m.MemberID)
		case !errors.Is(err, kerr.UnknownMemberID): // gone meanwhile
			errs = append(errs, fmt.Errorf("member %s: %w", m.MemberID, err))
		}
		r.mu.Lock()
		delete(r.seen, memberKey{group, m.MemberID})
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}
