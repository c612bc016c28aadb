package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outboxpay/outboxpay/api"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/consumers/consume"
	"github.com/outboxpay/outboxpay/internal/kafkaclient"
	"github.com/outboxpay/outboxpay/internal/kit/devtoken"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/kit/kafkatest"
	"github.com/outboxpay/outboxpay/internal/kit/pgtest"
	"github.com/outboxpay/outboxpay/internal/kit/platformmock"
	"github.com/outboxpay/outboxpay/internal/kit/promtest"
	"github.com/outboxpay/outboxpay/internal/shop"
)

// system is everything `dev` runs, in this test process: a fresh database,
// an embedded Kafka, the CDC engine behind its Kafka Connect API with the
// connector registered, the three consumer groups, the platform mock and
// the API.
type system struct {
	*cdcRig
	cfg        config
	reg        *prometheus.Registry
	api        string
	connect    *rest.Client
	connectURL string
	platform   *platformmock.Server
	// issuer signs the tokens the API accepts (AUTH_PUBLIC_KEY_FILE).
	issuer  *devtoken.Issuer
	stop    context.CancelFunc
	stopped chan error
	// stopGroups stops the consumer groups started by startGroups.
	stopGroups func()
}

func newSystem(t *testing.T) *system {
	t.Helper()
	r := newCDCRig(t)
	s := &system{cdcRig: r, reg: prometheus.NewRegistry(), platform: platformmock.New(platformmock.Config{Seed: 1})}
	pm := httptest.NewServer(s.platform)
	t.Cleanup(pm.Close)

	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnectAddr = "127.0.0.1:0"
	cfg.PlatformURL = pm.URL
	cfg.PlatformTimeout = 2 * time.Second
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.PlatformMaxTries = 20 // a 50% failing platform must not exhaust them
	// A record whose outbox row never shows up (the poison record below)
	// holds its partition this long.
	cfg.ConsumerVisibilityWindow = 3 * time.Second
	s.cfg = cfg
	logger := slog.New(slog.DiscardHandler)

	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.stopped = cancel, make(chan error, 1)
	d := testDeps(cfg, r.db)
	d.logger, d.reg, d.kafkaAs, d.lookup = logger, s.reg, plainKafka(r.bootstrap), r.lookup
	s.connectURL = goServeConnect(t, ctx, d, s.stopped)
	s.connect = rest.NewClient(s.connectURL, &http.Client{Timeout: 10 * time.Second})
	if _, _, err := s.connect.PutConnectorConfig(ctx, r.name, r.config); err != nil {
		t.Fatal(err)
	}
	r.waitSlot(true)

	s.startGroups()

	// The API verifies tokens with the issuer's public key, as `api` with
	// AUTH_PUBLIC_KEY_FILE does.
	if s.issuer, err = devtoken.New("system-test", cfg.AuthAudience); err != nil {
		t.Fatal(err)
	}
	pub, err := s.issuer.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	authCfg := cfg
	authCfg.AuthIssuer, authCfg.AuthPublicKeyFile = s.issuer.Name, filepath.Join(t.TempDir(), "auth.pub")
	if err := os.WriteFile(authCfg.AuthPublicKeyFile, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	auth, err := apiAuth(ctx, authCfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	e, err := api.New(shop.New(r.db), api.Config{MaxBodyBytes: 1 << 16, RequestTimeout: 10 * time.Second,
		Ready: r.db.PingContext, Registerer: s.reg, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := httptest.NewServer(e)
	s.api = apiSrv.URL
	t.Cleanup(func() {
		apiSrv.Close()
		s.stopGroups()
		cancel()
		if err := <-s.stopped; err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return s
}

// startGroups runs the consumer groups until stopGroups.
func (s *system) startGroups() {
	s.t.Helper()
	d := testDeps(s.cfg, s.db)
	d.reg, d.kafkaAs = prometheus.NewRegistry(), plainKafka(s.bootstrap)
	groups, err := consumerGroups(d)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runGroups(ctx, groups) }()
	var once sync.Once
	s.stopGroups = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				s.t.Errorf("consumer groups: %v", err)
			}
		})
	}
}

// call sends a JSON request to the API as user (a token with every scope)
// and decodes the response into out.
func (s *system) call(user int64, method, path string, body any, want int, out any) {
	s.t.Helper()
	var b strings.Builder
	if body != nil {
		_ = json.NewEncoder(&b).Encode(body)
	}
	token, err := s.issuer.Token(user, api.Scopes(), time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	req, _ := http.NewRequest(method, s.api+path, strings.NewReader(b.String()))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		var p map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&p)
		s.t.Fatalf("%s %s: %d, want %d: %v", method, path, resp.StatusCode, want, p)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (s *system) newUser(balance int64) int64 { return pgtest.NewUser(s.t, s.db, balance) }

func (s *system) newDetail(price int64, stock int) int64 {
	return pgtest.NewProductDetail(s.t, s.db, price, stock)
}

func (s *system) stock(detail int64) int {
	var n int
	if err := s.db.QueryRow(`SELECT stock FROM product_details WHERE id = $1`, detail).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}

func (s *system) balance(user int64) int64 {
	var n int64
	if err := s.db.QueryRow(`SELECT balance FROM users WHERE id = $1`, user).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}

// orderAndPay places an order of one item and pays it.
func (s *system) orderAndPay(user, detail int64, qty int) shop.Order {
	s.t.Helper()
	var o shop.Order
	s.call(user, "POST", "/orders", map[string]any{"userId": user, "items": []any{map[string]any{"productDetailId": detail, "quantity": qty}}}, 201, &o)
	s.call(user, "POST", fmt.Sprintf("/orders/%d/payment", o.OrderID), map[string]any{"userId": user}, 201, nil)
	return o
}

// owner is the user who placed the order.
func (s *system) owner(order int64) int64 {
	s.t.Helper()
	var user int64
	if err := s.db.QueryRow(`SELECT user_id FROM orders WHERE id = $1`, order).Scan(&user); err != nil {
		s.t.Fatal(err)
	}
	return user
}

// waitComplete waits until every event of the orders is COMPLETE and
// returns the orders as the API shows them.
func (s *system) waitComplete(orders ...int64) map[int64]shop.OrderView {
	s.t.Helper()
	views := map[int64]shop.OrderView{}
	eventually.True(s.t, 90*time.Second, fmt.Sprintf("orders %v COMPLETE", orders), func() (bool, error) {
		for _, id := range orders {
			var v shop.OrderView
			s.call(s.owner(id), "GET", fmt.Sprintf("/orders/%d", id), nil, 200, &v)
			views[id] = v
			if len(v.Events) < 2 {
				return false, fmt.Errorf("order %d has %d events", id, len(v.Events))
			}
			for _, e := range v.Events {
				if e.Status != "COMPLETE" {
					return false, fmt.Errorf("order %d: %s is %s", id, e.Type, e.Status)
				}
			}
		}
		return true, nil
	})
	return views
}

// A paid order's events all become COMPLETE; stock is taken once and the
// platform received the payment once.
func TestPaidOrderBecomesComplete(t *testing.T) {
	s := newSystem(t)
	user, detail := s.newUser(100000), s.newDetail(2500, 10)
	o := s.orderAndPay(user, detail, 3)
	v := s.waitComplete(o.OrderID)[o.OrderID]
	if v.Status != shop.OrderPaid || len(v.Events) != 2 {
		t.Fatalf("order %+v", v)
	}
	if got := s.stock(detail); got != 7 {
		t.Errorf("stock %d, want 7", got)
	}
	st := s.platform.Stats()
	if st.FirstDeliveries != 1 {
		t.Errorf("platform stats %+v, want one first delivery", st)
	}
	eventually.True(t, time.Minute, "both rows marked published by the tracker", func() (bool, error) {
		var published int
		err := s.db.QueryRow(`SELECT count(*) FROM outbox WHERE published_at IS NOT NULL AND completed_at IS NOT NULL`).Scan(&published)
		return published == 2, err
	})
}

// When stock runs short after payment, the order is cancelled and refunded
// once, PaymentRefunded reaches the platform once, and stock never goes
// below zero.
func TestShortStockRefunds(t *testing.T) {
	s := newSystem(t)
	detail := s.newDetail(1000, 2)
	users := []int64{s.newUser(5000), s.newUser(5000), s.newUser(5000)}
	var orders []int64
	for _, u := range users {
		var o shop.Order
		s.call(u, "POST", "/orders", map[string]any{"userId": u, "items": []any{map[string]any{"productDetailId": detail, "quantity": 1}}}, 201, &o)
		orders = append(orders, o.OrderID)
	}
	for i, u := range users { // all three pass the order-time check; only two can be served
		s.call(u, "POST", fmt.Sprintf("/orders/%d/payment", orders[i]), map[string]any{"userId": u}, 201, nil)
	}
	views := s.waitComplete(orders...)
	cancelled := 0
	for i, id := range orders {
		v := views[id]
		switch v.Status {
		case shop.OrderPaid:
			if b := s.balance(users[i]); b != 4000 {
				t.Errorf("user of paid order %d: balance %d, want 4000", id, b)
			}
		case shop.OrderCancelled:
			cancelled++
			if b := s.balance(users[i]); b != 5000 {
				t.Errorf("user of cancelled order %d: balance %d, want 5000 (refunded once)", id, b)
			}
			types := map[string]bool{}
			for _, e := range v.Events {
				types[e.Type] = true
			}
			if !types["PaymentRefunded"] {
				t.Errorf("cancelled order %d has no PaymentRefunded event: %+v", id, v.Events)
			}
		default:
			t.Errorf("order %d is %s", id, v.Status)
		}
	}
	if cancelled != 1 || s.stock(detail) != 0 {
		t.Fatalf("%d orders cancelled, stock %d; want 1 and 0", cancelled, s.stock(detail))
	}
	var refunds int
	for _, e := range s.platform.Events() {
		if e.EventType == "PaymentRefunded" {
			refunds++
		}
	}
	if st := s.platform.Stats(); refunds != 1 || st.FirstDeliveries != 4 {
		t.Errorf("platform: %d refunds, stats %+v; want 1 refund among 4 first deliveries", refunds, st)
	}
}

// A platform that fails half of the calls and is slow: every event still
// becomes COMPLETE and the platform records each once.
func TestFlakyPlatform(t *testing.T) {
	s := newSystem(t)
	s.platform.SetFaults(0.5, 30*time.Millisecond, 0)
	user, detail := s.newUser(1_000_000), s.newDetail(100, 100)
	var orders []int64
	for range 10 {
		orders = append(orders, s.orderAndPay(user, detail, 1).OrderID)
	}
	s.waitComplete(orders...)
	st := s.platform.Stats()
	if st.FirstDeliveries != 10 || st.Failed == 0 {
		t.Errorf("platform stats %+v: want 10 first deliveries and some injected failures", st)
	}
	if s.stock(detail) != 90 {
		t.Errorf("stock %d, want 90", s.stock(detail))
	}
}

// Every record delivered a second time (the groups' offsets reset to the
// beginning): the effects happen once.
func TestRedeliveryHasEffectsOnce(t *testing.T) {
	s := newSystem(t)
	user, detail := s.newUser(100000), s.newDetail(1000, 10)
	var orders []int64
	for range 3 {
		orders = append(orders, s.orderAndPay(user, detail, 2).OrderID)
	}
	s.waitComplete(orders...)

	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": s.bootstrap, "enable.metrics.push": false})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	committed := func(group string) ([]kafka.TopicPartition, int64, error) {
		res, err := admin.ListConsumerGroupOffsets(ctx, []kafka.ConsumerGroupTopicPartitions{{Group: group}})
		if err != nil {
			return nil, 0, err
		}
		var sum int64
		parts := res.ConsumerGroupsTopicPartitions[0].Partitions
		for _, tp := range parts {
			if tp.Offset > 0 {
				sum += int64(tp.Offset)
			}
		}
		return parts, sum, nil
	}
	// Every group has committed past all 6 events before they are rewound.
	want := map[string]int64{"stock": 3, "data-platform": 3, "outbox-tracker": 6}
	for group, n := range want {
		eventually.True(t, time.Minute, group+" committed", func() (bool, error) {
			_, sum, err := committed(group)
			return sum >= n, err
		})
	}
	s.stopGroups()
	// A handler may have POSTed an event twice the first time round (a
	// retry), which the platform absorbs; the replay must POST nothing.
	received := s.platform.Stats().Received

	// Replay from the beginning: a new consumer group on the same topics
	// would be another subscriber, so rewind the real groups' offsets.
	for group := range want {
		parts, _, err := committed(group)
		if err != nil {
			t.Fatal(err)
		}
		var rewind []kafka.TopicPartition
		for _, tp := range parts {
			tp.Offset = 0
			rewind = append(rewind, tp)
		}
		if _, err := admin.AlterConsumerGroupOffsets(ctx, []kafka.ConsumerGroupTopicPartitions{{Group: group, Partitions: rewind}}); err != nil {
			t.Fatalf("rewind %s: %v", group, err)
		}
	}
	reg := prometheus.NewRegistry()
	d := testDeps(s.cfg, s.db)
	d.reg, d.kafkaAs = reg, plainKafka(s.bootstrap)
	groups, err := consumerGroups(d)
	if err != nil {
		t.Fatal(err)
	}
	gctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runGroups(gctx, groups) }()
	defer func() { cancel(); <-done }()

	// 3 OrderPaid and 3 PaymentCompleted seen again, as duplicates.
	eventually.True(t, time.Minute, "every event delivered again", func() (bool, error) {
		stock := promtest.Value(t, reg, "outboxpay_consumer_records_total", "group", "stock", "result", "duplicate")
		platform := promtest.Value(t, reg, "outboxpay_consumer_records_total", "group", "data-platform", "result", "duplicate")
		return stock >= 3 && platform >= 3, fmt.Errorf("duplicates seen: stock %v, data-platform %v", stock, platform)
	})
	if got := s.stock(detail); got != 4 {
		t.Errorf("stock %d, want 4 (taken once per order)", got)
	}
	if b := s.balance(user); b != 100000-3*2000 {
		t.Errorf("balance %d", b)
	}
	if st := s.platform.Stats(); st.FirstDeliveries != 3 || st.Received != received {
		t.Errorf("platform %+v (received %d before the replay): want each payment once, nothing POSTed again", st, received)
	}
}

