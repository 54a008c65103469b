// Command loadgen is the client side of bench/async: it sends score.requested events for the
// Cleveland rows to a Kafka cluster (the embedded broker of `pulse serve`, or Apache Kafka)
// and reads the score.completed results, then prints one JSON line: how many requests, the
// throughput from the first request sent to the last result read, and the latency of the
// results (request sent to result read) as percentiles.
//
// Each request's correlation_id is its sequence number; results are matched by the
// pulse-correlation-id header, so reading them costs no JSON parsing. With -rate 0 requests
// are sent as fast as the client takes them (the throughput test: latency then includes the
// backlog); with -rate N they are paced at N per second (the latency test).
package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type report struct {
	Requests   int     `json:"requests"`
	Rate       int     `json:"rate"`
	Seconds    float64 `json:"seconds"`
	EventsPerS float64 `json:"events_per_s"`
	P50ms      float64 `json:"p50_ms"`
	P90ms      float64 `json:"p90_ms"`
	P99ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	Duplicates int     `json:"duplicates"`
	Errors     int     `json:"errors"`
	// CPUSeconds is the CPU time (user and system) loadgen used from the first request sent to
	// the last result read.
	CPUSeconds float64 `json:"cpu_seconds"`
}

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka brokers host:port,...")
	prefix := flag.String("topic-prefix", "pulse.", "prefix of Pulse's topics")
	n := flag.Int("n", 300_000, "requests to send")
	rate := flag.Int("rate", 0, "requests per second; 0 sends as fast as the client takes them")
	keys := flag.Int("keys", 1000, "distinct record keys (devices)")
	model := flag.String("model", "heart-disease", "model to score with")
	data := flag.String("data", "../shared/datasets/heart-disease/processed.cleveland.data", "the Cleveland data file")
	linger := flag.Duration("linger", 5*time.Millisecond, "how long the producer waits to fill a batch (franz-go ProducerLinger)")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if err := run(*brokers, *prefix, *n, *rate, *keys, *model, *data, *linger, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(brokers, prefix string, n, rate, keys int, model, data string, linger, timeout time.Duration) error {
	rows, err := inputs(data)
	if err != nil {
		return err
	}
	seeds := strings.Split(brokers, ",")
	requests, results := prefix+"score.requests", prefix+"score.results"
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	// Read the results from the current end of each partition, resolved before anything is sent.
	admin, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, results)
	admin.Close()
	if err != nil {
		return fmt.Errorf("end offsets of %s: %w", results, err)
	}
	start := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) { start[o.Partition] = kgo.NewOffset().At(o.Offset) })
	if len(start) == 0 {
		return fmt.Errorf("topic %s has no partitions: is pulse serve running with these brokers and prefix?", results)
	}
	reader, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{results: start}))
	if err != nil {
		return err
	}
	defer reader.Close()
	producer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ProducerLinger(linger))
	if err != nil {
		return err
	}
	defer producer.Close()

	// The events, built before the clock starts.
	values := make([][]byte, n)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := range values {
		values[i] = fmt.Appendf(nil, `{"specversion":"1.0","id":"%s-%d","source":"/bench/async","type":"com.cloudmedical.pulse.score.requested","datacontenttype":"application/json","data":{"model":%q,"correlation_id":"%d","inputs":%s}}`,
			run, i, model, i, rows[i%len(rows)])
	}
	sent := make([]int64, n) // unix nanoseconds
	var produceErrors atomic.Int64

	latencies := make([]time.Duration, 0, n)
	got := make([]bool, n)
	duplicates := 0
	readDone := make(chan error, 1)
	go func() {
		for len(latencies) < n {
			fs := reader.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				readDone <- fmt.Errorf("%d of %d results read before the timeout", len(latencies), n)
				return
			}
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				for _, h := range r.Headers {
					if h.Key != "pulse-correlation-id" {
						continue
					}
					i, err := strconv.Atoi(string(h.Value))
					if err != nil || i < 0 || i >= n {
						return // another client's
					}
					if got[i] {
						duplicates++
						return
					}
					got[i] = true
					latencies = append(latencies, now.Sub(time.Unix(0, atomic.LoadInt64(&sent[i]))))
				}
			})
		}
		readDone <- nil
	}()

	cpu0 := cpuTime()
	t0 := time.Now()
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			produceErrors.Add(1)
		}
	}
	for i := range n {
		if rate > 0 {
			// Pace in steps of a millisecond: request i leaves at t0 + i/rate.
			if d := time.Until(t0.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))); d > time.Millisecond {
				time.Sleep(d)
			}
		}
		atomic.StoreInt64(&sent[i], time.Now().UnixNano())
		key := strconv.AppendInt(nil, int64(i%keys), 10)
		producer.Produce(ctx, &kgo.Record{Topic: requests, Key: key, Value: values[i]}, promise)
	}
	if err := <-readDone; err != nil {
		return err
	}
	elapsed := time.Since(t0)
	cpu := cpuTime() - cpu0
	slices.Sort(latencies)
	q := func(p float64) float64 {
		return float64(latencies[min(len(latencies)-1, int(math.Ceil(p*float64(len(latencies))))-1)].Microseconds()) / 1000
	}
	return json.NewEncoder(os.Stdout).Encode(report{
		Requests: n, Rate: rate, Seconds: elapsed.Seconds(), EventsPerS: float64(n) / elapsed.Seconds(),
		P50ms: q(0.50), P90ms: q(0.90), P99ms: q(0.99), MaxMs: q(1),
		Duplicates: duplicates, Errors: int(produceErrors.Load()), CPUSeconds: cpu.Seconds(),
	})
}

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// inputs returns the Cleveland rows as predict bodies: numbers as written, "?" as null.
func inputs(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out [][]byte
	for _, rec := range recs[1:] {
		b := []byte{'{'}
		for j, cell := range rec[:len(rec)-1] {
			if j > 0 {
				b = append(b, ',')
			}
			if cell = strings.TrimSpace(cell); cell == "?" {
				cell = "null"
			}
			b = fmt.Appendf(b, "%q:%s", strings.TrimSpace(recs[0][j]), cell)
		}
		out = append(out, append(b, '}'))
	}
	return out, nil
}
