package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/registry"
)

// benchPickup measures enqueue -> start of attempt (River's attempted_at minus created_at) for
// jobs enqueued by producer and worked by another service, one job at a time. The jobs fail
// fast (unknown dataset) so that only the queue is measured.
func benchPickup(b *testing.B, producer *Service) {
	ctx := context.Background()
	req := registry.TrainRequest{Dataset: "missing", Target: "num > 0"}
	var total time.Duration
	for b.Loop() {
		j, _, err := producer.Enqueue(ctx, "bench", req, EnqueueOptions{})
		if err != nil {
			b.Fatal(err)
		}
		done, err := producer.Wait(ctx, j.ID)
		if err != nil {
			b.Fatal(err)
		}
		if done.AttemptedAt == nil {
			b.Fatalf("job %d: state %s, never attempted", j.ID, done.State)
		}
		total += done.AttemptedAt.Sub(done.CreatedAt)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/pickup")
}

func BenchmarkPickupSQLite(b *testing.B) {
	e := newEnv(b)
	for _, tc := range []struct {
		name string
		same bool
	}{{"same-process", true}, {"other-process", false}} {
		b.Run(tc.name, func(b *testing.B) {
			w := e.open(b, Config{Workers: 1})
			p := w
			if !tc.same {
				p = e.open(b, Config{Workers: 0})
			}
			benchPickup(b, p)
		})
	}
}

func BenchmarkPickupPostgres(b *testing.B) {
	e := newEnv(b)
	db := freshDatabase(b)
	for _, tc := range []struct {
		name string
		same bool
	}{{"same-process", true}, {"other-process", false}} {
		b.Run(tc.name, func(b *testing.B) {
			w := e.open(b, Config{Pool: newPool(b, db), Workers: 1})
			p := w
			if !tc.same {
				p = e.open(b, Config{Pool: newPool(b, db), Workers: 0})
			}
			benchPickup(b, p)
		})
	}
}