// A poison record goes to the DLQ with its reason and origin, and later
// records of its partition are still handled. A record dead-lettered because
// the platform was down is replayed, once the platform is back, and
// completes.
func TestPoisonRecordsAndReplay(t *testing.T) {
	s := newSystem(t)
	user, detail := s.newUser(100000), s.newDetail(1000, 10)

	// A payment event nobody can handle (no outbox row has its id), on the
	// partition of the user's key.
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": s.bootstrap, "partitioner": "murmur2_random", "enable.metrics.push": false})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	topic, poisonID := "outbox.event.payment", uuid.NewString()
	delivered := make(chan kafka.Event, 1)
	if err := p.Produce(&kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
		Key:            []byte(fmt.Sprint(user)), Value: []byte(`{"paymentId": 1}`),
		Headers: []kafka.Header{{Key: "id", Value: []byte(poisonID)}, {Key: "eventType", Value: []byte("PaymentCompleted")}},
	}, delivered); err != nil {
		t.Fatal(err)
	}
	<-delivered
	o := s.orderAndPay(user, detail, 1) // after the poison, same partition
	s.waitComplete(o.OrderID)

	dlq := kafkatest.ReadAll(t, s.bootstrap, []string{"outbox.event.payment.dlq"}, 1, time.Minute)
	if len(dlq) != 1 || kafkatest.Header(dlq[0], "id") != poisonID {
		t.Fatalf("DLQ holds %d records, want the poison one", len(dlq))
	}
	for h, want := range map[string]string{"dlq.handler": "data-platform", "dlq.original.topic": topic, "dlq.reason": "outbox row not found"} {
		if got := kafkatest.Header(dlq[0], h); !strings.Contains(got, want) {
			t.Errorf("DLQ header %s = %q, want %q in it", h, got, want)
		}
	}
	if kafkatest.Header(dlq[0], "dlq.original.offset") == "" || kafkatest.Header(dlq[0], "dlq.original.partition") == "" {
		t.Error("DLQ record lacks its original partition and offset")
	}

	// The platform is down past the tries: the payment is dead-lettered.
	s.stopGroups()
	s.cfg.PlatformMaxTries = 3
	s.startGroups()
	s.platform.SetFaults(1, 0, 0)
	o2 := s.orderAndPay(user, detail, 1)
	var completedID string
	eventually.True(t, time.Minute, "payment dead-lettered", func() (bool, error) {
		msgs, err := kafkatest.Read(s.bootstrap, []string{"outbox.event.payment.dlq"}, 2, time.Second)
		if len(msgs) == 2 {
			completedID = kafkatest.Header(msgs[len(msgs)-1], "id")
		}
		return len(msgs) == 2, err
	})
	var status string
	if err := s.db.QueryRow(`SELECT status FROM outbox WHERE id = $1`, completedID).Scan(&status); err != nil || status == "COMPLETE" {
		t.Fatalf("dead-lettered payment row is %s (%v)", status, err)
	}

	// Fixed: replay. The poison record goes back to the DLQ; the payment completes.
	s.platform.SetFaults(0, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := consume.Replay(ctx, kafkaclient.Config{Bootstrap: s.bootstrap}, []string{"outbox.event.payment.dlq"}, nil)
	if err != nil || n != 2 {
		t.Fatalf("replayed %d (%v), want 2", n, err)
	}
	s.waitComplete(o2.OrderID)
	if again, err := consume.Replay(ctx, kafkaclient.Config{Bootstrap: s.bootstrap}, []string{"outbox.event.payment.dlq"}, nil); err != nil || again != 1 {
		t.Fatalf("second replay: %d (%v), want only the poison record dead-lettered again", again, err)
	}
}

