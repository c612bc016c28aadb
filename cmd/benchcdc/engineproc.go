package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/outboxpay/outboxpay/connect"
	"github.com/outboxpay/outboxpay/connect/rest"
	"github.com/outboxpay/outboxpay/internal/event"
)

// buildEngine builds ./cmd/outboxpay of the module the benchmark runs in.
func buildEngine(ctx context.Context, goTool, tmp string, log *slog.Logger) (string, error) {
	out, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module: %s env GOMOD: %w", goTool, err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run benchcdc from inside the outboxpay module (it builds ./cmd/outboxpay)")
	}
	bin := filepath.Join(tmp, "outboxpay")
	log.Info("building the engine", "binary", bin)
	cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/outboxpay")
	cmd.Dir = filepath.Dir(gomod)
	var buildOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buildOut, &buildOut
	c, err := startChild("go build", cmd)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := c.wait(ctx); err != nil {
		return "", fmt.Errorf("build ./cmd/outboxpay: %w\n%s", err, tail(buildOut.String(), 30))
	}
	return bin, nil
}

// engineProc is `outboxpay connect` running as a child process.
type engineProc struct {
	c       *child
	base    string // its REST API and /metrics
	rest    *rest.Client
	hc      *http.Client
	logPath string
	logFile *os.File
}

// startEngine runs `outboxpay connect` against the bench database and
// Kafka, and waits until its REST API answers.
func startEngine(ctx context.Context, bin string, env *benchEnv, tmp string, log *slog.Logger) (*engineProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dbEnv, err := connect.DatabaseEnv(env.url)
	if err != nil {
		return nil, err
	}
	vars := map[string]string{
		"DATABASE_URL":            env.url,
		"KAFKA_BOOTSTRAP_SERVERS": env.kafka.Bootstrap(),
		"CONNECT_ADDR":            net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		"LOG_LEVEL":               "info",
		"LOG_FORMAT":              "text",
	}
	for k, v := range dbEnv { // what outbox-connector.json's ${env:...} name
		vars[k] = v
	}

	p := &engineProc{
		base: "http://" + vars["CONNECT_ADDR"],
		// Uncompressed: gzip would cost the engine CPU on every scrape.
		hc:      &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}},
		logPath: filepath.Join(tmp, "engine.log"),
	}
	p.rest = rest.NewClient(p.base, p.hc)
	if p.logFile, err = os.Create(p.logPath); err != nil {
		return nil, fmt.Errorf("create engine log: %w", err)
	}
	cmd := exec.Command(bin, "connect")
	cmd.Env = withVars(clientEnv(), vars)
	cmd.Stdout, cmd.Stderr = p.logFile, p.logFile
	if p.c, err = startChild("outboxpay connect", cmd); err != nil {
		p.logFile.Close()
		return nil, err
	}
	env.sampler.engine.Store(int64(p.c.p.Pid()))
	log.Info("engine process started", "pid", p.c.p.Pid(), "rest", p.base, "log", p.logPath)
	if err := p.waitReady(ctx); err != nil {
		return nil, errors.Join(err, p.stop())
	}
	return p, nil
}

// withVars returns env with vars set, replacing earlier values.
func withVars(env []string, vars map[string]string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := vars[name]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady waits for the REST API to answer GET /.
func (p *engineProc) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		if err := p.alive(); err != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		_, err := p.rest.ServerInfo(ctx)
		return struct{}{}, err
	}, every(50*time.Millisecond)...)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("engine REST API at %s not answering: %w%s", p.base, ctx.Err(), p.logTail())
	}
	return err
}

// alive fails once the process has exited.
func (p *engineProc) alive() error {
	if !p.c.exited() {
		return nil
	}
	return fmt.Errorf("engine process exited: %v%s", p.c.p.Err(), p.logTail())
}

func (p *engineProc) logTail() string { return logTail(p.logPath) }

// logTail is the end of the log at path, for error messages.
func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return ""
	}
	return "; last lines of its log:\n" + tail(string(data), 20)
}

