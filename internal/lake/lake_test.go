package lake

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudmedical/pulse/internal/blobstore"
	"github.com/cloudmedical/pulse/internal/pulse"
)

var dataDir = filepath.Join("..", "..", "..", "shared", "datasets", "heart-disease")

// env is a lake's directories: the WAL and the store.
type env struct {
	walDir   string
	storeDir string
}

func newEnv(t testing.TB) env {
	d := t.TempDir()
	return env{walDir: filepath.Join(d, "wal"), storeDir: filepath.Join(d, "lake")}
}

func (e env) open(t testing.TB, cfg Config) *Lake {
	t.Helper()
	l, err := e.tryOpen(t, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func (e env) tryOpen(t testing.TB, cfg Config) (*Lake, error) {
	t.Helper()
	st, err := blobstore.Open(context.Background(), blobstore.FileURL(e.storeDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg.WALDir, cfg.Store = e.walDir, st
	return Open(context.Background(), cfg)
}

// storedRow is a row read back from a Parquet file with its partition.
type storedRow struct {
	predictionRow
	model, date, file string
}

// readLake reads every Parquet file of the predictions table.
func (e env) readLake(t testing.TB) []storedRow {
	t.Helper()
	var rows []storedRow
	root := filepath.Join(e.storeDir, "predictions")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !strings.HasSuffix(path, ".parquet") {
			t.Errorf("unexpected file in the lake: %s", path)
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 3 || !strings.HasPrefix(parts[0], "model=") || !strings.HasPrefix(parts[1], "date=") || !strings.HasPrefix(parts[2], "part-") {
			t.Errorf("object %s: want model=<m>/date=<d>/part-<seq>.parquet", rel)
			return nil
		}
		model, err := url.PathUnescape(strings.TrimPrefix(parts[0], "model="))
		if err != nil {
			return err
		}
		got, err := parquet.ReadFile[predictionRow](path)
		if err != nil {
			return fmt.Errorf("read %s: %w", rel, err)
		}
		for _, r := range got {
			rows = append(rows, storedRow{predictionRow: r, model: model, date: strings.TrimPrefix(parts[1], "date="), file: rel})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// countIDs returns how often each prediction id is stored.
func countIDs(rows []storedRow) map[string]int {
	n := map[string]int{}
	for _, r := range rows {
		n[r.PredictionID]++
	}
	return n
}

// heartRecords turns the rows of the Cleveland data into predictions, as serving would.
func heartRecords(t testing.TB) []Prediction {
	t.Helper()
	f, err := os.Open(filepath.Join(dataDir, "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var header []string
	var recs []Prediction
	base := time.Date(2024, 3, 1, 23, 0, 0, 123456789, time.FixedZone("CET", 3600))
	for sc.Scan() {
		cells := strings.Split(sc.Text(), ",")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if header == nil {
			header = cells
			continue
		}
		var b strings.Builder
		b.WriteByte('{')
		for i, name := range header[:len(header)-1] {
			if i > 0 {
				b.WriteByte(',')
			}
			v := cells[i]
			if v == "?" {
				v = "null"
			}
			fmt.Fprintf(&b, "%q:%s", name, v)
		}
		b.WriteByte('}')
		i := len(recs)
		label := 0
		if cells[len(cells)-1] != "0" {
			label = 1
		}
		id := fmt.Sprintf("00000000-0000-7000-8000-%012d", i)
		features := b.String()
		recs = append(recs, Prediction{
			PredictionID:  id,
			ScoredAt:      base.Add(time.Duration(i) * time.Minute), // crosses midnight UTC
			Model:         []string{"heart", "heart v2/β"}[i%2],
			Version:       1 + i%3,
			Alias:         []string{"champion", "", "challenger"}[i%3],
			Label:         label,
			Probability:   float64(i) / 1000,
			Threshold:     0.5,
			LatencyMicros: int64(100 + i),
			RequestID:     fmt.Sprintf("req-%d", i),
			Features:      []byte(features),
			Response:      []byte(fmt.Sprintf(`{"prediction_id":%q,"label":%d,"features":%s}`, id, label, features)),
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 303 {
		t.Fatalf("Cleveland data: got %d rows, want 303", len(recs))
	}
	return recs
}

func TestRoundTripHeartDisease(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	l := e.open(t, Config{Registerer: reg, MaxSegmentBytes: 64 << 10})
	recs := heartRecords(t)
	ctx := context.Background()
	for i := 0; i < len(recs); i += 10 {
		if err := l.AppendPredictions(ctx, recs[i:min(i+10, len(recs))]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if got := testutil.ToFloat64(l.m.appended.WithLabelValues("predictions")); got != float64(len(recs)) {
		t.Errorf("records appended metric: got %v, want %d", got, len(recs))
	}
	if got := testutil.ToFloat64(l.m.compacted); got != float64(len(recs)) {
		t.Errorf("records compacted metric: got %v, want %d", got, len(recs))
	}
	rows := e.readLake(t)
	byID := map[string]storedRow{}
	for _, r := range rows {
		if _, dup := byID[r.PredictionID]; dup {
			t.Errorf("prediction %s stored twice", r.PredictionID)
		}
		byID[r.PredictionID] = r
	}
	if len(byID) != len(recs) {
		t.Fatalf("stored predictions: got %d, want %d", len(byID), len(recs))
	}
	dates := map[string]bool{}
	for _, p := range recs {
		r := byID[p.PredictionID]
		want := predictionRow{
			PredictionID: p.PredictionID,
			ScoredAt:     p.ScoredAt.UTC().Truncate(time.Microsecond),
			ModelVersion: int64(p.Version),
			Alias:        p.Alias,
			Label:        int32(p.Label),
			Probability:  p.Probability,
			Threshold:    p.Threshold,
			LatencyUS:    p.LatencyMicros,
			RequestID:    p.RequestID,
			Features:     string(p.Features),
			Response:     string(p.Response),
		}
		if !r.ScoredAt.Equal(want.ScoredAt) || r.ScoredAt.Location() != time.UTC {
			t.Errorf("%s: scored_at got %v, want %v in UTC", p.PredictionID, r.ScoredAt, want.ScoredAt)
		}
		r.ScoredAt = want.ScoredAt
		if r.predictionRow != want {
			t.Errorf("%s: got row %+v, want %+v", p.PredictionID, r.predictionRow, want)
		}
		if r.model != p.Model {
			t.Errorf("%s: model partition got %q, want %q", p.PredictionID, r.model, p.Model)
		}
		if wantDate := p.ScoredAt.UTC().Format(time.DateOnly); r.date != wantDate {
			t.Errorf("%s: date partition got %q, want %q", p.PredictionID, r.date, wantDate)
		}
		dates[r.date] = true
	}
	if len(dates) < 2 {
		t.Errorf("dates: got %v, want records on both sides of midnight UTC", slices.Sorted(maps.Keys(dates)))
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if segs, _ := filepath.Glob(filepath.Join(e.walDir, "*.wal")); len(segs) != 0 {
		t.Errorf("WAL segments after Close: got %v, want none", segs)
	}
	// The metrics are unregistered, so the lake can be opened again on the same registry.
	l = e.open(t, Config{Registerer: reg})
	l.Close(ctx)
}

func TestParquetSchema(t *testing.T) {
	e := newEnv(t)
	l := e.open(t, Config{})
	ctx := context.Background()
	rec := heartRecords(t)[0]
	if err := l.AppendPredictions(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rows := e.readLake(t)
	if len(rows) != 1 {
		t.Fatalf("rows: got %d, want 1", len(rows))
	}
	f, err := os.Open(filepath.Join(e.storeDir, "predictions", filepath.FromSlash(rows[0].file)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name    string
		kind    parquet.Kind
		logical string
	}{
		{"prediction_id", parquet.ByteArray, "STRING"},
		{"scored_at", parquet.Int64, "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)"},
		{"model_version", parquet.Int64, "INT(64,true)"},
		{"alias", parquet.ByteArray, "STRING"},
		{"shadow", parquet.Boolean, ""},
		{"label", parquet.Int32, "INT(32,true)"},
		{"probability", parquet.Double, ""},
		{"threshold", parquet.Double, ""},
		{"latency_us", parquet.Int64, "INT(64,true)"},
		{"request_id", parquet.ByteArray, "STRING"},
		{"features", parquet.ByteArray, "STRING"},
		{"response", parquet.ByteArray, "STRING"},
	}
	fields := pf.Schema().Fields()
	if len(fields) != len(want) {
		t.Fatalf("columns: got %d (%v), want %d", len(fields), pf.Schema(), len(want))
	}
	for i, w := range want {
		f := fields[i]
		logical := ""
		if lt := f.Type().LogicalType(); lt != nil {
			logical = lt.String()
		}
		if f.Name() != w.name || f.Type().Kind() != w.kind || logical != w.logical || f.Optional() {
			t.Errorf("column %d: got %s %v %q optional=%v, want %s %v %q required",
				i, f.Name(), f.Type().Kind(), logical, f.Optional(), w.name, w.kind, w.logical)
		}
	}
	for _, rg := range pf.Metadata().RowGroups {
		for _, c := range rg.Columns {
			if c.MetaData.Codec != format.Zstd {
				t.Errorf("column %v: codec %v, want ZSTD", c.MetaData.PathInSchema, c.MetaData.Codec)
			}
		}
	}
}

// failingHook returns an afterObject hook that fails the calls for which fail returns true.
func failingHook(fail func(call int, key string) bool) (func(string) error, *atomic.Int32) {
	var calls atomic.Int32
	return func(key string) error {
		if fail(int(calls.Add(1)), key) {
			return errors.New("injected crash after writing " + key)
		}
		return nil
	}, &calls
}

func TestExactlyOnceAfterInterruptedCompaction(t *testing.T) {
	tests := []struct {
		name string
		// fail decides which afterObject calls fail; the segment has 3 partitions.
		fail func(call int, key string) bool
	}{
		{"crash after the first of three objects", func(call int, key string) bool { return call%3 == 1 }},
		{"crash after every object but before the segment is removed", func(call int, key string) bool { return call%3 == 0 }},
		{"every write fails", func(int, string) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			hook, calls := failingHook(tt.fail)
			l := e.open(t, Config{hooks: testHooks{afterObject: hook, minBackoff: time.Hour}})
			var recs []Prediction
			for i := range 30 {
				recs = append(recs, Prediction{
					PredictionID: fmt.Sprintf("id-%02d", i),
					ScoredAt:     time.Date(2024, 5, 1, 12, 0, i, 0, time.UTC),
					Model:        []string{"a", "b", "c"}[i%3], // 3 partitions
					Features:     []byte(`{}`),
					Response:     []byte(`{}`),
				})
			}
			if err := l.AppendPredictions(ctx, recs...); err != nil {
				t.Fatal(err)
			}
			if err := l.Flush(ctx); err == nil {
				t.Fatal("Flush: got nil error, want the injected failure")
			}
			if err := l.Close(ctx); err == nil {
				t.Fatal("Close: got nil error, want the injected failure")
			}
			if calls.Load() == 0 {
				t.Fatal("no object was written before the failure")
			}
			if segs, _ := filepath.Glob(filepath.Join(e.walDir, "*.wal")); len(segs) != 1 {
				t.Fatalf("WAL segments after the failures: got %v, want the one segment", segs)
			}

			// Restart: Open compacts the segment again, replacing the objects.
			l = e.open(t, Config{})
			rows := e.readLake(t)
			n := countIDs(rows)
			for _, r := range recs {
				if n[r.PredictionID] != 1 {
					t.Errorf("%s stored %d times, want once", r.PredictionID, n[r.PredictionID])
				}
			}
			if len(rows) != len(recs) {
				t.Errorf("rows: got %d, want %d", len(rows), len(recs))
			}
			files := map[string]bool{}
			for _, r := range rows {
				files[r.file] = true
			}
			if len(files) != 3 {
				t.Errorf("objects: got %v, want 3 partitions of one segment", slices.Sorted(maps.Keys(files)))
			}
			if segs, _ := filepath.Glob(filepath.Join(e.walDir, "*.wal")); len(segs) != 0 {
				t.Errorf("WAL segments after recovery: got %v, want none", segs)
			}
			if err := l.Close(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOpenSweepsTempFiles(t *testing.T) {
	e := newEnv(t)
	tmp := filepath.Join(e.storeDir, "predictions", "model=a", "date=2024-01-01", "part-00000000000000000001.parquet.1a2b3c.tmp")
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := e.open(t, Config{})
	defer l.Close(context.Background())
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temp file: got stat error %v, want it deleted", err)
	}
}

func TestBackgroundCompactionRetries(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	hook, _ := failingHook(func(call int, _ string) bool { return call <= 2 })
	results := make(chan error, 100)
	l := e.open(t, Config{
		MaxSegmentAge: 5 * time.Millisecond,
		hooks: testHooks{
			afterObject: hook,
			compacted:   func(err error) { results <- err },
			minBackoff:  time.Millisecond,
		},
	})
	rec := Prediction{PredictionID: "p1", ScoredAt: time.Now(), Model: "m", Features: []byte(`{}`), Response: []byte(`{}`)}
	if err := l.AppendPredictions(ctx, rec); err != nil {
		t.Fatal(err)
	}
	failures := 0
	for err := range results { // the segment seals by age; the compactor fails twice, then succeeds
		if err == nil {
			break
		}
		failures++
	}
	if failures != 2 {
		t.Errorf("failed compactions before success: got %d, want 2", failures)
	}
	if got := testutil.ToFloat64(l.m.compactionErrors); got != 2 {
		t.Errorf("compaction errors metric: got %v, want 2", got)
	}
	if n := countIDs(e.readLake(t)); len(n) != 1 || n["p1"] != 1 {
		t.Errorf("stored ids: got %v, want p1 once", n)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAppendValidation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := e.open(t, Config{})
	ok := Prediction{PredictionID: "p", ScoredAt: time.Now(), Model: "m"}
	tests := []struct {
		name  string
		edit  func(p *Prediction)
		field string
	}{
		{"no id", func(p *Prediction) { p.PredictionID = "" }, "PredictionID"},
		{"no model", func(p *Prediction) { p.Model = "" }, "Model"},
		{"no time", func(p *Prediction) { p.ScoredAt = time.Time{} }, "ScoredAt"},
		{"label too large", func(p *Prediction) { p.Label = 1 << 40 }, "Label"},
	}
	for _, tt := range tests {
		p := ok
		tt.edit(&p)
		err := l.AppendPredictions(ctx, ok, p)
		var perr *pulse.Error
		if !errors.As(err, &perr) || perr.Code != pulse.EINVALID || perr.Field != tt.field || !strings.Contains(perr.Message, "prediction 1") {
			t.Errorf("%s: got %v, want EINVALID on field %s of prediction 1", tt.name, err, tt.field)
		}
	}
	if err := l.AppendPredictions(ctx); err != nil {
		t.Errorf("appending nothing: got %v, want nil", err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	if err := l.AppendPredictions(ctx, ok); pulse.ErrorCode(err) != pulse.EUNAVAILABLE {
		t.Errorf("append after Close: got %v, want EUNAVAILABLE", err)
	}
	if rows := e.readLake(t); len(rows) != 0 {
		t.Errorf("rows: got %d, want 0 (every append was rejected)", len(rows))
	}
}

func TestConfigValidation(t *testing.T) {
	st, err := blobstore.Open(context.Background(), blobstore.FileURL(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, cfg := range []Config{
		{Store: st},
		{WALDir: t.TempDir()},
		{WALDir: t.TempDir(), Store: st, MaxSegmentBytes: -1},
		{WALDir: t.TempDir(), Store: st, MaxSegmentAge: -1},
	} {
		if _, err := Open(context.Background(), cfg); pulse.ErrorCode(err) != pulse.EINVALID {
			t.Errorf("Open(%+v): got %v, want EINVALID", cfg, err)
		}
	}
}

func TestConcurrentAppendsWhileCompacting(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := e.open(t, Config{MaxSegmentBytes: 16 << 10, MaxSegmentAge: 2 * time.Millisecond})
	const goroutines, perG = 16, 100
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				p := Prediction{
					PredictionID: fmt.Sprintf("g%02d-%03d", g, i),
					ScoredAt:     time.Now(),
					Model:        fmt.Sprintf("m%d", g%3),
					Features:     []byte(`{"age":63}`),
					Response:     []byte(`{"label":1}`),
				}
				if err := l.AppendPredictions(ctx, p); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	n := countIDs(e.readLake(t))
	if len(n) != goroutines*perG {
		t.Errorf("stored predictions: got %d, want %d", len(n), goroutines*perG)
	}
	for id, c := range n {
		if c != 1 {
			t.Errorf("%s stored %d times, want once", id, c)
		}
	}
}

func TestEncodingRoundTripAndTruncation(t *testing.T) {
	p := heartRecords(t)[5]
	enc := appendPrediction(nil, &p)
	part, row, err := decodePrediction(enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if part.name != p.Model || row.PredictionID != p.PredictionID || row.Features != string(p.Features) || row.Response != string(p.Response) ||
		row.Probability != p.Probability || row.LatencyUS != p.LatencyMicros || int(row.ModelVersion) != p.Version || row.Alias != p.Alias {
		t.Errorf("round trip: got %+v in %+v, want %+v", row, part, p)
	}
	// Every proper prefix, and any trailing byte, is rejected rather than decoded.
	for n := range len(enc) {
		if _, _, err := decodePrediction(enc[:n], nil); err == nil {
			t.Errorf("prefix of %d of %d bytes: got nil error, want one", n, len(enc))
		}
	}
	if _, _, err := decodePrediction(append(enc, 0), nil); err == nil {
		t.Error("trailing byte: got nil error, want one")
	}
	bad := slices.Clone(enc)
	bad[1] = 99
	if _, _, err := decodePrediction(bad, nil); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("unknown version: got %v, want an error naming version 99", err)
	}
}

func TestEscapePartitionValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"heart", "heart"},
		{"heart-v2_final.1", "heart-v2_final.1"},
		{"a/b c", "a%2Fb%20c"},
		{"x=y%", "x%3Dy%25"},
		{"β", "%CE%B2"},
	}
	for _, tt := range tests {
		got := escapePartitionValue(tt.in)
		if got != tt.want {
			t.Errorf("escapePartitionValue(%q): got %q, want %q", tt.in, got, tt.want)
		}
		if back, err := url.PathUnescape(got); err != nil || back != tt.in {
			t.Errorf("unescape %q: got %q, %v; want %q", got, back, err, tt.in)
		}
	}
}

// benchRecord makes a prediction with a response of about 600 bytes around features of about 300 bytes.
func benchRecord(i int64) Prediction {
	features := `{"age":63.0,"sex":1.0,"cp":1.0,"trestbps":145.0,"chol":233.0,"fbs":1.0,"restecg":2.0,"thalach":150.0,"exang":0.0,"oldpeak":2.3,"slope":3.0,"ca":0.0,"thal":6.0,"patient_ref":"ward-7/bed-12","source":"emr-gateway","note":"admitted via emergency; chest pain on exertion"}`
	id := fmt.Sprintf("0190a7c4-5b1e-7c3a-9f00-%012d", i)
	response := `{"prediction_id":"` + id + `","label":1,"probability":0.8731,"threshold":0.5,"model":{"name":"heart","version":3,"alias":"champion","algorithm":"logistic_regression"},"scored_at":"2024-05-01T12:00:00.123456Z","warnings":[],"features":` + features + `}`
	return Prediction{
		PredictionID: id, ScoredAt: time.Now(), Model: "heart", Version: 3, Alias: "champion", Label: 1,
		Probability: 0.8731, Threshold: 0.5, LatencyMicros: 180, RequestID: "req-" + id,
		Features: []byte(features), Response: []byte(response),
	}
}

// BenchmarkAppendPredictions appends one prediction per call from many goroutines, as the
// HTTP handlers do, with the background compactor running (default segment limits).
func BenchmarkAppendPredictions(b *testing.B) {
	for _, par := range []int{1, 32} {
		b.Run(fmt.Sprintf("goroutines=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			e := newEnv(b)
			l := e.open(b, Config{})
			rec := benchRecord(0)
			b.SetBytes(int64(len(rec.Features) + len(rec.Response)))
			b.SetParallelism(par)
			b.ReportAllocs()
			b.ResetTimer()
			var mu sync.Mutex
			var latencies []time.Duration
			b.RunParallel(func(pb *testing.PB) {
				lat := make([]time.Duration, 0, 1024)
				for pb.Next() {
					start := time.Now()
					if err := l.AppendPredictions(context.Background(), rec); err != nil {
						b.Error(err)
						return
					}
					lat = append(lat, time.Since(start))
				}
				mu.Lock()
				latencies = append(latencies, lat...)
				mu.Unlock()
			})
			b.StopTimer()
			slices.Sort(latencies)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-µs")
			if err := l.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkCompaction measures turning a sealed segment of 10,000 predictions into Parquet:
// "same" repeats one record (but its id), "heart" has the Cleveland rows with the responses
// serving gives them (unique ids and probabilities), as asynchronous scoring stores them.
func BenchmarkCompaction(b *testing.B) {
	heart := heartRecords(b)
	for _, data := range []string{"same", "heart"} {
		b.Run(data, func(b *testing.B) {
			ctx := context.Background()
			e := newEnv(b)
			l := e.open(b, Config{MaxSegmentAge: time.Hour})
			defer l.Close(ctx)
			recs := make([]Prediction, 10000)
			now := time.Now()
			for i := range recs {
				recs[i] = benchRecord(int64(i))
				if data == "heart" {
					h := heart[i%len(heart)]
					id := fmt.Sprintf("%08x-%04x-7%03x-8%03x-%012x", now.UnixMilli()>>16, now.UnixMilli()&0xffff, i%4096, i%4096, uint64(i)*0x9e3779b97f4a7c15>>16)
					p := float64(i%997) / 997
					recs[i].PredictionID, recs[i].Features, recs[i].Probability = id, h.Features, p
					recs[i].Response = fmt.Appendf(nil, `%s,"prediction":{"label":%d,"probability":%v,"threshold":0.5},"model":{"name":"heart-disease","version":1,"alias":"champion","metrics":{"accuracy":0.8524590163934426,"roc_auc":0.9134199134199135}},"prediction_id":%q,"scored_at":%q}`,
						h.Features[:len(h.Features)-1], h.Label, p, id, now.UTC().Format(time.RFC3339Nano))
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				if err := l.AppendPredictions(ctx, recs...); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := l.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// TestWriteDemoLake writes the Cleveland predictions to the lake in $PULSE_LAKE_DEMO_DIR for
// the manual check with pyarrow and DuckDB (testdata/check_lake.py). It does nothing in a
// normal test run.
func TestWriteDemoLake(t *testing.T) {
	dir := os.Getenv("PULSE_LAKE_DEMO_DIR")
	if dir == "" {
		return
	}
	e := env{walDir: filepath.Join(dir, "wal"), storeDir: filepath.Join(dir, "lake")}
	l := e.open(t, Config{MaxSegmentBytes: 64 << 10})
	recs := heartRecords(t)
	for i := 0; i < len(recs); i += 50 {
		if err := l.AppendPredictions(context.Background(), recs[i:min(i+50, len(recs))]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
