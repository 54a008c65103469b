package events

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks run against kfake ("kfake", fsync per batch as in pulse serve) and a real Kafka
// ("kafka": PULSE_TEST_KAFKA_BROKERS, or started by scripts/kafka). Example:
//
//	go test -run '^$' -bench . -benchtime 20000x ./internal/events

func benchBrokers(b *testing.B, run func(b *testing.B, brokers string)) {
	b.Run("kfake", func(b *testing.B) { run(b, benchEmbedded(b)) })
	b.Run("kafka", func(b *testing.B) { run(b, realBrokers(b)) })
}

func benchEmbedded(b *testing.B) string {
	return startEmbedded(b, false)
}

// BenchmarkPublishAsync: fire-and-forget publishes, batched by the client, then one Flush.
func BenchmarkPublishAsync(b *testing.B) {
	benchBrokers(b, func(b *testing.B, brokers string) {
		e := newEnv(b, brokers)
		pub := NewPublisher(e.client, PublisherConfig{})
		topic := e.topics.Name(TopicFeedback)
		ev := feedback(b, 1)
		ctx := context.Background()
		b.ResetTimer()
		for range b.N {
			pub.PublishAsync(ctx, topic, ev)
		}
		if err := pub.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkPublishWait: Publish waiting for each ack, from 64 goroutines (as concurrent
// request handlers would), so acks are batched.
func BenchmarkPublishWait(b *testing.B) {
	benchBrokers(b, func(b *testing.B, brokers string) {
		e := newEnv(b, brokers)
		pub := NewPublisher(e.client, PublisherConfig{})
		topic := e.topics.Name(TopicFeedback)
		ev := feedback(b, 1)
		ctx := context.Background()
		b.SetParallelism(32) // 2 cores here: 64 publishers
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := pub.Publish(ctx, topic, ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkConsume: b.N events (distinct ids) produced beforehand, then consumed by one
// Consumer (parse, schema validation, Seen filter, no-op handler, commit per batch).
func BenchmarkConsume(b *testing.B) {
	benchBrokers(b, func(b *testing.B, brokers string) {
		e := newEnv(b, brokers)
		pub := NewPublisher(e.client, PublisherConfig{})
		topic := e.topics.Name(TopicFeedback)
		ctx := context.Background()
		for i := range b.N {
			pub.PublishAsync(ctx, topic, feedback(b, i))
		}
		if err := pub.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		var handled atomic.Int64
		b.ResetTimer()
		c := e.consumer(ConsumerConfig{Topic: topic, Seen: NewMemorySeen(0), Handler: func(context.Context, Event) error {
			handled.Add(1)
			return nil
		}})
		for handled.Load() < int64(b.N) {
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		stop(b, c)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkParse: strict parsing plus schema validation of one feedback event.
func BenchmarkParse(b *testing.B) {
	raw, err := feedback(b, 1).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for range b.N {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}
