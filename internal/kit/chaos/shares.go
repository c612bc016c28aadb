package chaos

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// share is what one replica of a consumer group handled, as its worker
// metrics (outboxpay_consumer_records_total) counted it.
type share struct {
	// OK counts the records whose effects it applied; All every record it
	// handled (ok, skipped, duplicate, dlq).
	OK, All int64
}

// shares follows the records each consumer replica handles, by scraping
// its /metrics every second. A process's counters start again at 0 when it
// restarts; shares adds up its lifetimes. What a process handled after its
// last scrape before a kill is not counted: the counts are lower bounds.
type shares struct {
	mu     sync.Mutex
	last   map[string]scrape // by process
	total  map[string]share  // by process
	client *http.Client
}

// scrape is one reading of a process's counters, in its generation.
type scrape struct {
	gen int
	share
}

func newShares() *shares {
	return &shares{last: map[string]scrape{}, total: map[string]share{},
		client: &http.Client{Timeout: 2 * time.Second}}
}

// run scrapes every replica of s each second until ctx ends.
func (sh *shares) run(ctx context.Context, s *system) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		sh.scrapeAll(ctx, s)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// scrapeAll reads every replica's counters once; a replica that does not
// answer (being killed or starting) is skipped.
func (sh *shares) scrapeAll(ctx context.Context, s *system) {
	for group, reps := range s.consumers {
		for _, r := range reps {
			gen := s.procs[r.name].generation()
			got, err := sh.read(ctx, r.metrics+"/metrics", group)
			if err != nil || gen != s.procs[r.name].generation() {
				continue
			}
			sh.add(r.name, scrape{gen: gen, share: got})
		}
	}
}

// add takes a reading of a process: what it counted since the previous
// reading of the same generation, or all of it in a new generation.
func (sh *shares) add(name string, now scrape) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	prev, ok := sh.last[name]
	if !ok || prev.gen != now.gen {
		prev = scrape{gen: now.gen}
	}
	t := sh.total[name]
	t.OK += max(0, now.OK-prev.OK)
	t.All += max(0, now.All-prev.All)
	sh.total[name], sh.last[name] = t, now
}

// get returns what each process handled so far.
func (sh *shares) get() map[string]share {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	out := make(map[string]share, len(sh.total))
	for k, v := range sh.total {
		out[k] = v
	}
	return out
}

// read fetches a /metrics page and sums group's records counters.
func (sh *shares) read(ctx context.Context, url, group string) (share, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return share{}, err
	}
	resp, err := sh.client.Do(req)
	if err != nil {
		return share{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return share{}, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parseRecords(resp.Body, group)
}

// recordsMetric is the consumer workers' counter of handled records.
const recordsMetric = "outboxpay_consumer_records_total"

// parseRecords sums the records counters of group in a Prometheus text
// exposition: all results, and "ok" alone.
func parseRecords(r io.Reader, group string) (share, error) {
	var out share
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, recordsMetric+"{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		if !strings.Contains(","+labels+",", `,group="`+group+`",`) {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return share{}, fmt.Errorf("parse %q: %w", line, err)
		}
		out.All += int64(v)
		if strings.Contains(","+labels+",", `,result="ok",`) {
			out.OK += int64(v)
		}
	}
	return out, sc.Err()
}
