package online

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkFollow measures online updates per second end to end from the broker: a follower
// consumes 200,000 pre-produced ingest events (the Cleveland rows over and over) and learns
// from each.
func BenchmarkFollow(b *testing.B) {
	const n = 200_000
	e := newEnv(b, "heart-online")
	one := stream(b, 1)
	evs := make([][]byte, 0, n)
	for len(evs) < n {
		evs = append(evs, one[:min(len(one), n-len(evs))]...)
	}
	e.produce(b, evs)
	spec := Spec{Model: "heart-online", Dataset: dataset, SnapshotEveryRecords: 1 << 62, SnapshotEverySeconds: 1e9}
	b.ResetTimer()
	t0 := time.Now()
	for range b.N {
		m := start(b, context.Background(), e, e.reg, spec, 0)
		waitRecords(b, m, "heart-online", n)
		m.abort()
	}
	b.ReportMetric(float64(n*b.N)/time.Since(t0).Seconds(), "records/s")
}

// BenchmarkIngestLatency measures the time from producing one ingest event to the follower
// having learnt it, one event at a time; it reports the median and 99th percentile.
func BenchmarkIngestLatency(b *testing.B) {
	e := newEnv(b, "heart-online")
	evs := stream(b, 1)
	m := start(b, context.Background(), e, e.reg, Spec{Model: "heart-online", Dataset: dataset}, 0)
	defer m.abort()
	f := m.followers["heart-online"]
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		rec := &kgo.Record{Topic: e.topic, Key: []byte(dataset), Value: evs[i%len(evs)]}
		if err := e.client.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			b.Fatal(err)
		}
		for {
			f.mu.Lock()
			ch, learnt := f.applied, f.status.Records
			f.mu.Unlock()
			if learnt >= int64(i+1) {
				break
			}
			<-ch
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
