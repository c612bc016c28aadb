package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/internal/event"
)

// DLQ returns dead-lettered records, newest first: the newest DLQScan of
// each partition of the DLQ topics (q.Topic's alone when set), those of
// q.EventID alone when set, each with when it was re-driven one by one.
// Kafka's errors are logged and returned as ErrUpstream.
func (s *Service) DLQ(ctx context.Context, q DLQQuery) ([]DLQRecord, error) {
	n, err := limit(q.Limit, 100)
	if err != nil {
		return nil, err
	}
	topics := event.DLQTopics()
	if q.Topic != "" {
		if !slices.Contains(topics, q.Topic) {
			return nil, invalid("topic", "not a DLQ topic")
		}
		topics = []string{q.Topic}
	}
	r, err := consume.NewDLQReader(s.kafka)
	if err != nil {
		return nil, s.upstream("dlq: reader", err)
	}
	defer r.Close()
	parts, err := r.Partitions(ctx, topics)
	if err != nil {
		return nil, s.upstream("dlq: partitions", err)
	}
	for i := range parts {
		parts[i].From = max(parts[i].From, parts[i].End-int64(s.dlqScan))
	}
	var (
		recs []DLQRecord
		keys []recordKey
	)
	if _, err := r.Read(ctx, parts, false, func(m *kafka.Message) error {
		rec := dlqRecord(m)
		if q.EventID != uuid.Nil && (rec.EventID == nil || *rec.EventID != q.EventID) {
			return nil
		}
		recs = append(recs, rec)
		keys = append(keys, recordKey{rec.Topic, rec.Partition, rec.Offset})
		return nil
	}); err != nil {
		return nil, s.upstream("dlq: read", err)
	}
	at, err := redrivenAt(ctx, s.db, keys)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		if t, ok := at[recordKey{recs[i].Topic, recs[i].Partition, recs[i].Offset}]; ok {
			recs[i].RedrivenAt = &t
		}
	}
	slices.SortFunc(recs, func(a, b DLQRecord) int {
		return cmp.Or(b.Timestamp.Compare(a.Timestamp), cmp.Compare(a.Topic, b.Topic),
			cmp.Compare(a.Partition, b.Partition), cmp.Compare(b.Offset, a.Offset))
	})
	if len(recs) > n {
		recs = recs[:n]
	}
	if recs == nil {
		recs = []DLQRecord{}
	}
	return recs, nil
}

// upstream logs a Kafka error and returns ErrUpstream without its text
// (which can name an internal address); a done context is returned as is.
func (s *Service) upstream(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	s.logger.Warn(what, "err", err)
	return fmt.Errorf("%s: kafka: %w", what, ErrUpstream)
}

// dlqRecord reads a dead-lettered record's headers.
func dlqRecord(m *kafka.Message) DLQRecord {
	rec := DLQRecord{Topic: *m.TopicPartition.Topic, Partition: m.TopicPartition.Partition,
		Offset: int64(m.TopicPartition.Offset), Timestamp: m.Timestamp.UTC()}
	for _, h := range m.Headers {
		v := string(h.Value)
		switch h.Key {
		case event.HeaderID:
			if id, err := uuid.Parse(v); err == nil {
				rec.EventID = &id
			}
		case event.HeaderDLQTopic:
			rec.OriginalTopic = v
		case event.HeaderDLQHandler:
			rec.Handler = v
		case event.HeaderDLQReason:
			rec.Reason = v
		case event.HeaderDLQTime:
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				t = t.UTC()
				rec.DeadLetteredAt = &t
			}
		}
	}
	return rec
}

// Redrive re-drives dead-lettered records of a DLQ topic (one of
// event.DLQTopics(), else ErrNotFound) to their original topic, as
// `outboxpay replay` does (consume.ReplayRecord): the one record at
// Partition and Offset (ErrNotFound when the partition holds no record
// there), or, without them, every record from the replay group's committed
// offset to the topic's end when the call starts, moving that offset past
// them. Records are produced first, then recorded as re-driven with the
// audit row; a record re-driven before is skipped (Changed false when every
// one was). A failure part way records and audits what was re-driven, and
// returns ErrUpstream.
func (s *Service) Redrive(ctx context.Context, a Actor, rd Redrive) (Result, error) {
	reason, err := validActor(a)
	if err != nil {
		return Result{}, err
	}
	if !slices.Contains(event.DLQTopics(), rd.Topic) {
		return Result{}, fmt.Errorf("redrive %q: %w", rd.Topic, ErrNotFound)
	}
	if (rd.Partition == nil) != (rd.Offset == nil) {
		return Result{}, invalid("partition", "partition and offset go together")
	}
	if rd.Partition != nil && (*rd.Partition < 0 || *rd.Offset < 0) {
		return Result{}, invalid("offset", "partition and offset must not be negative")
	}
	s.redriveMu.Lock()
	defer s.redriveMu.Unlock()
	r, err := consume.NewDLQReader(s.kafka)
	if err != nil {
		return Result{}, s.upstream("redrive: reader", err)
	}
	defer r.Close()
	if rd.Partition != nil {
		return s.redriveOne(ctx, r, a.Name, reason, rd.Topic, *rd.Partition, *rd.Offset)
	}
	return s.redriveAll(ctx, r, a.Name, reason, rd.Topic)
}

