package kafkacluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/outboxpay/outboxpay/internal/kafkaclient"
)

// clusterResource is the name Kafka gives the cluster resource of an ACL.
const clusterResource = "kafka-cluster"

// aclSyncTimeout bounds the admin requests that bring a restarted
// cluster's ACLs in line with Options.
const aclSyncTimeout = 30 * time.Second

var resourceTypes = map[string]kmsg.ACLResourceType{
	kafkaclient.ResourceTopic:   kmsg.ACLResourceTypeTopic,
	kafkaclient.ResourceGroup:   kmsg.ACLResourceTypeGroup,
	kafkaclient.ResourceCluster: kmsg.ACLResourceTypeCluster,
}

var operations = map[string]kmsg.ACLOperation{
	kafkaclient.OpRead:            kmsg.ACLOperationRead,
	kafkaclient.OpWrite:           kmsg.ACLOperationWrite,
	kafkaclient.OpCreate:          kmsg.ACLOperationCreate,
	kafkaclient.OpDescribe:        kmsg.ACLOperationDescribe,
	kafkaclient.OpDescribeConfigs: kmsg.ACLOperationDescribeConfigs,
	kafkaclient.OpIdempotentWrite: kmsg.ACLOperationIdempotentWrite,
}

// kacl is an ACL as Kafka's protocol states it.
type kacl struct {
	principal string
	rtype     kmsg.ACLResourceType
	name      string
	pattern   kmsg.ACLResourcePatternType
	op        kmsg.ACLOperation
	perm      kmsg.ACLPermissionType
	host      string
}

// toKafka converts an ACL of Options; validate has checked it.
func toKafka(a kafkaclient.ACL) kacl {
	k := kacl{
		principal: "User:" + a.Principal,
		rtype:     resourceTypes[a.Resource],
		name:      a.Name,
		pattern:   kmsg.ACLResourcePatternTypeLiteral,
		op:        operations[a.Operation],
		perm:      kmsg.ACLPermissionTypeAllow,
		host:      "*",
	}
	if a.Prefixed {
		k.pattern = kmsg.ACLResourcePatternTypePrefixed
	}
	if a.Resource == kafkaclient.ResourceCluster {
		k.name = clusterResource
	}
	return k
}

// validate checks s; its errors never contain a password.
func (s *SASL) validate() error {
	if s.Mechanism != kafkaclient.ScramSHA256 && s.Mechanism != kafkaclient.ScramSHA512 {
		return fmt.Errorf("kafkacluster: SASL mechanism must be %s or %s, not %q", kafkaclient.ScramSHA256, kafkaclient.ScramSHA512, s.Mechanism)
	}
	if s.Superuser == "" || s.SuperuserPassword == "" {
		return errors.New("kafkacluster: SASL needs a superuser and its password")
	}
	for name, pw := range s.Users {
		if name == "" || pw == "" {
			return fmt.Errorf("kafkacluster: SASL user %q without a name or password", name)
		}
		if name == s.Superuser {
			return fmt.Errorf("kafkacluster: SASL user %q is also the superuser", name)
		}
	}
	for _, a := range s.ACLs {
		if _, ok := s.Users[a.Principal]; !ok {
			return fmt.Errorf("kafkacluster: ACL %+v: unknown user %q", a, a.Principal)
		}
		if _, ok := resourceTypes[a.Resource]; !ok {
			return fmt.Errorf("kafkacluster: ACL %+v: unknown resource type %q", a, a.Resource)
		}
		if _, ok := operations[a.Operation]; !ok {
			return fmt.Errorf("kafkacluster: ACL %+v: unknown operation %q", a, a.Operation)
		}
		if (a.Resource == kafkaclient.ResourceCluster) != (a.Name == "") {
			return fmt.Errorf("kafkacluster: ACL %+v: a cluster ACL has no name, others have one", a)
		}
	}
	return nil
}

// kfakeOpts returns kfake's options for s: SASL and ACLs on, the superuser,
// the users and (for a new cluster) their ACLs.
func (s *SASL) kfakeOpts() []kfake.Opt {
	opts := []kfake.Opt{kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser(s.Mechanism, s.Superuser, s.SuperuserPassword)}
	for name, pw := range s.Users {
		var acls []kfake.ACL
		for _, a := range s.ACLs {
			if a.Principal != name {
				continue
			}
			k := toKafka(a)
			acls = append(acls, kfake.ACL{Resource: k.rtype, Name: k.name, Pattern: k.pattern, Operation: k.op, Allow: true, Host: k.host})
		}
		opts = append(opts, kfake.User(s.Mechanism, name, pw, acls...))
	}
	return opts
}

