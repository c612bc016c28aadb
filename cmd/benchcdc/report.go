package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/outboxpay/outboxpay/internal/kit/benchconsole"
)

// The targets.
const (
	targetDecodeRatio = 0.9
	targetRSSBytes    = 100e6
	targetP99         = 25 * time.Millisecond
)

// results is everything the report prints.
type results struct {
	opts      options
	tools     pgTools
	cpus      int
	pgVersion string
	backlog   backlogResult
	decode    passResult // (a)
	chunked   passResult // (a2)
	recv      passResult // (b)
	engine    passResult // (c)
	rssDrain  uint64     // engine VmHWM after (c), bytes
	rssEnd    uint64     // engine VmHWM after the steady load
	steady    steadyResult
	profiles  []string
	took      time.Duration
	console   *benchconsole.Result // open during (c) and the steady load; nil: none was
}

func printReport(w io.Writer, r *results) {
	o := r.opts
	fmt.Fprintf(w, "\n== make bench-cdc: the outboxpay CDC engine ==\n\n")
	fmt.Fprintf(w, "PostgreSQL %s (%s), private cluster, non-durable (fsync=off, full_page_writes=off; synchronous_commit=on)\n",
		r.pgVersion, r.tools.dir)
	fmt.Fprintf(w, "Kafka: kfake in the bench process, 3 brokers, 3 partitions; the engine produces with acks=all, idempotent\n")
	fmt.Fprintf(w, "Machine: %d CPUs; every process below shares them\n", r.cpus)
	if r.console != nil {
		fmt.Fprintf(w, "Console: `outboxpay console` %s\n", r.console)
	} else {
		fmt.Fprintf(w, "Console: %s\n", r.console)
	}
	fmt.Fprintf(w, "Backlog: %s single-row outbox transactions (pgbench -c %d -j %d, %d keys) in %s s (%s tps); "+
		"4 pgoutput slots created before it; WAL end %s\n\n",
		thousands(r.backlog.events), o.clients, max(1, o.clients/2), aggregateKeys,
		seconds(r.backlog.elapsed), thousands(int(r.backlog.tps)), r.backlog.endLSN)

	printPasses(w, r)
	printCPU(w, r)
	printSteady(w, r)
	printTargets(w, r)
	printProfiles(w, r)
	fmt.Fprintf(w, "\nbench-cdc took %s\n", r.took.Round(time.Second))
}

func printPasses(w io.Writer, r *results) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "Backlog drain, same backlog, one slot each\tevents\tseconds\tevents/s\tfirst event\tslot txns decoded\t")
	row := func(name string, p passResult, decoded string) {
		first := "-"
		if p.firstEvent > 0 {
			first = p.firstEvent.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", name, thousands(p.events), seconds(p.elapsed),
			thousands(int(p.rate())), first, decoded)
	}
	row("(a) engine's reader, decode-only (discard), in-process", r.decode, thousands(int(r.decode.slot.decodedTxns)))
	row("(a2) minimal reader letting the socket fill, in-process", r.chunked, thousands(int(r.chunked.slot.decodedTxns)))
	row("(b) pg_recvlogical -> /dev/null", r.recv, thousands(int(r.recv.slot.decodedTxns)))
	row("(c) engine process -> Kafka, acks=all", r.engine, "-")
	tw.Flush()
	fmt.Fprintf(w, "    seconds: from the start (engine started / process started / connector registered) to the last event;\n")
	fmt.Fprintf(w, "    (a) ends when the engine has captured every row, (b) when pg_recvlogical exits at --endpos,\n")
	fmt.Fprintf(w, "    (c) when the engine's produced counter (Kafka acks) reaches the backlog; %s\n", r.engine.note)
	fmt.Fprintf(w, "    (a2) ends when it has parsed every insert: the walsender's ceiling, full TCP segments\n")
	fmt.Fprintf(w, "\n(c)/(a) = %.2f    (c)/(a2) = %.2f (the engine against the walsender's ceiling)    (c)/(b) = %.2f\n",
		ratio(r.engine, r.decode), ratio(r.engine, r.chunked), ratio(r.engine, r.recv))
	fmt.Fprintf(w, "engine peak RSS (VmHWM): %s after the drain, %s after the steady load\n", mb(r.rssDrain), mb(r.rssEnd))
	if rt := r.engine.runtime; rt.goSys > 0 {
		fmt.Fprintf(w, "engine Go runtime during (c): %d GC cycles; at its end Go heap in use %s, Go runtime total %s (the rest of RSS: librdkafka, C)\n",
			rt.gcCycles, mb(rt.heapInUse), mb(rt.goSys))
	}
	fmt.Fprintln(w)
}