func (s *Service) redriveOne(ctx context.Context, r *consume.DLQReader, actor, reason, topic string, partition int32, offset int64) (Result, error) {
	key := recordKey{topic, partition, offset}
	target := fmt.Sprintf("%s/%d/%d", topic, partition, offset)
	done, err := redrivenAt(ctx, s.db, []recordKey{key})
	if err != nil {
		return Result{}, err
	}
	if _, ok := done[key]; ok {
		id, err := s.audit(ctx, s.db, actor, ActionRedrive, target, reason, false, "re-driven before")
		return Result{AuditID: id}, err
	}
	m, err := r.ReadOne(ctx, topic, partition, offset)
	if errors.Is(err, consume.ErrNoRecord) {
		return Result{}, fmt.Errorf("redrive %s: %w", target, ErrNotFound)
	}
	if err != nil {
		return Result{}, s.upstream("redrive: read", err)
	}
	// A record before the replay group's offset was re-driven by a
	// re-drive of its whole topic (or `outboxpay replay`).
	pending, err := r.Pending(ctx, []string{topic})
	if err != nil {
		return Result{}, s.upstream("redrive: pending records", err)
	}
	if !slices.ContainsFunc(pending, func(rg consume.DLQRange) bool {
		return rg.Partition == partition && offset >= rg.From && offset < rg.End
	}) {
		id, err := s.audit(ctx, s.db, actor, ActionRedrive, target, reason, false, "re-driven before, with its topic")
		return Result{AuditID: id}, err
	}
	if err := s.pub.Publish(ctx, []event.Record{consume.ReplayRecord(m)}); err != nil {
		return Result{}, s.upstream("redrive: produce", err)
	}
	id, err := s.recordRedrive(ctx, actor, reason, target, []recordKey{key}, "")
	if err != nil {
		return Result{}, err
	}
	return Result{Changed: true, Redriven: 1, AuditID: id}, nil
}

func (s *Service) redriveAll(ctx context.Context, r *consume.DLQReader, actor, reason, topic string) (Result, error) {
	ranges, err := r.Pending(ctx, []string{topic})
	if err != nil {
		return Result{}, s.upstream("redrive: pending records", err)
	}
	spans := make([]dlqSpan, len(ranges))
	for i, rg := range ranges {
		spans[i] = dlqSpan{topic: rg.Topic, partition: rg.Partition, from: rg.From, end: rg.End}
	}
	before, err := s.redrivenWithin(ctx, spans)
	if err != nil {
		return Result{}, err
	}
	var sent []recordKey
	skipped := 0
	_, readErr := r.Read(ctx, ranges, true, func(m *kafka.Message) error {
		k := recordKey{*m.TopicPartition.Topic, m.TopicPartition.Partition, int64(m.TopicPartition.Offset)}
		if _, ok := before[k]; ok {
			skipped++
			return nil
		}
		if err := s.pub.Publish(ctx, []event.Record{consume.ReplayRecord(m)}); err != nil {
			return err
		}
		sent = append(sent, k)
		return nil
	})
	detail := fmt.Sprintf("%d re-driven, %d re-driven before", len(sent), skipped)
	if readErr != nil {
		detail += "; stopped by an error"
	}
	var id int64
	if len(sent) > 0 || readErr == nil {
		if id, err = s.recordRedrive(ctx, actor, reason, topic, sent, detail); err != nil {
			return Result{}, errors.Join(err, readErr)
		}
	}
	if readErr != nil {
		return Result{Changed: len(sent) > 0, Redriven: len(sent), AuditID: id}, s.upstream("redrive", readErr)
	}
	return Result{Changed: len(sent) > 0, Redriven: len(sent), AuditID: id}, nil
}

// recordRedrive writes the audit row of a re-drive and records keys as
// re-driven by it, in one transaction.
func (s *Service) recordRedrive(ctx context.Context, actor, reason, target string, keys []recordKey, detail string) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("record re-drive of %s: %w", target, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	id, err := s.audit(ctx, tx, actor, ActionRedrive, target, reason, len(keys) > 0, detail)
	if err != nil {
		return 0, err
	}
	if err := recordRedrives(ctx, tx, keys, id); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("record re-drive of %s: commit: %w", target, err)
	}
	return id, nil
}