// mayCreate reports whether an ACL allows some user to create topic.
func (s *SASL) mayCreate(topic string) bool {
	for _, a := range s.ACLs {
		if a.Resource != kafkaclient.ResourceTopic || a.Operation != kafkaclient.OpCreate {
			continue
		}
		if a.Name == "*" || a.Name == topic || a.Prefixed && strings.HasPrefix(topic, a.Name) {
			return true
		}
	}
	return false
}

// forgetSavedUsers removes the users a previous run saved in dataDir, which
// kfake would load over the ones of Options.
func forgetSavedUsers(dataDir string) error {
	err := os.Remove(filepath.Join(dataDir, "sasl.json"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("kafkacluster: forget saved users: %w", err)
	}
	return nil
}

// mechanism returns the franz-go SASL mechanism of the superuser.
func (s *SASL) mechanism() sasl.Mechanism {
	auth := scram.Auth{User: s.Superuser, Pass: s.SuperuserPassword}
	if s.Mechanism == kafkaclient.ScramSHA512 {
		return auth.AsSha512Mechanism()
	}
	return auth.AsSha256Mechanism()
}

// syncACLs makes the running cluster's ACLs those of Options, as the
// superuser: a cluster loaded from DataDir has the ACLs its previous run
// saved, which kfake keeps over the ones of its options. Extra ACLs are
// deleted, missing ones created; usually there are none of either.
func (c *Cluster) syncACLs(ctx context.Context) error {
	s := c.opts.SASL
	ctx, cancel := context.WithTimeout(ctx, aclSyncTimeout)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(c.bootstrap, ",")...), kgo.SASL(s.mechanism()))
	if err != nil {
		return fmt.Errorf("kafkacluster: admin client: %w", err)
	}
	defer cl.Close()

	dreq := kmsg.NewPtrDescribeACLsRequest()
	dreq.ResourceType = kmsg.ACLResourceTypeAny
	dreq.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
	dreq.Operation = kmsg.ACLOperationAny
	dreq.PermissionType = kmsg.ACLPermissionTypeAny
	dresp, err := dreq.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(dresp.ErrorCode)
	}
	if err != nil {
		return fmt.Errorf("kafkacluster: describe ACLs: %w", err)
	}
	want := make(map[kacl]bool)
	for _, a := range s.ACLs {
		want[toKafka(a)] = true
	}
	have := make(map[kacl]bool)
	var extra []kacl
	for _, r := range dresp.Resources {
		for _, a := range r.ACLs {
			k := kacl{a.Principal, r.ResourceType, r.ResourceName, r.ResourcePatternType, a.Operation, a.PermissionType, a.Host}
			have[k] = true
			if !want[k] {
				extra = append(extra, k)
			}
		}
	}
	if len(extra) > 0 {
		req := kmsg.NewPtrDeleteACLsRequest()
		for _, k := range extra {
			f := kmsg.NewDeleteACLsRequestFilter()
			f.ResourceType, f.ResourceName, f.ResourcePatternType = k.rtype, kmsg.StringPtr(k.name), k.pattern
			f.Principal, f.Host, f.Operation, f.PermissionType = kmsg.StringPtr(k.principal), kmsg.StringPtr(k.host), k.op, k.perm
			req.Filters = append(req.Filters, f)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			err = firstError(resp.Results, func(r kmsg.DeleteACLsResponseResult) int16 { return r.ErrorCode })
		}
		if err != nil {
			return fmt.Errorf("kafkacluster: delete %d stale ACLs: %w", len(extra), err)
		}
	}
	req := kmsg.NewPtrCreateACLsRequest()
	for k := range want {
		if have[k] {
			continue
		}
		cr := kmsg.NewCreateACLsRequestCreation()
		cr.ResourceType, cr.ResourceName, cr.ResourcePatternType = k.rtype, k.name, k.pattern
		cr.Principal, cr.Host, cr.Operation, cr.PermissionType = k.principal, k.host, k.op, k.perm
		req.Creations = append(req.Creations, cr)
	}
	if len(req.Creations) > 0 {
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			err = firstError(resp.Results, func(r kmsg.CreateACLsResponseResult) int16 { return r.ErrorCode })
		}
		if err != nil {
			return fmt.Errorf("kafkacluster: create %d ACLs: %w", len(req.Creations), err)
		}
	}
	if len(extra) > 0 || len(req.Creations) > 0 {
		c.logger.Info("ACLs brought in line with the options", "deleted", len(extra), "created", len(req.Creations))
	}
	return nil
}

// firstError returns the error of the first of results whose code (as
// code reads it) is a Kafka error, or nil.
func firstError[R any](results []R, code func(R) int16) error {
	for _, r := range results {
		if err := kerr.ErrorForCode(code(r)); err != nil {
			return err
		}
	}
	return nil
}