func printCPU(w io.Writer, r *results) {
	stages := []struct {
		name string
		u    cpuUsage
	}{{"(a)", r.decode.cpu}, {"(a2)", r.chunked.cpu}, {"(b)", r.recv.cpu}, {"(c)", r.engine.cpu}, {"steady", r.steady.cpu}}
	if !stages[0].u.ok {
		fmt.Fprintf(w, "CPU per stage: /proc not readable\n\n")
		return
	}
	var cats []string
	seen := map[string]bool{}
	for _, s := range stages {
		for _, c := range s.u.categories() {
			if !seen[c] && c != catMachineAll {
				seen[c] = true
				cats = append(cats, c)
			}
		}
	}
	cats = append(cats, catMachineAll)
	fmt.Fprintf(w, "CPU per stage, %% of one core (%d cores = %d%%), from /proc:\n", r.cpus, 100*r.cpus)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "\t")
	for _, s := range stages {
		fmt.Fprintf(tw, "%s\t", s.name)
	}
	fmt.Fprintln(tw)
	for _, c := range cats {
		fmt.Fprintf(tw, "%s\t", c)
		for _, s := range stages {
			fmt.Fprintf(tw, "%.0f\t", s.u.percent(c))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func printSteady(w io.Writer, r *results) {
	s, o := r.steady, r.opts
	fmt.Fprintf(w, "Steady load: %s events/s for %s (pgbench -R %d -T %d -c %d): %s transactions, %s tps; "+
		"Kafka had acknowledged all of them %s after pgbench ended\n",
		thousands(o.rate), o.duration, o.rate, int(o.duration.Seconds()), o.clients,
		thousands(s.pgbench.Processed), strconv.FormatFloat(s.pgbench.TPS, 'f', 1, 64), s.drain.Round(time.Millisecond))
	lo, hi := s.ack.maxBucket()
	lo99, hi99 := s.ack.bucketOf(0.99)
	fmt.Fprintf(w, "  commit-to-Kafka-ack (engine's %s, %s records; quantiles interpolated within buckets):\n",
		metricCommitToAck, thousands(int(s.ack.count)))
	fmt.Fprintf(w, "      p50 %s   p99 %s (bucket (%s, %s])   max in (%s, %s]   mean %s\n",
		ms(s.ack.quantile(0.5)), ms(s.ack.quantile(0.99)), ms(lo99), ms(hi99), ms(lo), ms(hi),
		ms(s.ack.sum/float64(max(s.ack.count, 1))))
	f := s.floor
	flo, fhi := f.maxBucket()
	fmt.Fprintf(w, "  commit-to-decoded (the engine's reader alone, discarding, in a process of its own on slot A, with a second\n"+
		"  walsender: what Postgres, the reader and this machine's scheduling cost before a producer; %s records):\n",
		thousands(int(f.count)))
	fmt.Fprintf(w, "      p50 %s   p99 %s   max in (%s, %s]   mean %s\n",
		ms(f.quantile(0.5)), ms(f.quantile(0.99)), ms(flo), ms(fhi), ms(f.sum/float64(max(f.count, 1))))
	fmt.Fprintf(w, "  the engine process's share (each quantile of commit-to-ack minus that of commit-to-decoded:\n"+
		"  the producer and Kafka, and its own scheduling): p50 %s   p99 %s\n",
		share(s.ack.quantile(0.5), f.quantile(0.5)), share(s.ack.quantile(0.99), f.quantile(0.99)))
	fmt.Fprintf(w, "  engine process Go GC: %d cycles during the load; longest of its recent pauses %s\n", s.gcCycles, ms(s.gcMax))
	fmt.Fprintf(w, "  load average (1, 5, 15 min) %s before, %s after\n", s.load[0], s.load[1])
	fmt.Fprintf(w, "  insert-to-consume (a consumer in the bench, from the database clock at the row's insert, in its payload,\n"+
		"  a moment before the commit; roughly an upper bound of commit-to-ack), %s records:\n",
		thousands(len(s.consumed)))
	fmt.Fprintf(w, "      p50 %s   p99 %s   max %s\n",
		dur(percentile(s.consumed, 0.5)), dur(percentile(s.consumed, 0.99)), dur(percentile(s.consumed, 1)))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "      insert-to-consume by receive time\trecords\tp50\tp99\tmax\t")
	for i, win := range s.windows {
		fmt.Fprintf(tw, "%s-%s\t%s\t%s\t%s\t%s\t\n", time.Duration(i)*windowWidth, time.Duration(i+1)*windowWidth,
			thousands(len(win)), dur(percentile(win, 0.5)), dur(percentile(win, 0.99)), dur(percentile(win, 1)))
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func printTargets(w io.Writer, r *results) {
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "MISS"
	}
	p99 := r.steady.ack.quantile(0.99)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Targets\tmeasured\t")
	fmt.Fprintf(tw, "(c)/(a) >= %.1f\t%.2f\t%s\n", targetDecodeRatio, ratio(r.engine, r.decode),
		verdict(ratio(r.engine, r.decode) >= targetDecodeRatio))
	fmt.Fprintf(tw, "(c)/(a2) >= %.1f (the walsender's ceiling)\t%.2f\t%s\n", targetDecodeRatio, ratio(r.engine, r.chunked),
		verdict(ratio(r.engine, r.chunked) >= targetDecodeRatio))
	fmt.Fprintf(tw, "(c) >= (b)\t%s vs %s events/s\t%s\n", thousands(int(r.engine.rate())), thousands(int(r.recv.rate())),
		verdict(r.engine.rate() >= r.recv.rate()))
	fmt.Fprintf(tw, "engine peak RSS < 100 MB\t%s\t%s\n", mb(max(r.rssDrain, r.rssEnd)),
		verdict(float64(max(r.rssDrain, r.rssEnd)) < targetRSSBytes))
	fmt.Fprintf(tw, "commit-to-ack p99 < %s\t%s\t%s\n", targetP99, ms(p99),
		verdict(!math.IsNaN(p99) && p99 < targetP99.Seconds()))
	tw.Flush()
}

func printProfiles(w io.Writer, r *results) {
	if len(r.profiles) == 0 {
		return
	}
	fmt.Fprintln(w, "\nCPU profiles:")
	for _, p := range r.profiles {
		if strings.HasSuffix(p, ".perf.data") {
			fmt.Fprintf(w, "  perf report -i %s --no-children --sort symbol\n", p)
		} else if strings.HasSuffix(p, ".allocs.pprof") {
			fmt.Fprintf(w, "  go tool pprof -sample_index=alloc_space -top %s\n", p)
		} else {
			fmt.Fprintf(w, "  go tool pprof -top %s\n", p)
		}
	}
}

func ratio(a, b passResult) float64 { return a.rate() / b.rate() }

func seconds(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

func ms(sec float64) string {
	switch {
	case math.IsNaN(sec):
		return "n/a"
	case math.IsInf(sec, 1):
		return "+Inf"
	}
	return strconv.FormatFloat(sec*1000, 'f', 1, 64) + " ms"
}

func dur(d time.Duration) string { return ms(d.Seconds()) }

func mb(b uint64) string { return strconv.FormatFloat(float64(b)/1e6, 'f', 1, 64) + " MB" }

// thousands formats n with comma separators.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// share is the engine's share of a latency quantile: the engine's quantile
// minus the reference reader's. The two runs are separate distributions, so
// the difference can come out negative: then the engine's share is not
// measurable from them, and it says so.
func share(engine, reference float64) string {
	if d := engine - reference; d >= 0 {
		return ms(d)
	}
	return "n/a (the reader alone was slower)"
}
