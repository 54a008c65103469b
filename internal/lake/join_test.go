package lake

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// idAt returns a UUIDv7 of time t whose random bits are n, as serving's ids are.
func idAt(t time.Time, n uint64) string {
	hi := uint64(t.UnixMilli())<<16 | 0x7000 | n>>48&0xfff
	lo := 0x8000000000000000 | n&0x0fffffffffffffff
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", hi>>32, hi>>16&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}

// joinRecord is a prediction scored at t (its id carries t plus a millisecond).
func joinRecord(t time.Time, n uint64, model string, version int, shadow bool) Prediction {
	id := idAt(t.Add(time.Millisecond), n)
	return Prediction{
		PredictionID: id, ScoredAt: t, Model: model, Version: version, Alias: "champion", Shadow: shadow,
		Label: int(n % 2), Probability: float64(n%1000) / 1000, Threshold: 0.5, LatencyMicros: 90,
		RequestID: fmt.Sprintf("req-%d", n), Features: []byte(`{"age":63}`), Response: []byte(`{"prediction_id":"` + id + `"}`),
	}
}

// wantMatch is what FindPredictions must return for p at index i.
func wantMatch(i int, p Prediction) Match {
	return Match{Index: i, StoredPrediction: StoredPrediction{
		Model: p.Model, Version: p.Version, Alias: p.Alias, Shadow: p.Shadow, Label: p.Label,
		Probability: p.Probability, Threshold: p.Threshold, ScoredAt: p.ScoredAt.UTC().Truncate(time.Microsecond),
	}}
}

func equalMatches(a, b []Match) bool {
	return slices.EqualFunc(a, b, func(x, y Match) bool {
		return x.Index == y.Index && x.Model == y.Model && x.Version == y.Version && x.Alias == y.Alias &&
			x.Shadow == y.Shadow && x.Label == y.Label && x.Probability == y.Probability && x.Threshold == y.Threshold &&
			x.ScoredAt.Equal(y.ScoredAt)
	})
}

func TestPredictionTime(t *testing.T) {
	at := time.Date(2026, 11, 25, 20, 46, 52, 123e6, time.UTC)
	tests := []struct {
		id   string
		want time.Time
		err  string
	}{
		{idAt(at, 7), at, ""},
		{strings.ToUpper(idAt(at, 7)), at, ""},
		{"0193a5c2-1f7e-4b8a-9c3d-2e1f0a9b8c7d", time.Time{}, "version 4"},
		{"p-1", time.Time{}, "want a UUID"},
		{"0193a5c21f7e7b8a9c3d2e1f0a9b8c7d", time.Time{}, "want a UUID"},
		{"0193a5c2-1f7e-7b8a-9c3d-2e1f0a9b8c7g", time.Time{}, "want a UUID"},
		{"", time.Time{}, "want a UUID"},
	}
	for _, tt := range tests {
		got, err := PredictionTime(tt.id)
		if tt.err == "" {
			if err != nil || !got.Equal(tt.want) {
				t.Errorf("PredictionTime(%q): got %v, %v; want %v", tt.id, got, err, tt.want)
			}
			continue
		}
		var perr *pulse.Error
		if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.As(err, &perr) || perr.Field != "prediction_id" || perr.Code != pulse.EUNPROCESSABLE {
			t.Errorf("PredictionTime(%q): got %v, want EUNPROCESSABLE on prediction_id saying %q", tt.id, err, tt.err)
		}
	}
}

// TestFindPredictions stores predictions over three days, in many files and row groups and
// still in the WAL, some with a shadow challenger's row under the same id, and finds each
// exactly, before and after a restart.
func TestFindPredictions(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := e.open(t, Config{MaxSegmentBytes: 256 << 10, MaxSegmentAge: time.Hour})
	start := time.Date(2026, 11, 20, 22, 30, 0, 0, time.UTC)
	var recs []Prediction
	for i := range 20000 {
		at := start.Add(time.Duration(i) * 13 * time.Second) // three days, crossing midnight
		p := joinRecord(at, uint64(i), []string{"heart", "heart v2/β"}[i%2], 1+i%3, false)
		recs = append(recs, p)
		if i%5 == 0 { // a shadow challenger scored the same request
			s := p
			s.Version, s.Shadow, s.Alias, s.Probability = 9, true, "challenger", 0.25
			recs = append(recs, s)
		}
	}
	for i := 0; i < len(recs); i += 1000 {
		if err := l.AppendPredictions(ctx, recs[i:min(i+1000, len(recs))]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// A big segment makes files of several row groups.
	var big []Prediction
	for i := range 3 * joinRowGroupRows {
		big = append(big, joinRecord(start.Add(-48*time.Hour+time.Duration(i)*time.Millisecond), uint64(100000+i), "heart", 4, false))
	}
	if err := l.AppendPredictions(ctx, big...); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The tail: appended, not compacted.
	tail := []Prediction{joinRecord(time.Now(), 1, "heart", 5, false), joinRecord(start.Add(time.Hour), 2, "heart", 5, false)}
	tailShadow := tail[1]
	tailShadow.Shadow, tailShadow.Version = true, 6
	tail = append(tail, tailShadow)
	if err := l.AppendPredictions(ctx, tail...); err != nil {
		t.Fatal(err)
	}

	byID := map[string][]Prediction{}
	for _, p := range slices.Concat(recs, big, tail) {
		byID[p.PredictionID] = append(byID[p.PredictionID], p)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var ids []string
	var want []Match
	add := func(id string) {
		ps := byID[id]
		for _, p := range ps {
			want = append(want, wantMatch(len(ids), p))
		}
		ids = append(ids, id)
	}
	for range 3000 {
		add(recs[rng.IntN(len(recs))].PredictionID)
	}
	add(big[5].PredictionID)
	add(big[len(big)-1].PredictionID)
	add(tail[0].PredictionID)
	add(tail[1].PredictionID)
	add(recs[0].PredictionID) // asked twice
	add(recs[0].PredictionID)
	for _, missing := range []string{
		idAt(start.Add(time.Hour), 424242),                 // a date with files
		idAt(start.Add(-400*24*time.Hour), 1),              // a date without
		"0193a5c2-1f7e-4b8a-9c3d-2e1f0a9b8c7d",             // UUIDv4
		"not-an-id", strings.ToUpper(recs[1].PredictionID), // upper case finds it
	} {
		add(missing)
	}
	// byID has no upper-case key: add its match by hand.
	up := len(ids) - 1
	for _, p := range byID[recs[1].PredictionID] {
		want = append(want, wantMatch(up, p))
	}
	sortMatches(want)

	check := func(when string) {
		t.Helper()
		got, err := l.FindPredictions(ctx, ids)
		if err != nil {
			t.Fatalf("%s: FindPredictions: %v", when, err)
		}
		if !equalMatches(got, want) {
			t.Errorf("%s: got %d matches, want %d", when, len(got), len(want))
			for i := range min(len(got), len(want)) {
				if !equalMatches(got[i:i+1], want[i:i+1]) {
					t.Errorf("%s: first difference at %d: got %+v, want %+v", when, i, got[i], want[i])
					break
				}
			}
		}
	}
	check("before restart")
	read := testutil.ToFloat64(l.m.rowGroupsRead)
	check("again")
	if again := testutil.ToFloat64(l.m.rowGroupsRead); again != read {
		t.Errorf("row groups read by the same lookup again: got %v, want 0 (cached)", again-read)
	}
	// Looking up one id of the big file decodes one of its three row groups.
	before := testutil.ToFloat64(l.m.rowGroupsRead)
	if got, err := l.FindPredictions(ctx, []string{big[joinRowGroupRows+7].PredictionID}); err != nil || len(got) != 1 {
		t.Fatalf("one id of the big file: got %v, %v; want one match", got, err)
	}
	if _, err := l.FindPredictions(ctx, []string{big[len(big)/2].PredictionID}); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(l.m.rowGroupsRead) - before; n > 1 {
		t.Errorf("row groups read for two ids of one row group: got %v, want at most 1", n)
	}

	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	l = e.open(t, Config{})
	defer l.Close(ctx)
	check("after restart")
}

func sortMatches(ms []Match) {
	slices.SortStableFunc(ms, func(a, b Match) int {
		if a.Index != b.Index {
			return a.Index - b.Index
		}
		if a.Shadow != b.Shadow {
			return compareBool(a.Shadow, b.Shadow)
		}
		if a.Model != b.Model {
			return strings.Compare(a.Model, b.Model)
		}
		return a.Version - b.Version
	})
}

// TestFindWhileCompacting looks up each record right after its append while the compactor
// moves records from the WAL's tail to files: every record is found exactly once.
func TestFindWhileCompacting(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := e.open(t, Config{MaxSegmentBytes: 8 << 10, MaxSegmentAge: time.Millisecond})
	defer l.Close(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				p := joinRecord(time.Now(), uint64(g<<20|i), fmt.Sprintf("m%d", g%2), 1, false)
				if err := l.AppendPredictions(ctx, p); err != nil {
					errs <- err
					return
				}
				got, err := l.FindPredictions(ctx, []string{p.PredictionID})
				if err != nil {
					errs <- err
					return
				}
				if !equalMatches(got, []Match{wantMatch(0, p)}) {
					errs <- fmt.Errorf("%s: got %+v, want it once", p.PredictionID, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := l.idx.tailLen(); n != 0 {
		t.Errorf("tail index after flush: got %d ids, want 0", n)
	}
}

// oldPredictionRow is the predictions schema before shadow scoring.
type oldPredictionRow struct {
	PredictionID string    `parquet:"prediction_id"`
	ScoredAt     time.Time `parquet:"scored_at,timestamp(microsecond:utc)"`
	ModelVersion int64     `parquet:"model_version"`
	Alias        string    `parquet:"alias,dict"`
	Label        int32     `parquet:"label"`
	Probability  float64   `parquet:"probability"`
	Threshold    float64   `parquet:"threshold"`
	LatencyUS    int64     `parquet:"latency_us"`
	RequestID    string    `parquet:"request_id"`
	Features     string    `parquet:"features"`
	Response     string    `parquet:"response"`
}

// TestFindInOlderFiles finds predictions in a file written before the join existed: no
// shadow column, rows in append order, one row group.
func TestFindInOlderFiles(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	at := time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC)
	var rows []oldPredictionRow
	for i := range 50 {
		p := joinRecord(at.Add(time.Duration(49-i)*time.Second), uint64(i), "heart", 1, false) // descending ids
		rows = append(rows, oldPredictionRow{PredictionID: p.PredictionID, ScoredAt: p.ScoredAt, ModelVersion: 1, Alias: "champion",
			Label: int32(p.Label), Probability: p.Probability, Threshold: 0.5, Features: "{}", Response: "{}"})
	}
	path := filepath.Join(e.storeDir, "predictions", "model=heart", "date=2026-10-01", "part-00000000000000000001.parquet")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := parquet.WriteFile(path, rows); err != nil {
		t.Fatal(err)
	}
	l := e.open(t, Config{})
	defer l.Close(ctx)
	ids := []string{rows[3].PredictionID, rows[40].PredictionID, idAt(at, 999)}
	got, err := l.FindPredictions(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Index != 0 || got[1].Index != 1 || got[0].Probability != rows[3].Probability ||
		got[1].Probability != rows[40].Probability || got[0].Shadow || got[0].Model != "heart" || !got[1].ScoredAt.Equal(rows[40].ScoredAt) {
		t.Errorf("got %+v, want rows 3 and 40", got)
	}
}

// TestPredictionEncodingV1 decodes a WAL record written before shadow scoring.
func TestPredictionEncodingV1(t *testing.T) {
	p := joinRecord(time.Now(), 5, "heart", 2, false)
	v2 := appendPrediction(nil, &p)
	// Version 1 is version 2 without the shadow byte, which follows the alias.
	d := newDecoder(v2[2:])
	d.string() // id
	d.varint() // scored_at
	d.string() // model
	d.varint() // version
	d.string() // alias
	at := len(v2) - len(d.b)
	v1 := slices.Concat(v2[:at], v2[at+1:])
	v1[1] = predictionVersionV1
	_, row, err := decodePrediction(v1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if row.PredictionID != p.PredictionID || row.Shadow || row.Probability != p.Probability || row.Response != string(p.Response) {
		t.Errorf("version 1 record: got %+v, want %+v without shadow", row, p)
	}
	p.Shadow = true
	_, row, err = decodePrediction(appendPrediction(nil, &p), nil)
	if err != nil || !row.Shadow {
		t.Errorf("version 2 record with shadow: got %+v, %v; want shadow", row, err)
	}
}

// BenchmarkFindPredictions looks up batches of 1,000 random ids among 300,000 predictions
// over three days (compacted, 10% with a shadow row): "cold" right after Open (footers and row
// groups read from the files), "warm" with the row groups in the cache.
func BenchmarkFindPredictions(b *testing.B) {
	ctx := context.Background()
	e := newEnv(b)
	l := e.open(b, Config{})
	start := time.Now().Add(-72 * time.Hour)
	const n = 300_000
	ids := make([]string, 0, n)
	batch := make([]Prediction, 0, 1100)
	for i := range n {
		p := joinRecord(start.Add(time.Duration(i)*72*time.Hour/n), uint64(i), "heart", 1, false)
		batch = append(batch, p)
		if i%10 == 0 {
			s := p
			s.Version, s.Shadow = 2, true
			batch = append(batch, s)
		}
		ids = append(ids, p.PredictionID)
		if len(batch) >= 1000 {
			if err := l.AppendPredictions(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := l.AppendPredictions(ctx, batch...); err != nil {
		b.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	query := func() []string {
		q := make([]string, 1000)
		for i := range q {
			q[i] = ids[rng.IntN(len(ids))]
		}
		return q
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			l := e.open(b, Config{})
			q := query()
			b.StartTimer()
			if m, err := l.FindPredictions(ctx, q); err != nil || len(m) < len(q) {
				b.Fatalf("got %d matches, %v; want at least %d", len(m), err, len(q))
			}
			b.StopTimer()
			l.Close(ctx)
			b.StartTimer()
		}
		b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "ids/s")
	})
	b.Run("warm", func(b *testing.B) {
		l := e.open(b, Config{})
		defer l.Close(ctx)
		if _, err := l.FindPredictions(ctx, ids); err != nil { // reads every row group once
			b.Fatal(err)
		}
		qs := make([][]string, 64)
		for i := range qs {
			qs[i] = query()
		}
		b.ReportAllocs()
		b.ResetTimer()
		i := 0
		for b.Loop() {
			if _, err := l.FindPredictions(ctx, qs[i%len(qs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "ids/s")
	})
}

// TestParseID checks parseID against the UUID's bytes, in both cases, and refuses a text with
// a bad byte at any position.
func TestParseID(t *testing.T) {
	for range 100 {
		u := uuid.New()
		want := idKey{binary.BigEndian.Uint64(u[:8]), binary.BigEndian.Uint64(u[8:])}
		for _, s := range []string{u.String(), strings.ToUpper(u.String())} {
			if got, ok := parseID(s); !ok || got != want {
				t.Fatalf("parseID(%q): got %x, %v; want %x", s, got, ok, want)
			}
			for i := range s {
				for _, c := range []byte{'g', 'G', '-', ' ', 0, 0xff, '/', ':', '@', '`'} {
					if c == s[i] {
						continue
					}
					b := []byte(s)
					b[i] = c
					if _, ok := parseID(string(b)); ok {
						t.Fatalf("parseID(%q): got ok, want a refusal", b)
					}
				}
			}
		}
	}
}

// BenchmarkTailIndex adds a prediction to the WAL tail index and drops the one added 100,000
// before, as appends and compactions do at steady state.
func BenchmarkTailIndex(b *testing.B) {
	x := newJoinIndex(nil, nil, DefaultJoinCacheBytes)
	const window = 100_000
	now := time.Now()
	recs := make([]Prediction, 4*window)
	keys := make([]idKey, len(recs))
	for i := range recs {
		recs[i] = joinRecord(now, uint64(i), "heart", 1, false)
		keys[i], _ = parseID(recs[i].PredictionID)
	}
	x.addTailPredictions(recs[:window])
	b.ReportAllocs()
	i := window
	for b.Loop() {
		x.addTailPredictions(recs[i%len(recs) : i%len(recs)+1])
		old := &recs[(i-window)%len(recs)]
		x.dropPrediction(keys[(i-window)%len(recs)], old.Model, int32(old.Version), old.Shadow)
		i++
	}
}