// startReconciler runs the reconciler (and lag exporter) with short
// thresholds until the test ends, and returns its registry.
func (s *system) startReconciler() *prometheus.Registry {
	s.t.Helper()
	cfg := s.cfg
	cfg.ReconcileInterval = 200 * time.Millisecond
	cfg.ReconcileStuckAfter = 500 * time.Millisecond
	cfg.ReconcileRepublishAfter = time.Second
	cfg.ReconcilePublishedStuckAfter = 3 * time.Second
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		d := testDeps(cfg, s.db)
		d.reg, d.kafkaAs = reg, plainKafka(s.bootstrap)
		done <- reconcileAndExport(ctx, d, s.connectURL)
	}()
	s.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			s.t.Errorf("reconciler: %v", err)
		}
	})
	return reg
}

// A connector paused past stuck-after: the reconciler republishes the stuck
// rows and they become COMPLETE; when the connector resumes and sends them
// again, nothing happens twice.
func TestReconcilerRepublishesWhileConnectorPaused(t *testing.T) {
	s := newSystem(t)
	reg := s.startReconciler()
	ctx := context.Background()
	if err := s.connect.PauseConnector(ctx, s.name); err != nil {
		t.Fatal(err)
	}
	s.waitSlot(false)
	user, detail := s.newUser(100000), s.newDetail(1000, 10)
	o := s.orderAndPay(user, detail, 2)
	s.waitComplete(o.OrderID)
	// The counter is added to after the republished rows' locks are released.
	eventually.True(t, 10*time.Second, "republish_init counted", func() (bool, error) {
		n := promtest.Value(t, reg, "outboxpay_reconciler_actions_total", "action", "republish_init")
		return n >= 2, fmt.Errorf("republish_init actions %v, want at least 2", n)
	})
	if err := s.connect.ResumeConnector(ctx, s.name); err != nil {
		t.Fatal(err)
	}
	s.waitSlot(true)
	// The engine sends the two events again; the handlers see duplicates.
	s.waitOnKafkaTopics([]string{"outbox.event.order", "outbox.event.payment"}, 4)
	if got := s.stock(detail); got != 8 {
		t.Errorf("stock %d, want 8", got)
	}
	if st := s.platform.Stats(); st.FirstDeliveries != 1 {
		t.Errorf("platform %+v: want one first delivery", st)
	}
}

