package lake

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

func ingestRecords(n int, dataset string, at time.Time) []IngestRecord {
	recs := make([]IngestRecord, n)
	for i := range recs {
		recs[i] = IngestRecord{
			EventID:    fmt.Sprintf("%s-%04d", dataset, i),
			Dataset:    dataset,
			ReceivedAt: at.Add(time.Duration(i) * time.Second),
			Source:     fmt.Sprintf("bracelet-%d", i%3),
			Record:     []byte(fmt.Sprintf(`{"age":%d,"thalach":%d}`, 40+i%30, 120+i%60)),
			Label:      []byte(fmt.Sprint(i % 2)),
			Partition:  int32(i % 2),
			Offset:     int64(i),
		}
	}
	return recs
}

// TestIngestTable stores ingested records beside predictions in the same WAL and finds each in
// its own table, partitioned by dataset and date, exactly once, after a reopen too.
func TestIngestTable(t *testing.T) {
	e := newEnv(t)
	l := e.open(t, Config{})
	ctx := context.Background()
	day := time.Date(2026, 11, 24, 23, 59, 0, 0, time.UTC) // records cross midnight
	a, b := ingestRecords(100, "heart-disease", day), ingestRecords(30, "wearables v2", day)
	if err := l.AppendIngest(ctx, a[:60]...); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendPredictions(ctx, heartRecords(t)[:10]...); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendIngest(ctx, append(a[60:], b...)...); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}

	files, err := filepath.Glob(filepath.Join(e.storeDir, "ingest", "*", "*", "*.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ingestRow{}
	partitions := map[string]int{}
	for _, f := range files {
		rows, err := parquet.ReadFile[ingestRow](f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		rel, _ := filepath.Rel(filepath.Join(e.storeDir, "ingest"), filepath.Dir(f))
		partitions[rel] += len(rows)
		for _, r := range rows {
			if _, dup := got[r.EventID]; dup {
				t.Errorf("event %s stored twice", r.EventID)
			}
			got[r.EventID] = r
			wantDate := r.ReceivedAt.Format(time.DateOnly)
			if !strings.HasSuffix(rel, "date="+wantDate) {
				t.Errorf("event %s received %v is in partition %s", r.EventID, r.ReceivedAt, rel)
			}
		}
	}
	if len(got) != 130 {
		t.Fatalf("ingest rows: got %d, want 130", len(got))
	}
	for _, want := range append(a, b...) {
		r := got[want.EventID]
		if r.Record != string(want.Record) || r.Label != string(want.Label) || r.Source != want.Source || !r.ReceivedAt.Equal(want.ReceivedAt) || r.Offset != want.Offset || r.Partition != want.Partition {
			t.Errorf("event %s: got %+v, want %+v", want.EventID, r, want)
		}
	}
	// one record a second from 23:59:00: 60 on the first day, the rest on the next
	wantParts := map[string]int{
		"dataset=heart-disease/date=2026-11-24": 60, "dataset=heart-disease/date=2026-11-25": 40,
		"dataset=wearables%20v2/date=2026-11-24": 30,
	}
	if len(partitions) != len(wantParts) {
		t.Errorf("partitions: got %v, want %v", partitions, wantParts)
	}
	for k, n := range wantParts {
		if partitions[k] != n {
			t.Errorf("partition %s: got %d rows, want %d (all: %v)", k, partitions[k], n, partitions)
		}
	}
	if n := len(e.readLake(t)); n != 10 {
		t.Errorf("predictions beside the ingest records: got %d, want 10", n)
	}
}

func TestIngestEncodingAndValidation(t *testing.T) {
	r := ingestRecords(1, "d", time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC))[0]
	enc := appendIngest(nil, &r)
	part, row, err := decodeIngest(enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if part.name != "d" || part.date != "2026-01-02" || row.EventID != r.EventID || row.Record != string(r.Record) || !row.ReceivedAt.Equal(r.ReceivedAt) {
		t.Errorf("round trip: got %+v %+v, want %+v", part, row, r)
	}
	for n := range len(enc) {
		if _, _, err := decodeIngest(enc[:n], nil); err == nil {
			t.Errorf("prefix of %d bytes decoded", n)
		}
	}
	bad := slices.Clone(enc)
	bad[1] = 9
	if _, _, err := decodeIngest(bad, nil); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Errorf("unknown version: got %v", err)
	}
	e := newEnv(t)
	l := e.open(t, Config{})
	for _, tc := range []struct {
		edit  func(*IngestRecord)
		field string
	}{
		{func(r *IngestRecord) { r.EventID = "" }, "EventID"},
		{func(r *IngestRecord) { r.Dataset = "" }, "Dataset"},
		{func(r *IngestRecord) { r.ReceivedAt = time.Time{} }, "ReceivedAt"},
		{func(r *IngestRecord) { r.Record = nil }, "Record"},
	} {
		bad := r
		tc.edit(&bad)
		err := l.AppendIngest(context.Background(), r, bad)
		if err == nil || !strings.Contains(err.Error(), "ingest record 1: "+tc.field) {
			t.Errorf("missing %s: got %v", tc.field, err)
		}
	}
}
