package feedback

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudmedical/pulse/internal/blobstore"
	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// now is the tests' clock.
var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// idAt returns a UUIDv7 of time t with random bits n.
func idAt(t time.Time, n uint64) string {
	hi := uint64(t.UnixMilli())<<16 | 0x7000 | n>>48&0xfff
	lo := 0x8000000000000000 | n&0x0fffffffffffffff
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", hi>>32, hi>>16&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}

func prediction(at time.Time, n uint64, model string, version int) lake.Prediction {
	return lake.Prediction{
		PredictionID: idAt(at.Add(time.Millisecond), n), ScoredAt: at, Model: model, Version: version, Alias: "champion",
		Label: int(n % 2), Probability: 0.1 + float64(n%8)/10, Threshold: 0.5,
		Features: []byte(`{"age":63}`), Response: []byte(`{}`),
	}
}

// env is a lake in a temp dir and a service on it.
type env struct {
	dir   string
	store *blobstore.Store
	lake  *lake.Lake
	svc   *Service
	reg   *prometheus.Registry
	mu    sync.Mutex
	heard []Outcome
}

func newEnv(t testing.TB) *env {
	e := &env{dir: t.TempDir()}
	e.open(t)
	return e
}

// open opens the lake and a new service on it (a restart).
func (e *env) open(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	var err error
	if e.store, err = blobstore.Open(ctx, blobstore.FileURL(filepath.Join(e.dir, "lake"))); err != nil {
		t.Fatal(err)
	}
	if e.lake, err = lake.Open(ctx, lake.Config{WALDir: filepath.Join(e.dir, "wal"), Store: e.store, MaxSegmentAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	e.reg = prometheus.NewRegistry()
	e.svc, err = New(Config{Lake: e.lake, Registerer: e.reg, Now: func() time.Time { return now }, OnOutcome: func(os []Outcome) {
		e.mu.Lock()
		e.heard = append(e.heard, os...)
		e.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.close(t) })
}

func (e *env) close(t testing.TB) {
	if e.lake == nil {
		return
	}
	if err := e.lake.Close(context.Background()); err != nil {
		t.Error(err)
	}
	e.store.Close()
	e.lake = nil
}

func fb(id string, label string, observed string) Feedback {
	return Feedback{PredictionID: id, Label: json.RawMessage(label), ObservedAt: observed, Source: SourceAPI, ID: "req-1"}
}

// TestSubmit joins a batch with every kind of item: predictions compacted on other days and
// still in the WAL, one with a shadow challenger, repeats, unknown ids and bad fields.
func TestSubmit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	old := prediction(now.Add(-20*24*time.Hour), 1, "heart", 1)
	champ := prediction(now.Add(-26*time.Hour), 2, "heart", 2)
	shadow := champ
	shadow.Version, shadow.Shadow, shadow.Alias, shadow.Probability, shadow.Label = 3, true, "challenger", 0.9, 1
	other := prediction(now.Add(-3*time.Hour), 3, "heart v2", 1)
	if err := e.lake.AppendPredictions(ctx, old, champ, shadow, other); err != nil {
		t.Fatal(err)
	}
	if err := e.lake.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	recent := prediction(now.Add(-time.Second), 4, "heart", 2) // in the WAL's tail
	if err := e.lake.AppendPredictions(ctx, recent); err != nil {
		t.Fatal(err)
	}
	observed := now.Add(-time.Minute).Format(time.RFC3339)
	items := []Feedback{
		fb(old.PredictionID, "1", observed),                                   // 0 joined, 20 days old
		fb(strings.ToUpper(champ.PredictionID), "true", observed),             // 1 joined, two outcomes
		fb(other.PredictionID, `"0"`, "2026-11-25T11:00:00.5+01:00"),          // 2 joined
		fb(recent.PredictionID, "0", observed),                                // 3 joined from the tail
		fb(old.PredictionID, "0", observed),                                   // 4 duplicate of 0
		fb(idAt(now.Add(-26*time.Hour), 99), "1", observed),                   // 5 unknown
		fb(idAt(now.Add(-100*24*time.Hour), 1), "1", observed),                // 6 unknown: before the retention
		fb(idAt(now.Add(time.Hour), 1), "1", observed),                        // 7 unknown: in the future
		fb(other.PredictionID[:20], "1", observed),                            // 8 invalid id
		fb("0193a5c2-1f7e-4b8a-9c3d-2e1f0a9b8c7d", "1", observed),             // 9 invalid: UUIDv4
		fb(idAt(now, 5), "2", observed),                                       // 10 invalid label
		fb(idAt(now, 6), `"yes"`, observed),                                   // 11 invalid label
		fb(idAt(now, 7), "", observed),                                        // 12 invalid label: missing
		fb(idAt(now, 8), "1", "yesterday"),                                    // 13 invalid observed_at
		fb(idAt(now, 9), "1", "2026-11-25 10:00:00"),                          // 14 invalid observed_at
		fb(idAt(now, 10), "1", now.Add(time.Hour).Format(time.RFC3339)),       // 15 invalid: observed in the future
		fb(idAt(now, 11), "1", ""),                                            // 16 invalid: observed_at missing
		{PredictionID: "", Label: json.RawMessage("1"), ObservedAt: observed}, // 17 invalid: no id
	}
	got, err := e.svc.Submit(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		status   Status
		field    string
		reason   string
		model    string
		version  int
		outcomes int
	}{
		{Joined, "", "", "heart", 1, 1},
		{Joined, "", "", "heart", 2, 2},
		{Joined, "", "", "heart v2", 1, 1},
		{Joined, "", "", "heart", 2, 1},
		{Duplicate, "", "item 0", "", 0, 0},
		{Unknown, "", "no stored prediction", "", 0, 0},
		{Unknown, "", "retention of 90 days", "", 0, 0},
		{Unknown, "", "in the future", "", 0, 0},
		{Invalid, "prediction_id", "want a UUID", "", 0, 0},
		{Invalid, "prediction_id", "version 4", "", 0, 0},
		{Invalid, "label", "got 2, want 0 or 1", "", 0, 0},
		{Invalid, "label", `got the string "yes"`, "", 0, 0},
		{Invalid, "label", "required", "", 0, 0},
		{Invalid, "observed_at", `got "yesterday", want an RFC 3339 time`, "", 0, 0},
		{Invalid, "observed_at", "want an RFC 3339 time", "", 0, 0},
		{Invalid, "observed_at", "want a time in the past", "", 0, 0},
		{Invalid, "observed_at", "required", "", 0, 0},
		{Invalid, "prediction_id", "required", "", 0, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("results: got %d, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Status != w.status || g.Field != w.field || !strings.Contains(g.Reason, w.reason) || g.Model != w.model || g.Version != w.version || g.Outcomes != w.outcomes {
			t.Errorf("item %d: got %+v, want %+v", i, g, w)
		}
		if w.status != Joined && g.Reason == "" {
			t.Errorf("item %d: %s without a reason", i, g.Status)
		}
	}
	sum := Summarize(got)
	if sum != (Summary{Received: 18, Joined: 4, Duplicate: 1, Unknown: 3, Invalid: 10, Outcomes: 5}) {
		t.Errorf("summary: got %+v", sum)
	}
	for status, n := range map[Status]float64{Joined: 4, Duplicate: 1, Unknown: 3, Invalid: 10} {
		if got := testutil.ToFloat64(e.svc.m.labels.WithLabelValues(SourceAPI, string(status))); got != n {
			t.Errorf("labels metric %s from api: got %v, want %v", status, got, n)
		}
	}
	if got := testutil.ToFloat64(e.svc.m.outcomes); got != 5 {
		t.Errorf("outcomes metric: got %v, want 5", got)
	}

	// The listener heard the five outcomes, as stored.
	byKey := map[string]Outcome{}
	for _, o := range e.heard {
		byKey[fmt.Sprintf("%s/%d", o.PredictionID, o.Version)] = o
	}
	obs, _ := time.Parse(time.RFC3339, observed)
	for _, c := range []struct {
		p     lake.Prediction
		label int
		obs   time.Time
	}{
		{old, 1, obs}, {champ, 1, obs}, {shadow, 1, obs}, {other, 0, time.Date(2026, 11, 25, 10, 0, 0, 5e8, time.UTC)}, {recent, 0, obs},
	} {
		o, ok := byKey[fmt.Sprintf("%s/%d", c.p.PredictionID, c.p.Version)]
		if !ok {
			t.Errorf("outcome of %s version %d: not heard", c.p.PredictionID, c.p.Version)
			continue
		}
		if o.Model != c.p.Model || o.Shadow != c.p.Shadow || o.Alias != c.p.Alias || o.Probability != c.p.Probability || o.Predicted != c.p.Label ||
			o.Threshold != c.p.Threshold || o.Label != c.label || !o.ScoredAt.Equal(c.p.ScoredAt) || !o.ObservedAt.Equal(c.obs) ||
			!o.ReceivedAt.Equal(now) || o.Source != SourceAPI || o.FeedbackID != "req-1" {
			t.Errorf("outcome of %s version %d: got %+v", c.p.PredictionID, c.p.Version, o)
		}
	}
	if len(e.heard) != 5 {
		t.Errorf("outcomes heard: got %d, want 5", len(e.heard))
	}

	// The same labels again, after a restart: every joined one is now a duplicate.
	e.close(t)
	e.open(t)
	again, err := e.svc.Submit(ctx, items[:4])
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if r.Status != Duplicate || !strings.Contains(r.Reason, "labelled before") {
			t.Errorf("item %d after a restart: got %+v, want duplicate", i, r)
		}
	}
	if err := e.lake.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stored, err := lake.ReadOutcomes(ctx, e.store, "heart", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 4 {
		t.Errorf("outcomes of heart in the lake: got %d, want 4 (old, champion, shadow, recent)", len(stored))
	}
}

func TestParseLabel(t *testing.T) {
	tests := []struct {
		in   string
		want int
		err  string
	}{
		{"0", 0, ""}, {"1", 1, ""}, {"1.0", 1, ""}, {"0e0", 0, ""}, {"true", 1, ""}, {"false", 0, ""},
		{`"1"`, 1, ""}, {`"0"`, 0, ""}, {`"true"`, 1, ""}, {`"false"`, 0, ""}, {" 1 ", 1, ""},
		{"2", 0, "want 0 or 1"}, {"-1", 0, "want 0 or 1"}, {"0.5", 0, "want 0 or 1"}, {`"yes"`, 0, "the string"},
		{"null", 0, "required"}, {"", 0, "required"}, {"[1]", 0, "want 0, 1, true or false"}, {`{"v":1}`, 0, "want 0, 1"},
		{`"TRUE"`, 0, "the string"},
	}
	for _, tt := range tests {
		got, err := parseLabel(json.RawMessage(tt.in))
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("parseLabel(%s): got %d, %v; want %d", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "label: ") {
			t.Errorf("parseLabel(%s): got %d, %v; want an error naming label and saying %q", tt.in, got, err, tt.err)
		}
	}
}

// TestConcurrentSubmitsStoreOnce sends the same labels from several goroutines at once: each
// prediction is joined once, the others see duplicates.
func TestConcurrentSubmitsStoreOnce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	var preds []lake.Prediction
	var items []Feedback
	for i := range 200 {
		p := prediction(now.Add(-time.Duration(i)*time.Minute), uint64(i), "heart", 1)
		preds = append(preds, p)
		items = append(items, fb(p.PredictionID, "1", now.Format(time.RFC3339)))
	}
	if err := e.lake.AppendPredictions(ctx, preds...); err != nil {
		t.Fatal(err)
	}
	const goroutines = 6
	joined := make([]int, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < len(items); i += 25 {
				rs, err := e.svc.Submit(ctx, items[i:i+25])
				if err != nil {
					t.Error(err)
					return
				}
				joined[g] += Summarize(rs).Joined
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, n := range joined {
		total += n
	}
	if total != len(items) {
		t.Errorf("joined over all goroutines: got %d, want %d (each prediction once)", total, len(items))
	}
	if len(e.heard) != len(items) {
		t.Errorf("outcomes heard: got %d, want %d", len(e.heard), len(items))
	}
}

func TestSubmitLimitsAndConfig(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.Submit(context.Background(), make([]Feedback, MaxItems+1)); pulse.ErrorCode(err) != pulse.ETOOLARGE {
		t.Errorf("Submit of %d items: got %v, want ETOOLARGE", MaxItems+1, err)
	}
	if rs, err := e.svc.Submit(context.Background(), nil); err != nil || len(rs) != 0 {
		t.Errorf("Submit of nothing: got %v, %v; want no results", rs, err)
	}
	for _, cfg := range []Config{{}, {Lake: e.lake, Retention: -time.Hour}} {
		if _, err := New(cfg); pulse.ErrorCode(err) != pulse.EINVALID {
			t.Errorf("New(%+v): got %v, want EINVALID", cfg, err)
		}
	}
	if s, err := New(Config{Lake: e.lake}); err != nil || s.Retention() != DefaultRetention {
		t.Errorf("default retention: got %v, %v; want %v", s, err, DefaultRetention)
	}
}

// failingLake refuses to store outcomes.
type failingLake struct{ *lake.Lake }

func (failingLake) AppendOutcomes(context.Context, ...lake.Outcome) error {
	return fmt.Errorf("disk full")
}

func TestSubmitWhenTheLakeRefuses(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	p := prediction(now.Add(-time.Hour), 1, "heart", 1)
	if err := e.lake.AppendPredictions(ctx, p); err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Lake: failingLake{e.lake}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := svc.Submit(ctx, []Feedback{fb(p.PredictionID, "1", now.Format(time.RFC3339))})
	if pulse.ErrorCode(err) != pulse.EUNAVAILABLE || rs != nil {
		t.Errorf("Submit: got %v, %v; want EUNAVAILABLE and no results", rs, err)
	}
	if l, _ := e.lake.Labelled(ctx, []string{p.PredictionID}); l[0] {
		t.Error("labelled after a refused append: got true, want false")
	}
}

// TestRecent reads back, after a restart, the outcomes observed since a time, oldest first.
func TestRecent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	var items []Feedback
	var preds []lake.Prediction
	for i := range 10 {
		p := prediction(now.Add(-time.Duration(10-i)*24*time.Hour), uint64(i), []string{"a", "b"}[i%2], 1)
		preds = append(preds, p)
		items = append(items, fb(p.PredictionID, "1", now.Add(-time.Duration(10-i)*time.Hour).Format(time.RFC3339)))
	}
	if err := e.lake.AppendPredictions(ctx, preds...); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Submit(ctx, items); err != nil {
		t.Fatal(err)
	}
	e.close(t)
	e.open(t)
	got, err := e.svc.Recent(ctx, now.Add(-5*time.Hour-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("recent outcomes: got %d, want the 5 observed in the last 5 hours", len(got))
	}
	for i, o := range got {
		if o.PredictionID != preds[5+i].PredictionID || o.Model != preds[5+i].Model {
			t.Errorf("recent outcome %d: got %s of %s, want %s of %s", i, o.PredictionID, o.Model, preds[5+i].PredictionID, preds[5+i].Model)
		}
	}
}

// BenchmarkSubmit labels predictions in batches of 1,000, each a first label, among 200,000
// predictions over three days: the join (warm after the first batch), the duplicate check and
// the durable append of the outcomes (one WAL fsync per batch).
func BenchmarkSubmit(b *testing.B) {
	ctx := context.Background()
	const batch = 1000
	e := newEnv(b)
	n := max(200_000, (b.N+1)*batch)
	ids := make([]string, 0, n)
	preds := make([]lake.Prediction, 0, 1000)
	for i := range n {
		p := prediction(now.Add(-72*time.Hour+time.Duration(i)*72*time.Hour/time.Duration(n)), uint64(i), "heart", 1)
		preds = append(preds, p)
		ids = append(ids, p.PredictionID)
		if len(preds) == cap(preds) {
			if err := e.lake.AppendPredictions(ctx, preds...); err != nil {
				b.Fatal(err)
			}
			preds = preds[:0]
		}
	}
	if err := e.lake.AppendPredictions(ctx, preds...); err != nil {
		b.Fatal(err)
	}
	if err := e.lake.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	observed := now.Format(time.RFC3339)
	items := make([]Feedback, batch)
	next := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for i := range items {
			items[i] = Feedback{PredictionID: ids[(next*7919)%n], Label: json.RawMessage("1"), ObservedAt: observed, Source: SourceAPI}
			next++
		}
		rs, err := e.svc.Submit(ctx, items)
		if err != nil {
			b.Fatal(err)
		}
		if s := Summarize(rs); s.Joined != batch {
			b.Fatalf("joined %d of %d", s.Joined, batch)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "labels/s")
}
