package jobs

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/batch"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// scoreInput is the Cleveland file repeated copies times with a free-text column "note"
// whose quoted values hold commas, doubled quotes and newlines, so that shard boundaries fall
// inside quoted fields. badRow, when positive, spoils the age of that data row (1-based).
func scoreInput(t *testing.T, copies, badRow int) []byte {
	t.Helper()
	raw, err := os.ReadFile(cleveland)
	if err != nil {
		t.Fatalf("the shared dataset must be present: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	var b bytes.Buffer
	b.WriteString(strings.TrimSpace(lines[0]) + ", note\n")
	row := 0
	for c := 0; c < copies; c++ {
		for i, l := range lines[1:] {
			row++
			l = strings.TrimSpace(l)
			if row == badRow {
				l = "abc" + l[strings.IndexByte(l, ','):]
			}
			note := ""
			switch i % 4 {
			case 1:
				note = fmt.Sprintf(`"seen at clinic %d, ward ""B""`+"\n"+`follow-up in %d weeks"`, c, i%7)
			case 2:
				note = "plain"
			case 3:
				note = `"` + strings.Repeat("x\n", i%5) + `"`
			}
			b.WriteString(l + "," + note + "\n")
		}
	}
	return b.Bytes()
}

// scoreEnv trains a champion and opens a job service with three workers.
func scoreEnv(t *testing.T) (*env, *Service) {
	t.Helper()
	e := newEnv(t)
	if _, err := e.reg.Train(context.Background(), "heart", goodRequest()); err != nil {
		t.Fatal(err)
	}
	s := e.open(t, Config{Workers: 3, Lake: e.lake.Bucket, BatchPoll: 50 * time.Millisecond})
	return e, s
}

func TestScoreJob(t *testing.T) {
	ctx := context.Background()
	e, s := scoreEnv(t)
	input := scoreInput(t, 15, 0)
	if err := e.lake.Bucket.WriteAll(ctx, "inbox/heart.csv", input, nil); err != nil {
		t.Fatal(err)
	}
	j, created, err := s.EnqueueScore(ctx, "heart", ScoreRequest{Input: "inbox/heart.csv", ShardBytes: 16 << 10}, EnqueueOptions{})
	if err != nil || !created {
		t.Fatalf("enqueue: %v (created %v)", err, created)
	}
	if j.Kind != KindScore || j.Version != 1 || j.ScoreRequest.Format != "csv" || j.ScoreRequest.BadRows != "fail" {
		t.Errorf("enqueued job: got kind %s version %d request %+v", j.Kind, j.Version, j.ScoreRequest)
	}
	done := wait(t, s, j.ID)
	if done.State != "completed" {
		t.Fatalf("score job: got state %s (problem %+v, errors %+v, logs %+v)", done.State, done.Problem, done.Errors, done.Logs)
	}
	b := done.Batch
	wantShards := len(input) / (16 << 10)
	if b == nil || b.Shards < wantShards-1 || b.Shards > wantShards+1 || b.ShardsDone != b.Shards || b.Rows != 15*303 || b.Scored != 15*303 || b.Bad != 0 {
		t.Fatalf("batch status: got %+v, want about %d shards and %d rows", b, wantShards, 15*303)
	}
	if b.Summary != fmt.Sprintf("batch/model=heart/job=%d/_SUMMARY.json", j.ID) {
		t.Errorf("summary key: got %q", b.Summary)
	}

	// The parts, in order, are what scoring the whole file at once gives (each part has the
	// header line).
	loaded, err := e.reg.Load(ctx, "heart", 1)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if _, err := batch.Score(ctx, bytes.NewReader(input), &want, batch.Options{Model: loaded.Model, Version: 1}); err != nil {
		t.Fatal(err)
	}
	raw, err := e.lake.Bucket.ReadAll(ctx, b.Summary)
	if err != nil {
		t.Fatal(err)
	}
	var sum BatchSummary
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Rows != 15*303 || len(sum.Parts) != b.Shards || sum.Model != "heart" || sum.Version != 1 || sum.Bytes != int64(len(input)) {
		t.Errorf("summary: got rows %d, %d parts, model %s v%d, %d bytes", sum.Rows, len(sum.Parts), sum.Model, sum.Version, sum.Bytes)
	}
	var got bytes.Buffer
	var partRows int64
	for i, p := range sum.Parts {
		if want := fmt.Sprintf("batch/model=heart/job=%d/part-%05d.csv", j.ID, i); p.Key != want {
			t.Errorf("part %d: got key %s, want %s", i, p.Key, want)
		}
		data, err := e.lake.Bucket.ReadAll(ctx, p.Key)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(data)) != p.Bytes {
			t.Errorf("part %d: got %d bytes, summary says %d", i, len(data), p.Bytes)
		}
		nl := bytes.IndexByte(data, '\n')
		if i == 0 {
			got.Write(data)
		} else {
			got.Write(data[nl+1:])
		}
		partRows += p.Rows
	}
	if partRows != 15*303 {
		t.Errorf("rows in the parts: got %d, want %d", partRows, 15*303)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Errorf("the parts put together differ from scoring the whole file at once (%d vs %d bytes)", got.Len(), want.Len())
	}
	if ok, _ := e.lake.Bucket.Exists(ctx, fmt.Sprintf("batch/model=heart/job=%d/_SUCCESS", j.ID)); !ok {
		t.Error("no _SUCCESS marker")
	}

	// The shards are jobs of their own, listed with their parent.
	list, err := s.List(ctx, Filter{Kind: KindScoreShard, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != b.Shards || list[0].Parent != j.ID || list[0].State != "completed" {
		t.Errorf("shard jobs: got %d (first %+v), want %d completed with parent %d", len(list), list[0], b.Shards, j.ID)
	}
}

func TestScoreJobBadRows(t *testing.T) {
	ctx := context.Background()
	e, s := scoreEnv(t)
	const bad = 3000 // in a shard well after the first
	if err := e.lake.Bucket.WriteAll(ctx, "inbox/bad.csv", scoreInput(t, 12, bad), nil); err != nil {
		t.Fatal(err)
	}

	// By default the first bad row fails the job, naming its row in the whole file.
	j, _, err := s.EnqueueScore(ctx, "heart", ScoreRequest{Input: "inbox/bad.csv", ShardBytes: 8 << 10}, EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := wait(t, s, j.ID)
	if done.State != "cancelled" || done.Problem == nil {
		t.Fatalf("score job with a bad row: got state %s, problem %+v", done.State, done.Problem)
	}
	p := done.Problem
	if p.Code != pulse.EUNPROCESSABLE || p.Row != bad || p.Field != "age" || !strings.Contains(p.Message, fmt.Sprintf("row %d", bad)) {
		t.Errorf("problem: got %+v, want unprocessable, row %d, field age", p, bad)
	}

	// With bad_rows=skip the rest is scored and the bad row is set aside with its number.
	j, _, err = s.EnqueueScore(ctx, "heart", ScoreRequest{Input: "inbox/bad.csv", ShardBytes: 8 << 10, BadRows: "skip", Format: "parquet"}, EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done = wait(t, s, j.ID)
	if done.State != "completed" || done.Batch.Rows != 12*303 || done.Batch.Bad != 1 || done.Batch.Scored != 12*303-1 {
		t.Fatalf("skip: got state %s, batch %+v, problem %+v", done.State, done.Batch, done.Problem)
	}
	raw, err := e.lake.Bucket.ReadAll(ctx, fmt.Sprintf("batch/model=heart/job=%d/bad_rows.csv", j.ID))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, r := range recs {
		rows = append(rows, r[0])
	}
	if len(recs) != 2 || recs[1][0] != fmt.Sprint(bad) || !strings.Contains(strings.Join(recs[1], ","), "age") {
		t.Errorf("bad_rows.csv: got rows %q (%q), want a header and row %d naming age", rows, recs, bad)
	}
	if ok, _ := e.lake.Bucket.Exists(ctx, fmt.Sprintf("batch/model=heart/job=%d/part-00000.parquet", j.ID)); !ok {
		t.Error("no Parquet part")
	}
}

func TestScoreJobRefused(t *testing.T) {
	ctx := context.Background()
	e, s := scoreEnv(t)
	if err := e.lake.Bucket.WriteAll(ctx, "inbox/ok.csv", scoreInput(t, 1, 0), nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, model string
		req         ScoreRequest
		code, field string
	}{
		{"missing input", "heart", ScoreRequest{Input: "inbox/none.csv"}, pulse.ENOTFOUND, "input"},
		{"no input", "heart", ScoreRequest{}, pulse.EINVALID, "input"},
		{"escaping input", "heart", ScoreRequest{Input: "../x.csv"}, pulse.EINVALID, "input"},
		{"bad format", "heart", ScoreRequest{Input: "inbox/ok.csv", Format: "xlsx"}, pulse.EINVALID, "format"},
		{"bad mode", "heart", ScoreRequest{Input: "inbox/ok.csv", BadRows: "ignore"}, pulse.EINVALID, "bad_rows"},
		{"tiny shards", "heart", ScoreRequest{Input: "inbox/ok.csv", ShardBytes: 10}, pulse.EINVALID, "shard_bytes"},
		{"unknown alias", "heart", ScoreRequest{Input: "inbox/ok.csv", Alias: "challenger"}, pulse.ENOTFOUND, "alias"},
		{"unknown version", "heart", ScoreRequest{Input: "inbox/ok.csv", Version: 9}, pulse.ENOTFOUND, ""},
		{"unknown model", "lung", ScoreRequest{Input: "inbox/ok.csv"}, pulse.ENOTFOUND, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.EnqueueScore(ctx, tc.model, tc.req, EnqueueOptions{})
			var pe *pulse.Error
			if !errors.As(err, &pe) || pe.Code != tc.code || (tc.field != "" && pe.Field != tc.field) {
				t.Errorf("got %v, want %s naming %q", err, tc.code, tc.field)
			}
		})
	}
}
