package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

var eventTests = []test{
	{"MarkThenSeen", func(ctx context.Context, t *testing.T, s Store) {
		t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
		if seen, err := s.SeenEvent(ctx, "ingest", "e-1"); err != nil || seen {
			t.Fatalf("before marking: got %v, %v; want false", seen, err)
		}
		if err := s.MarkEvent(ctx, "ingest", "e-1", t0); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkEvent(ctx, "ingest", "e-1", t0.Add(time.Hour)); err != nil {
			t.Fatalf("marking twice: got %v, want nil", err)
		}
		if seen, err := s.SeenEvent(ctx, "ingest", "e-1"); err != nil || !seen {
			t.Fatalf("after marking: got %v, %v; want true", seen, err)
		}
		// Marks are per consumer.
		if seen, err := s.SeenEvent(ctx, "train", "e-1"); err != nil || seen {
			t.Fatalf("another consumer: got %v, %v; want false", seen, err)
		}
	}},
	{"Forget", func(ctx context.Context, t *testing.T, s Store) {
		t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		for i := range 5 {
			if err := s.MarkEvent(ctx, "ingest", fmt.Sprintf("e-%d", i), t0.Add(time.Duration(i)*24*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.ForgetEventsBefore(ctx, t0.Add(2*24*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("ForgetEventsBefore: got %d, %v; want 2", n, err)
		}
		for i, want := range []bool{false, false, true, true, true} {
			if seen, err := s.SeenEvent(ctx, "ingest", fmt.Sprintf("e-%d", i)); err != nil || seen != want {
				t.Errorf("e-%d after forgetting: got %v, %v; want %v", i, seen, err, want)
			}
		}
	}},
	{"MarkManySeenMany", func(ctx context.Context, t *testing.T, s Store) {
		t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
		if err := s.MarkEvent(ctx, "ingest", "e-0", t0); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for i := range 1200 { // more than one IN list
			ids = append(ids, fmt.Sprintf("e-%d", i))
		}
		marked := append(slices.Clone(ids[:700]), "e-3", "e-0") // a repeat, and one marked before
		if err := s.MarkEvents(ctx, "ingest", marked, t0); err != nil {
			t.Fatalf("MarkEvents: %v", err)
		}
		if err := s.MarkEvents(ctx, "ingest", nil, t0); err != nil {
			t.Fatalf("MarkEvents of no ids: %v", err)
		}
		seen, err := s.SeenEvents(ctx, "ingest", append(ids, "e-9999"))
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != 700 {
			t.Errorf("SeenEvents: %d ids seen, want 700", len(seen))
		}
		for _, i := range []int{0, 3, 499, 500, 699} {
			if !seen[ids[i]] {
				t.Errorf("%s: not seen, want seen", ids[i])
			}
		}
		for _, id := range []string{"e-700", "e-1199", "e-9999"} {
			if seen[id] {
				t.Errorf("%s: seen, want not", id)
			}
		}
		if other, err := s.SeenEvents(ctx, "train", ids[:10]); err != nil || len(other) != 0 {
			t.Errorf("another consumer: got %v, %v; want none", other, err)
		}
		if none, err := s.SeenEvents(ctx, "ingest", nil); err != nil || len(none) != 0 {
			t.Errorf("SeenEvents of no ids: got %v, %v", none, err)
		}
		if one, err := s.SeenEvent(ctx, "ingest", "e-650"); err != nil || !one {
			t.Errorf("SeenEvent of a batch-marked id: got %v, %v; want true", one, err)
		}
		if err := s.MarkEvents(ctx, "ingest", []string{"e-1", ""}, t0); pulse.ErrorCode(err) != pulse.EINVALID {
			t.Errorf("MarkEvents with an empty id: got %v, want EINVALID", err)
		}
		if _, err := s.SeenEvents(ctx, "", []string{"e-1"}); pulse.ErrorCode(err) != pulse.EINVALID {
			t.Errorf("SeenEvents without a consumer: got %v, want EINVALID", err)
		}
	}},
	{"EmptyKeys", func(ctx context.Context, t *testing.T, s Store) {
		for _, k := range [][2]string{{"", "e"}, {"c", ""}} {
			if err := s.MarkEvent(ctx, k[0], k[1], time.Now()); pulse.ErrorCode(err) != pulse.EINVALID {
				t.Errorf("MarkEvent(%q, %q): got %v, want EINVALID", k[0], k[1], err)
			}
			if _, err := s.SeenEvent(ctx, k[0], k[1]); pulse.ErrorCode(err) != pulse.EINVALID {
				t.Errorf("SeenEvent(%q, %q): got %v, want EINVALID", k[0], k[1], err)
			}
		}
	}},
	{"ConcurrentMarks", func(ctx context.Context, t *testing.T, s Store) {
		var wg sync.WaitGroup
		errs := make(chan error, concurrency)
		for i := range concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.MarkEvent(ctx, "ingest", fmt.Sprintf("e-%d", i%4), time.Now())
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent MarkEvent: %v", err)
			}
		}
		for i := range 4 {
			if seen, err := s.SeenEvent(ctx, "ingest", fmt.Sprintf("e-%d", i)); err != nil || !seen {
				t.Errorf("e-%d: got %v, %v; want true", i, seen, err)
			}
		}
	}},
}
