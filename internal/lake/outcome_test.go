package lake

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// outcomeOf is the outcome of p labelled with label at observed.
func outcomeOf(p Prediction, label int, observed time.Time) Outcome {
	return Outcome{
		PredictionID: p.PredictionID, Model: p.Model, Version: p.Version, Alias: p.Alias, Shadow: p.Shadow,
		Probability: p.Probability, Predicted: p.Label, Threshold: p.Threshold, Label: label,
		ScoredAt: p.ScoredAt, ObservedAt: observed, ReceivedAt: observed.Add(time.Minute), Source: "api", FeedbackID: "req-" + p.PredictionID[:8],
	}
}

// TestOutcomesTable stores outcomes, sees them labelled at once (WAL tail), then in Parquet
// partitioned by model and the prediction's date, after a restart too, and reads them back.
func TestOutcomesTable(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := e.open(t, Config{MaxSegmentAge: time.Hour})
	day := time.Date(2026, 11, 24, 23, 59, 0, 0, time.UTC)
	var preds []Prediction
	var outs []Outcome
	for i := range 40 {
		p := joinRecord(day.Add(time.Duration(i)*3*time.Second), uint64(i), []string{"heart", "heart v2/β"}[i%2], 1, i%4 == 3)
		preds = append(preds, p)
		if i%3 != 1 {
			outs = append(outs, outcomeOf(p, i%2, day.Add(48*time.Hour+time.Duration(i)*time.Second)))
		}
	}
	ids := make([]string, len(preds))
	for i, p := range preds {
		ids[i] = p.PredictionID
	}
	labelledWant := func(i int) bool { return i%3 != 1 }
	check := func(when string) {
		t.Helper()
		got, err := l.Labelled(ctx, ids)
		if err != nil {
			t.Fatalf("%s: Labelled: %v", when, err)
		}
		for i := range ids {
			if got[i] != labelledWant(i) {
				t.Errorf("%s: Labelled(%d): got %v, want %v", when, i, got[i], labelledWant(i))
			}
		}
	}
	if err := l.AppendOutcomes(ctx, outs[:10]...); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendOutcomes(ctx, outs[10:]...); err != nil {
		t.Fatal(err)
	}
	check("half compacted, half in the WAL")
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	l = e.open(t, Config{})
	defer l.Close(ctx)
	check("after restart")

	files, _ := filepath.Glob(filepath.Join(e.storeDir, "outcomes", "*", "*", "*.parquet"))
	dirs := map[string]bool{}
	for _, f := range files {
		rel, _ := filepath.Rel(filepath.Join(e.storeDir, "outcomes"), filepath.Dir(f))
		dirs[filepath.ToSlash(rel)] = true
	}
	for _, want := range []string{"model=heart/date=2026-11-24", "model=heart/date=2026-11-25", "model=heart%20v2%2F%CE%B2/date=2026-11-24"} {
		if !dirs[want] {
			t.Errorf("partitions: got %v, want %s among them (model and the prediction's date)", dirs, want)
		}
	}

	got, err := ReadOutcomes(ctx, l.store, "heart", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var want []Outcome
	for _, o := range outs {
		if o.Model == "heart" {
			want = append(want, o)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("ReadOutcomes: got %d, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.PredictionID != w.PredictionID || g.Version != w.Version || g.Alias != w.Alias || g.Shadow != w.Shadow ||
			g.Probability != w.Probability || g.Predicted != w.Predicted || g.Threshold != w.Threshold || g.Label != w.Label ||
			!g.ScoredAt.Equal(w.ScoredAt) || !g.ObservedAt.Equal(w.ObservedAt) || !g.ReceivedAt.Equal(w.ReceivedAt) ||
			g.Source != w.Source || g.FeedbackID != w.FeedbackID || g.Model != "heart" {
			t.Errorf("outcome %d: got %+v, want %+v", i, g, w)
		}
	}
	if later, err := ReadOutcomes(ctx, l.store, "heart", day.Add(time.Minute)); err != nil || len(later) >= len(want) || len(later) == 0 {
		t.Errorf("ReadOutcomes since the next day: got %d, %v; want fewer than %d, more than 0", len(later), err, len(want))
	}
}

func TestOutcomesParquetSchema(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := e.open(t, Config{})
	p := joinRecord(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC), 1, "heart", 2, false)
	if err := l.AppendOutcomes(ctx, outcomeOf(p, 1, p.ScoredAt.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(e.storeDir, "outcomes", "model=heart", "date=2026-11-24", "part-*.parquet"))
	if len(files) != 1 {
		t.Fatalf("files: got %v, want one", files)
	}
	f, err := os.Open(files[0])
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
		{"model_version", parquet.Int64, "INT(64,true)"},
		{"alias", parquet.ByteArray, "STRING"},
		{"shadow", parquet.Boolean, ""},
		{"probability", parquet.Double, ""},
		{"predicted_label", parquet.Int32, "INT(32,true)"},
		{"threshold", parquet.Double, ""},
		{"label", parquet.Int32, "INT(32,true)"},
		{"scored_at", parquet.Int64, "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)"},
		{"observed_at", parquet.Int64, "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)"},
		{"received_at", parquet.Int64, "TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)"},
		{"source", parquet.ByteArray, "STRING"},
		{"feedback_id", parquet.ByteArray, "STRING"},
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
			t.Errorf("column %d: got %s %v %q optional=%v, want %s %v %q required", i, f.Name(), f.Type().Kind(), logical, f.Optional(), w.name, w.kind, w.logical)
		}
	}
}

func TestOutcomeValidationAndEncoding(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l := e.open(t, Config{})
	defer l.Close(ctx)
	ok := outcomeOf(joinRecord(time.Now(), 1, "heart", 1, true), 1, time.Now())
	tests := []struct {
		name  string
		edit  func(o *Outcome)
		field string
	}{
		{"no id", func(o *Outcome) { o.PredictionID = "" }, "PredictionID"},
		{"no model", func(o *Outcome) { o.Model = "" }, "Model"},
		{"no observed_at", func(o *Outcome) { o.ObservedAt = time.Time{} }, "ScoredAt"},
		{"label 2", func(o *Outcome) { o.Label = 2 }, "Label"},
		{"predicted -1", func(o *Outcome) { o.Predicted = -1 }, "Predicted"},
	}
	for _, tt := range tests {
		o := ok
		tt.edit(&o)
		err := l.AppendOutcomes(ctx, ok, o)
		var perr *pulse.Error
		if !errors.As(err, &perr) || perr.Code != pulse.EINVALID || perr.Field != tt.field || !strings.Contains(perr.Message, "outcome 1") {
			t.Errorf("%s: got %v, want EINVALID on field %s of outcome 1", tt.name, err, tt.field)
		}
	}
	if got, _ := l.Labelled(ctx, []string{ok.PredictionID}); got[0] {
		t.Error("Labelled after refused appends: got true, want false")
	}

	enc := appendOutcome(nil, &ok)
	part, row, err := decodeOutcome(enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if part.name != ok.Model || part.table != tagOutcome || row.PredictionID != ok.PredictionID || !row.Shadow || row.Label != 1 ||
		row.FeedbackID != ok.FeedbackID || part.date != ok.ScoredAt.UTC().Format(time.DateOnly) {
		t.Errorf("round trip: got %+v in %+v, want %+v", row, part, ok)
	}
	for n := range len(enc) {
		if _, _, err := decodeOutcome(enc[:n], nil); err == nil {
			t.Errorf("prefix of %d of %d bytes: got nil error, want one", n, len(enc))
		}
	}
}
