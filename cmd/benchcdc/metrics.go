package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The engine's metrics the benchmark reads.
const (
	metricCaptured    = "outboxpay_cdc_events_captured_total"
	metricProduced    = "outboxpay_cdc_events_produced_total"
	metricCommitToAck = "outboxpay_cdc_commit_to_ack_seconds"
	metricGCDuration  = "go_gc_duration_seconds"
	metricHeapInUse   = "go_memstats_heap_inuse_bytes"
	metricGoSys       = "go_memstats_sys_bytes"
)

// families are parsed metric families by name.
type families map[string]*dto.MetricFamily

// scrape fetches and parses a Prometheus text endpoint.
func scrape(ctx context.Context, hc *http.Client, url string) (families, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("scrape %s: %s: %s", url, resp.Status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: parse: %w", url, err)
	}
	return mfs, nil
}

// byName indexes gathered metric families by name.
func byName(mfs []*dto.MetricFamily) families {
	f := make(families, len(mfs))
	for _, mf := range mfs {
		f[mf.GetName()] = mf
	}
	return f
}

// counter sums a counter (or gauge) over its label sets; 0 if absent.
func (f families) counter(name string) float64 {
	mf := f[name]
	if mf == nil {
		return 0
	}
	sum := 0.0
	for _, m := range mf.GetMetric() {
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return sum
}

// summaryCount sums a summary's observation counts over its label sets.
func (f families) summaryCount(name string) uint64 {
	mf := f[name]
	if mf == nil {
		return 0
	}
	var n uint64
	for _, m := range mf.GetMetric() {
		n += m.GetSummary().GetSampleCount()
	}
	return n
}

// summaryMax is the largest quantile-1 value of a summary over its label
// sets (go_gc_duration_seconds: the longest of the recent GC pauses); NaN
// if absent.
func (f families) summaryMax(name string) float64 {
	out := math.NaN()
	for _, m := range f[name].GetMetric() {
		for _, q := range m.GetSummary().GetQuantile() {
			if q.GetQuantile() == 1 && (math.IsNaN(out) || q.GetValue() > out) {
				out = q.GetValue()
			}
		}
	}
	return out
}

// histogram is a histogram's cumulative buckets, summed over label sets.
type histogram struct {
	bounds []float64 // upper bounds, ascending, without +Inf
	cum    []uint64  // cumulative counts per bound
	count  uint64    // all observations (the +Inf bucket)
	sum    float64
}

// histogram returns the named histogram; empty if absent.
func (f families) histogram(name string) histogram {
	var h histogram
	mf := f[name]
	if mf == nil {
		return h
	}
	byBound := make(map[float64]uint64)
	for _, m := range mf.GetMetric() {
		hm := m.GetHistogram()
		h.count += hm.GetSampleCount()
		h.sum += hm.GetSampleSum()
		for _, b := range hm.GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) {
				byBound[b.GetUpperBound()] += b.GetCumulativeCount()
			}
		}
	}
	for b := range byBound {
		h.bounds = append(h.bounds, b)
	}
	sort.Float64s(h.bounds)
	for _, b := range h.bounds {
		h.cum = append(h.cum, byBound[b])
	}
	return h
}

// minus returns the observations made between before and h.
func (h histogram) minus(before histogram) histogram {
	d := histogram{bounds: h.bounds, cum: make([]uint64, len(h.cum)), count: h.count - before.count, sum: h.sum - before.sum}
	for i := range h.cum {
		d.cum[i] = h.cum[i]
		if i < len(before.cum) {
			d.cum[i] -= before.cum[i]
		}
	}
	return d
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile
// does: linear interpolation inside the bucket holding the rank. Above the
// highest bound it returns that bound.
func (h histogram) quantile(q float64) float64 {
	if h.count == 0 || len(h.bounds) == 0 {
		return math.NaN()
	}
	rank := q * float64(h.count)
	prevBound, prevCum := 0.0, 0.0
	for i, b := range h.bounds {
		c := float64(h.cum[i])
		if c >= rank {
			if c == prevCum {
				return b
			}
			return prevBound + (b-prevBound)*(rank-prevCum)/(c-prevCum)
		}
		prevBound, prevCum = b, c
	}
	return h.bounds[len(h.bounds)-1]
}

// bucketOf returns the bounds of the bucket the q-quantile falls in.
func (h histogram) bucketOf(q float64) (lower, upper float64) {
	if h.count == 0 || len(h.bounds) == 0 {
		return math.NaN(), math.NaN()
	}
	rank := q * float64(h.count)
	lower = 0
	for i, b := range h.bounds {
		if float64(h.cum[i]) >= rank {
			return lower, b
		}
		lower = b
	}
	return lower, math.Inf(1)
}

// maxBucket returns the bounds of the bucket holding the largest
// observation: lower < max <= upper; upper is +Inf above the highest bound.
func (h histogram) maxBucket() (lower, upper float64) {
	if h.count == 0 || len(h.bounds) == 0 {
		return math.NaN(), math.NaN()
	}
	for i := len(h.bounds) - 1; i >= 0; i-- {
		below := uint64(0)
		if i > 0 {
			below = h.cum[i-1]
		}
		if i == len(h.bounds)-1 && h.count > h.cum[i] {
			return h.bounds[i], math.Inf(1)
		}
		if h.cum[i] > below {
			if i == 0 {
				return 0, h.bounds[0]
			}
			return h.bounds[i-1], h.bounds[i]
		}
	}
	return 0, h.bounds[0]
}