// A FAILED connector task is restarted by the reconciler once rows are stuck.
func TestReconcilerRestartsFailedConnector(t *testing.T) {
	s := newSystem(t)
	if _, err := s.db.Exec(`CREATE PUBLICATION other_publication WITH (publish = 'insert')`); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	broken := clone(s.config)
	broken["publication.name"] = "other_publication"
	if _, _, err := s.connect.PutConnectorConfig(ctx, s.name, broken); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, time.Minute, "task FAILED", func() (bool, error) {
		st, err := s.connect.ConnectorStatus(ctx, s.name)
		return err == nil && len(st.Tasks) == 1 && st.Tasks[0].State == "FAILED", err
	})
	reg := s.startReconciler()
	user, detail := s.newUser(100000), s.newDetail(1000, 10)
	s.orderAndPay(user, detail, 1)
	if _, err := s.db.Exec(`ALTER PUBLICATION other_publication ADD TABLE outbox`); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, time.Minute, "reconciler restarted the connector", func() (bool, error) {
		st, err := s.connect.ConnectorStatus(ctx, s.name)
		restarts := promtest.Value(t, reg, "outboxpay_reconciler_actions_total", "action", "restart_connector")
		return err == nil && restarts >= 1 && len(st.Tasks) == 1 && st.Tasks[0].State == "RUNNING",
			fmt.Errorf("restarts %v, status %+v", restarts, st)
	})
}

// waitOnKafkaTopics waits until the topics hold at least n records.
func (s *system) waitOnKafkaTopics(topics []string, n int64) {
	s.t.Helper()
	eventually.True(s.t, time.Minute, fmt.Sprintf("%d records on %v", n, topics), func() (bool, error) {
		got, err := kafkatest.Count(s.bootstrap, topics)
		return got >= n, err
	})
}