// register creates the connector (PUT /connectors/{name}/config).
func (p *engineProc) register(ctx context.Context, raw map[string]string) error {
	if _, _, err := p.rest.PutConnectorConfig(ctx, connectorName, raw); err != nil {
		return fmt.Errorf("register connector %s: %w", connectorName, err)
	}
	return nil
}

// metrics scrapes the engine's /metrics.
func (p *engineProc) metrics(ctx context.Context) (families, error) {
	if err := p.alive(); err != nil {
		return nil, err
	}
	return scrape(ctx, p.hc, p.base+"/metrics")
}

// status describes the connector's state, for error messages.
func (p *engineProc) status(ctx context.Context) string {
	st, err := p.rest.ConnectorStatus(ctx, connectorName)
	if err != nil {
		return fmt.Sprintf("connector status: %v", err)
	}
	s := "connector " + st.Connector.State
	for _, t := range st.Tasks {
		s += fmt.Sprintf(", task %d %s %s", t.ID, t.State, t.Trace)
	}
	return s
}

// peakRSS is the process's peak resident set (VmHWM), in bytes.
func (p *engineProc) peakRSS() (uint64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(p.c.p.Pid()) + "/status")
	if err != nil {
		return 0, fmt.Errorf("read engine status: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read engine status: %w", err)
	}
	return 0, errors.New("no VmHWM in the engine's /proc status")
}

// stop ends the engine: SIGTERM, SIGKILL if it lingers.
func (p *engineProc) stop() error {
	err := p.c.stop()
	if cerr := p.logFile.Close(); cerr != nil && !errors.Is(cerr, os.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	return err
}

// enginePass is (c): the engine process drains slot C to Kafka with
// acks=all. It is timed from the connector's registration until the
// engine's produced counter (records Kafka acknowledged) reaches the
// backlog, then Kafka's own count is checked.
func enginePass(ctx context.Context, env *benchEnv, eng *engineProc, events int, prof *profiler, log *slog.Logger) (passResult, uint64, error) {
	raw, _, err := env.connectorConfig(slotEngine)
	if err != nil {
		return passResult{}, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	before, err := eng.metrics(ctx)
	if err != nil {
		return passResult{}, 0, err
	}
	stopPerf := prof.startPerf(eng.c.p.Pid(), "engine-drain")
	stopGo := prof.startGo("kafka-inprocess-drain")
	win := env.sampler.begin()
	start := time.Now()
	if err := eng.register(ctx, raw); err != nil {
		win.end()
		stopGo()
		stopPerf()
		return passResult{}, 0, err
	}
	read := func(ctx context.Context) (float64, error) {
		mfs, err := eng.metrics(ctx)
		if err != nil {
			return 0, err
		}
		return mfs.counter(metricProduced), nil
	}
	p, err := waitCount(ctx, start, 20*time.Millisecond, events, read, log, "(c) events acknowledged by Kafka")
	cpu := win.end()
	stopGo()
	stopPerf()
	if err != nil {
		return passResult{}, 0, fmt.Errorf("%w (%s)", err, eng.status(context.WithoutCancel(ctx)))
	}

	res := passResult{events: events, elapsed: p.done, firstEvent: p.first, cpu: cpu}
	topic := event.Topic(event.AggregateOrder) // where the bench's OrderPaid rows go
	inKafka, err := topicRecords(env.kafka.Bootstrap(), topic)
	if err != nil {
		return res, 0, err
	}
	if inKafka != int64(events) {
		return res, 0, fmt.Errorf("kafka holds %d records on %s, want %d", inKafka, topic, events)
	}
	res.note = fmt.Sprintf("Kafka holds %d records on %s", inKafka, topic)
	if after, err := eng.metrics(ctx); err == nil {
		res.runtime = runtimeStats{
			gcCycles:  after.summaryCount(metricGCDuration) - before.summaryCount(metricGCDuration),
			heapInUse: uint64(after.counter(metricHeapInUse)),
			goSys:     uint64(after.counter(metricGoSys)),
		}
	}
	rss, err := eng.peakRSS()
	if err != nil {
		return res, 0, err
	}
	log.Info("(c) done", "events", events, "took", res.elapsed.Round(time.Millisecond), "events_per_s", int(res.rate()),
		"peak_rss_mb", rss>>20)
	return res, rss, nil
}
