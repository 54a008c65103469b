package jobs

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverlog"
	"github.com/riverqueue/river/rivertype"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/cloudmedical/pulse/internal/batch"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Batch scoring on the server: a score job plans a CSV file of the lake into byte ranges
// aligned on record boundaries (batch.Plan) and inserts one shard job per range; any number of
// workers score the shards (batch.Score), each writing its own part file, which is published
// atomically when the shard is done (the shard's checkpoint). A worker killed in the middle of
// a shard leaves no part; River rescues the shard job and another worker scores it again from
// the start of its range. Scoring is deterministic, so a shard scored twice (a worker thought
// dead that was only slow) writes the same bytes. The score job wakes up every few seconds
// (a River snooze, which holds no worker) until every shard is finished, then merges the bad
// rows with their row numbers in the whole file, and writes _SUMMARY.json and _SUCCESS.

// KindScore is the kind of a job that scores a CSV file of the lake with a model version;
// KindScoreShard scores one byte range of it.
const (
	KindScore      = "score"
	KindScoreShard = "score_shard"
)

// Score job limits and defaults.
const (
	DefaultShardMB = 256
	maxShards      = 10_000
	maxHeaderBytes = 1 << 20
)

// ScoreRequest asks to score a CSV file of the lake.
type ScoreRequest struct {
	// Input is the file's key in the lake bucket, such as "inbox/patients.csv".
	Input string `json:"input"`
	// Version, when non-zero, selects the version; otherwise Alias (default "champion").
	Version int    `json:"version,omitempty"`
	Alias   string `json:"alias,omitempty"`
	// Format of the output parts: csv (default) or parquet.
	Format string `json:"format,omitempty"`
	// Output is the key prefix of the output (default batch/model=<model>/job=<id>/).
	Output string `json:"output,omitempty"`
	// BadRows is "fail" (default: the first bad row fails the job, naming its row and
	// column) or "skip" (bad rows are written to <output>bad_rows.csv with their reasons and
	// the rest is scored).
	BadRows string `json:"bad_rows,omitempty"`
	// ShardMB is the size of a shard in MiB (default 256).
	ShardMB int `json:"shard_mb,omitempty"`
	// ShardBytes, when set, is the size of a shard in bytes instead (at least 4096): for
	// small files and tests.
	ShardBytes int64 `json:"shard_bytes,omitempty"`
}

// ScoreArgs are the arguments of a score job. The version is resolved when the job is
// enqueued, so that every shard uses the same one whatever aliases do meanwhile.
type ScoreArgs struct {
	Model       string       `json:"model"`
	Version     int          `json:"version"`
	Request     ScoreRequest `json:"request"`
	RequestedBy string       `json:"requested_by,omitempty"`
	EventID     string       `json:"event_id,omitempty" river:"unique"`
}

// Kind is the River job kind.
func (ScoreArgs) Kind() string { return KindScore }

// ShardArgs are the arguments of a shard job: bytes [Start, End) of the input, read after
// the file's header line.
type ShardArgs struct {
	Parent  int64  `json:"parent" river:"unique"`
	Index   int    `json:"index" river:"unique"`
	Model   string `json:"model"`
	Version int    `json:"version"`
	Input   string `json:"input"`
	Header  []byte `json:"header"`
	Start   int64  `json:"start"`
	End     int64  `json:"end"`
	Format  string `json:"format"`
	Part    string `json:"part"`
	// BadRows, when set, is the key the shard's bad rows go to (skip mode); empty fails the
	// shard on its first bad row.
	BadRows string `json:"bad_rows,omitempty"`
}

// Kind is the River job kind.
func (ShardArgs) Kind() string { return KindScoreShard }

// ShardOutput is what a finished shard records.
type ShardOutput struct {
	Rows     int64    `json:"rows"`
	Scored   int64    `json:"scored"`
	Bad      int64    `json:"bad"`
	BytesIn  int64    `json:"bytes_in"`
	BytesOut int64    `json:"bytes_out"`
	Part     string   `json:"part"`
	Problem  *Problem `json:"problem,omitempty"`
}

// BatchStatus is where a score job is: its plan, and the shards done so far with their rows.
type BatchStatus struct {
	Input   string `json:"input"`
	Output  string `json:"output"`
	Format  string `json:"format"`
	BadRows string `json:"bad_rows"`
	// Bytes is the input's size; Shards how many byte ranges it was split into (0 while
	// planning).
	Bytes       int64 `json:"bytes"`
	Shards      int   `json:"shards"`
	ShardsDone  int   `json:"shards_done"`
	ShardsRetry int   `json:"shards_retrying"`
	Rows        int64 `json:"rows"`
	Scored      int64 `json:"scored"`
	Bad         int64 `json:"bad"`
	// Summary is the key of _SUMMARY.json once the job is done.
	Summary string `json:"summary,omitempty"`
}

// BatchSummary is the content of _SUMMARY.json, written last (before _SUCCESS).
type BatchSummary struct {
	Job     int64       `json:"job"`
	Model   string      `json:"model"`
	Version int         `json:"version"`
	Input   string      `json:"input"`
	Bytes   int64       `json:"bytes"`
	Format  string      `json:"format"`
	Rows    int64       `json:"rows"`
	Scored  int64       `json:"scored"`
	Bad     int64       `json:"bad"`
	BadRows string      `json:"bad_rows,omitempty"`
	Parts   []BatchPart `json:"parts"`
	Started time.Time   `json:"started"`
	Done    time.Time   `json:"done"`
	Seconds float64     `json:"seconds"`
	MBps    float64     `json:"mb_per_second"`
}

// BatchPart is one output file, in input order.
type BatchPart struct {
	Key   string `json:"key"`
	Rows  int64  `json:"rows"`
	Bytes int64  `json:"bytes"`
}

// scoreOutput is what a score job records: its status as it goes, then the summary key or the
// problem.
type scoreOutput struct {
	// Planned is set once the shards are inserted.
	Planned bool         `json:"planned,omitempty"`
	Model   string       `json:"model"`
	Version int          `json:"version"`
	Batch   *BatchStatus `json:"batch"`
	Started time.Time    `json:"started"`
	Problem *Problem     `json:"problem,omitempty"`
}

// EnqueueScore asks for a CSV file of the lake to be scored by model. The version is resolved
// now (Version, else Alias, default champion).
func (s *Service) EnqueueScore(ctx context.Context, model string, req ScoreRequest, opts EnqueueOptions) (*Job, bool, error) {
	if s.cfg.Lake == nil || s.cfg.Registry == nil {
		return nil, false, pulse.Errorf(pulse.EUNAVAILABLE, "batch scoring is not configured on this server")
	}
	if !pulse.ValidName(model) {
		return nil, false, pulse.FieldErrorf(pulse.EINVALID, "model", "model name %q: want 1-64 characters of a-z, 0-9, '-', '_', '.'", model)
	}
	if req.Input == "" || strings.HasPrefix(req.Input, "/") || strings.Contains(req.Input, "..") {
		return nil, false, pulse.FieldErrorf(pulse.EINVALID, "input", "input %q: want the key of a CSV file in the lake, such as inbox/patients.csv", req.Input)
	}
	switch req.Format {
	case "":
		req.Format = "csv"
	case "csv", "parquet":
	default:
		return nil, false, pulse.FieldErrorf(pulse.EINVALID, "format", "format %q: want csv or parquet", req.Format)
	}
	switch req.BadRows {
	case "":
		req.BadRows = "fail"
	case "fail", "skip":
	default:
		return nil, false, pulse.FieldErrorf(pulse.EINVALID, "bad_rows", "bad_rows %q: want fail or skip", req.BadRows)
	}
	if req.ShardMB == 0 {
		req.ShardMB = DefaultShardMB
	}
	if req.ShardMB < 1 || req.ShardMB > 64<<10 {
		return nil, false, pulse.FieldErrorf(pulse.EINVALID, "shard_mb", "shard_mb: got %d, want 1 to 65536", req.ShardMB)
	}
	if req.ShardBytes != 0 && req.ShardBytes < 4096 {
		return nil, false, pulse.FieldErrorf(pulse.EINVALID, "shard_bytes", "shard_bytes: got %d, want at least 4096", req.ShardBytes)
	}
	if req.Output != "" && (strings.HasPrefix(req.Output, "/") || strings.Contains(req.Output, "..")) {
		return nil, false, pulse.FieldErrorf(pulse.EINVALID, "output", "output %q: want a key prefix in the lake", req.Output)
	}
	if req.Output != "" && !strings.HasSuffix(req.Output, "/") {
		req.Output += "/"
	}
	if req.Version != 0 && req.Alias != "" {
		return nil, false, pulse.FieldErrorf(pulse.EINVALID, "alias", "give version or alias, not both")
	}
	version := req.Version
	if version == 0 {
		alias := req.Alias
		if alias == "" {
			alias = pulse.AliasChampion
		}
		if _, err := s.cfg.Registry.Model(ctx, model); err != nil {
			return nil, false, err
		}
		v, ok := s.cfg.Registry.Resolve(model, alias)
		if !ok {
			return nil, false, pulse.FieldErrorf(pulse.ENOTFOUND, "alias", "model %s has no alias %q", model, alias)
		}
		version = v
	}
	if _, err := s.cfg.Registry.Load(ctx, model, version); err != nil {
		return nil, false, err
	}
	if ok, err := s.cfg.Lake.Exists(ctx, req.Input); err != nil {
		return nil, false, fmt.Errorf("jobs: score: %w", err)
	} else if !ok {
		return nil, false, pulse.FieldErrorf(pulse.ENOTFOUND, "input", "input %q: no such file in the lake", req.Input)
	}
	args := ScoreArgs{Model: model, Version: version, Request: req, RequestedBy: opts.RequestedBy, EventID: opts.EventID}
	var insOpts *river.InsertOpts
	if opts.EventID != "" {
		insOpts = &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: allStates}}
	}
	res, err := s.client.Insert(ctx, args, insOpts)
	if err != nil {
		return nil, false, fmt.Errorf("jobs: enqueue score: %w", err)
	}
	j, err := fromRow(res.Job)
	if err != nil {
		return nil, false, err
	}
	if !res.UniqueSkippedAsDuplicate {
		s.log.InfoContext(ctx, "score job enqueued", "job", j.ID, "model", model, "version", version, "input", req.Input)
	}
	return j, !res.UniqueSkippedAsDuplicate, nil
}

// outputPrefix is where a score job writes.
func outputPrefix(a ScoreArgs, id int64) string {
	if a.Request.Output != "" {
		return a.Request.Output
	}
	return fmt.Sprintf("batch/model=%s/job=%d/", a.Model, id)
}

// scoreWorker plans a score job, inserts its shards and waits for them.
type scoreWorker struct {
	river.WorkerDefaults[ScoreArgs]
	svc *Service
}

// Timeout bounds one wake-up of the score job (planning reads the whole file once).
func (w *scoreWorker) Timeout(*river.Job[ScoreArgs]) time.Duration { return w.svc.cfg.JobTimeout }

func (w *scoreWorker) Work(ctx context.Context, job *river.Job[ScoreArgs]) error {
	jl, ok := riverlog.LoggerSafely(ctx)
	if !ok {
		jl = slog.New(slog.DiscardHandler)
	}
	a := job.Args
	var prev struct {
		Output *scoreOutput `json:"output"`
	}
	if len(job.Metadata) > 0 {
		if err := json.Unmarshal(job.Metadata, &prev); err != nil {
			return fmt.Errorf("jobs: score job %d: metadata: %w", job.ID, err)
		}
	}
	out := prev.Output
	n := w.svc.cfg.Notifier
	if out == nil || !out.Planned {
		if n != nil {
			n.JobStarted(ctx, job.ID, KindScore, job.Attempt, a.Model)
		}
		var err error
		out, err = w.plan(ctx, jl, job)
		if err != nil {
			return w.fail(ctx, jl, job, err, false)
		}
		if err := river.RecordOutput(ctx, out); err != nil {
			return err
		}
		return river.JobSnooze(w.svc.cfg.BatchPoll)
	}
	shards, err := w.svc.shardJobs(ctx, job.ID)
	if err != nil {
		return err
	}
	st := out.Batch
	st.ShardsDone, st.ShardsRetry, st.Rows, st.Scored, st.Bad = 0, 0, 0, 0, 0
	var failed *rivertype.JobRow
	finished := 0
	for _, r := range shards {
		switch r.State {
		case rivertype.JobStateCompleted:
			so, err := shardOutput(r)
			if err != nil {
				return err
			}
			st.ShardsDone++
			finished++
			st.Rows += so.Rows
			st.Scored += so.Scored
			st.Bad += so.Bad
		case rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
			finished++
			if failed == nil || shardIndex(r) < shardIndex(failed) {
				failed = r
			}
		case rivertype.JobStateRetryable:
			st.ShardsRetry++
		}
	}
	if len(shards) < st.Shards {
		// Killed between planning and inserting every shard: insert them again (duplicates
		// are skipped).
		jl.Warn("shards missing; planning again", "have", len(shards), "want", st.Shards)
		if _, err := w.plan(ctx, jl, job); err != nil {
			return w.fail(ctx, jl, job, err, false)
		}
		return river.JobSnooze(w.svc.cfg.BatchPoll)
	}
	if failed != nil {
		// A failed shard is final (it was refused, or ran out of attempts): so is the job.
		return w.fail(ctx, jl, job, w.shardFailure(ctx, shards, failed), true)
	}
	if finished < st.Shards {
		if err := river.RecordOutput(ctx, out); err != nil {
			return err
		}
		return river.JobSnooze(w.svc.cfg.BatchPoll)
	}
	sum, err := w.finish(ctx, job, out, shards)
	if err != nil {
		return err
	}
	st.Summary = outputPrefix(a, job.ID) + "_SUMMARY.json"
	jl.Info("scored", "rows", sum.Rows, "scored", sum.Scored, "bad", sum.Bad, "parts", len(sum.Parts), "seconds", sum.Seconds)
	w.svc.log.Info("score job completed", "job", job.ID, "model", a.Model, "version", a.Version, "rows", sum.Rows, "bad", sum.Bad, "seconds", sum.Seconds)
	if err := river.RecordOutput(ctx, out); err != nil {
		return err
	}
	if n != nil {
		n.JobSucceeded(ctx, job.ID, KindScore, job.Attempt, a.Model, out)
	}
	return nil
}

// plan splits the input into shards and inserts a job for each (idempotently).
func (w *scoreWorker) plan(ctx context.Context, jl *slog.Logger, job *river.Job[ScoreArgs]) (*scoreOutput, error) {
	a := job.Args
	lake := w.svc.cfg.Lake
	attrs, err := lake.Attributes(ctx, a.Request.Input)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, pulse.FieldErrorf(pulse.ENOTFOUND, "input", "input %q: no such file in the lake", a.Request.Input)
		}
		return nil, fmt.Errorf("jobs: score: %w", err)
	}
	shardBytes := int64(a.Request.ShardMB) << 20
	if a.Request.ShardBytes > 0 {
		shardBytes = a.Request.ShardBytes
	}
	if attrs.Size/shardBytes >= maxShards {
		shardBytes = attrs.Size/maxShards + 1
	}
	start := time.Now()
	split, err := batch.Plan(ctx, &blobReaderAt{ctx: ctx, b: lake, key: a.Request.Input}, attrs.Size, shardBytes)
	if err != nil {
		return nil, err
	}
	if len(split.Header) > maxHeaderBytes {
		return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "input", "input %q: the header line has %d bytes, want at most %d", a.Request.Input, len(split.Header), maxHeaderBytes)
	}
	prefix := outputPrefix(a, job.ID)
	ext := a.Request.Format
	params := make([]river.InsertManyParams, len(split.Ranges))
	for i, r := range split.Ranges {
		sa := ShardArgs{
			Parent: job.ID, Index: i, Model: a.Model, Version: a.Version, Input: a.Request.Input,
			Header: split.Header, Start: r.Start, End: r.End, Format: a.Request.Format,
			Part: fmt.Sprintf("%spart-%05d.%s", prefix, i, ext),
		}
		if a.Request.BadRows == "skip" {
			sa.BadRows = fmt.Sprintf("%s_bad_rows/part-%05d.csv", prefix, i)
		}
		params[i] = river.InsertManyParams{Args: sa, InsertOpts: &river.InsertOpts{
			UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: allStates},
		}}
	}
	if len(params) > 0 {
		if _, err := w.svc.client.InsertMany(ctx, params); err != nil {
			return nil, fmt.Errorf("jobs: score: insert shards: %w", err)
		}
	}
	jl.Info("planned", "input", a.Request.Input, "bytes", attrs.Size, "shards", len(split.Ranges), "plan_ms", time.Since(start).Milliseconds())
	out := &scoreOutput{Planned: true, Model: a.Model, Version: a.Version, Started: time.Now().UTC(), Batch: &BatchStatus{
		Input: a.Request.Input, Output: prefix, Format: a.Request.Format, BadRows: a.Request.BadRows,
		Bytes: attrs.Size, Shards: len(split.Ranges),
	}}
	return out, nil
}

// fail ends the score job: a permanent problem (or any problem when final) is recorded and the
// job cancelled, with its unfinished shards (so it is not retried); other errors are retried by
// River.
func (w *scoreWorker) fail(ctx context.Context, jl *slog.Logger, job *river.Job[ScoreArgs], err error, final bool) error {
	a := job.Args
	code := pulse.ErrorCode(err)
	final = final || permanent(code)
	if n := w.svc.cfg.Notifier; n != nil && ctx.Err() == nil {
		n.JobFailed(ctx, job.ID, KindScore, job.Attempt, a.Model, final || job.Attempt >= job.MaxAttempts, pulse.ErrorMessage(err))
	}
	if !final {
		jl.Error("failed", "attempt", job.Attempt, "err", err)
		return err
	}
	jl.Warn("refused; not retrying", "code", code, "err", err)
	var pe *pulse.Error
	p := &Problem{Code: code, Message: pulse.ErrorMessage(err)}
	if errors.As(err, &pe) {
		p.Field, p.Row = pe.Field, pe.Row
	}
	w.svc.cancelShards(context.WithoutCancel(ctx), job.ID)
	if rerr := river.RecordOutput(ctx, scoreOutput{Model: a.Model, Version: a.Version, Problem: p}); rerr != nil {
		return rerr
	}
	return river.JobCancel(err)
}

// shardFailure turns the first failed shard's problem into the job's, with the row number in
// the whole file when every earlier shard is done.
func (w *scoreWorker) shardFailure(ctx context.Context, shards []*rivertype.JobRow, failed *rivertype.JobRow) error {
	so, err := shardOutput(failed)
	if err != nil {
		return err
	}
	idx := shardIndex(failed)
	if so.Problem == nil {
		return pulse.Errorf(pulse.EINTERNAL, "shard %d failed after %d attempts: %s", idx, failed.Attempt, lastError(failed))
	}
	p := so.Problem
	if p.Row == 0 {
		return &pulse.Error{Code: p.Code, Message: p.Message, Field: p.Field}
	}
	offset, known := int64(0), true
	for _, r := range shards {
		if shardIndex(r) >= idx {
			continue
		}
		if r.State != rivertype.JobStateCompleted {
			known = false
			break
		}
		o, err := shardOutput(r)
		if err != nil {
			return err
		}
		offset += o.Rows
	}
	if !known {
		return &pulse.Error{Code: p.Code, Field: p.Field, Message: fmt.Sprintf("shard %d (bytes %d-%d): %s", idx, shardArgs(failed).Start, shardArgs(failed).End, p.Message)}
	}
	row := offset + int64(p.Row)
	msg := p.Message
	if rest, ok := strings.CutPrefix(msg, "row "+strconv.Itoa(p.Row)); ok {
		msg = "row " + strconv.FormatInt(row, 10) + rest
	}
	return &pulse.Error{Code: p.Code, Field: p.Field, Row: int(row), Message: msg}
}

// finish merges the bad rows with their row numbers in the whole file and writes the summary
// and the _SUCCESS marker.
func (w *scoreWorker) finish(ctx context.Context, job *river.Job[ScoreArgs], out *scoreOutput, shards []*rivertype.JobRow) (*BatchSummary, error) {
	a := job.Args
	lake := w.svc.cfg.Lake
	prefix := outputPrefix(a, job.ID)
	slices.SortFunc(shards, func(x, y *rivertype.JobRow) int { return shardIndex(x) - shardIndex(y) })
	sum := &BatchSummary{
		Job: job.ID, Model: a.Model, Version: a.Version, Input: a.Request.Input, Bytes: out.Batch.Bytes,
		Format: a.Request.Format, Parts: []BatchPart{}, Started: out.Started, Done: time.Now().UTC(),
	}
	var bad []badPart
	for _, r := range shards {
		so, err := shardOutput(r)
		if err != nil {
			return nil, err
		}
		sa := shardArgs(r)
		if sa.BadRows != "" && so.Bad > 0 {
			bad = append(bad, badPart{key: sa.BadRows, offset: sum.Rows})
		}
		sum.Rows += so.Rows
		sum.Scored += so.Scored
		sum.Bad += so.Bad
		sum.Parts = append(sum.Parts, BatchPart{Key: so.Part, Rows: so.Scored, Bytes: so.BytesOut})
	}
	if a.Request.BadRows == "skip" {
		sum.BadRows = prefix + "bad_rows.csv"
		if err := mergeBadRows(ctx, lake, sum.BadRows, bad); err != nil {
			return nil, err
		}
	}
	sum.Seconds = sum.Done.Sub(sum.Started).Seconds()
	if sum.Seconds > 0 {
		sum.MBps = float64(sum.Bytes) / 1e6 / sum.Seconds
	}
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := lake.WriteAll(ctx, prefix+"_SUMMARY.json", append(b, '\n'), &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return nil, fmt.Errorf("jobs: score: write summary: %w", err)
	}
	if err := lake.WriteAll(ctx, prefix+"_SUCCESS", nil, nil); err != nil {
		return nil, fmt.Errorf("jobs: score: write _SUCCESS: %w", err)
	}
	return sum, nil
}

type badPart struct {
	key    string
	offset int64 // rows of the file before the shard
}

// mergeBadRows writes one bad-rows file from the shards', renumbering each row in the whole
// file (the first column of a shard's file is its row number within the shard).
func mergeBadRows(ctx context.Context, lake *blob.Bucket, key string, parts []badPart) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bw, err := lake.NewWriter(wctx, key, &blob.WriterOptions{ContentType: "text/csv"})
	if err != nil {
		return fmt.Errorf("jobs: score: bad rows: %w", err)
	}
	cw := csv.NewWriter(bw)
	header := false
	for _, p := range parts {
		r, err := lake.NewReader(ctx, p.key, nil)
		if err != nil {
			cancel()
			bw.Close()
			return fmt.Errorf("jobs: score: bad rows: %w", err)
		}
		cr := csv.NewReader(r)
		cr.FieldsPerRecord = -1
		first := true
		for {
			rec, err := cr.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				r.Close()
				cancel()
				bw.Close()
				return fmt.Errorf("jobs: score: bad rows %s: %w", p.key, err)
			}
			if first {
				first = false
				if _, nerr := strconv.ParseInt(rec[0], 10, 64); nerr != nil { // a header line
					if !header {
						header = true
						cw.Write(rec)
					}
					continue
				}
			}
			n, err := strconv.ParseInt(rec[0], 10, 64)
			if err != nil {
				r.Close()
				cancel()
				bw.Close()
				return fmt.Errorf("jobs: score: bad rows %s: row number %q: %w", p.key, rec[0], err)
			}
			rec[0] = strconv.FormatInt(n+p.offset, 10)
			cw.Write(rec)
		}
		r.Close()
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		cancel()
		bw.Close()
		return fmt.Errorf("jobs: score: bad rows: %w", err)
	}
	if err := bw.Close(); err != nil {
		return fmt.Errorf("jobs: score: bad rows: %w", err)
	}
	return nil
}

// shardWorker scores one shard.
type shardWorker struct {
	river.WorkerDefaults[ShardArgs]
	svc *Service
}

func (w *shardWorker) Timeout(*river.Job[ShardArgs]) time.Duration { return w.svc.cfg.ShardTimeout }

func (w *shardWorker) Work(ctx context.Context, job *river.Job[ShardArgs]) error {
	jl, ok := riverlog.LoggerSafely(ctx)
	if !ok {
		jl = slog.New(slog.DiscardHandler)
	}
	a := job.Args
	loaded, err := w.svc.cfg.Registry.Load(ctx, a.Model, a.Version)
	if err != nil {
		return w.fail(ctx, jl, job, err)
	}
	lake := w.svc.cfg.Lake
	rr, err := lake.NewRangeReader(ctx, a.Input, a.Start, a.End-a.Start, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return w.fail(ctx, jl, job, pulse.FieldErrorf(pulse.ENOTFOUND, "input", "input %q: no such file in the lake", a.Input))
		}
		return err
	}
	defer rr.Close()
	// A cancelled context makes the writers discard what they wrote: a part is published
	// only by a successful Close.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pw, err := lake.NewWriter(wctx, a.Part, nil)
	if err != nil {
		return err
	}
	counted := &countingWriter{w: pw}
	var bad *lazyWriter
	opts := batch.Options{
		Model:   loaded.Model,
		Version: a.Version,
		Format:  batch.Format(a.Format),
		Workers: max(1, runtime.GOMAXPROCS(0)/max(1, w.svc.cfg.Workers)),
	}
	if a.BadRows != "" {
		bad = &lazyWriter{ctx: wctx, b: lake, key: a.BadRows}
		opts.BadRows = bad
	}
	jl.Info("scoring shard", "index", a.Index, "start", a.Start, "end", a.End, "attempt", job.Attempt)
	w.svc.log.Info("scoring shard", "job", a.Parent, "shard", job.ID, "index", a.Index, "bytes", a.End-a.Start, "attempt", job.Attempt)
	sum, err := batch.Score(ctx, io.MultiReader(bytes.NewReader(a.Header), rr), counted, opts)
	if err != nil {
		cancel()
		pw.Close()
		if bad != nil {
			bad.abort()
		}
		var re *batch.RowError
		if errors.As(err, &re) {
			return w.fail(ctx, jl, job, &pulse.Error{Code: pulse.EUNPROCESSABLE, Field: re.Column, Row: int(re.Row), Message: re.Error()})
		}
		if pulse.ErrorCode(err) != pulse.EINTERNAL {
			return w.fail(ctx, jl, job, err)
		}
		return err
	}
	if bad != nil {
		if err := bad.Close(); err != nil {
			cancel()
			pw.Close()
			return err
		}
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("jobs: shard %d: publish %s: %w", a.Index, a.Part, err)
	}
	jl.Info("shard scored", "rows", sum.Rows, "bad", sum.Bad, "part", a.Part)
	return river.RecordOutput(ctx, ShardOutput{
		Rows: sum.Rows, Scored: sum.Scored, Bad: sum.Bad, BytesIn: a.End - a.Start, BytesOut: counted.n, Part: a.Part,
	})
}

// fail records a shard's permanent problem (the parent reports it) or leaves the error to
// River's retries.
func (w *shardWorker) fail(ctx context.Context, jl *slog.Logger, job *river.Job[ShardArgs], err error) error {
	code := pulse.ErrorCode(err)
	if !permanent(code) {
		jl.Error("failed", "attempt", job.Attempt, "err", err)
		return err
	}
	jl.Warn("refused; not retrying", "code", code, "err", err)
	var pe *pulse.Error
	p := &Problem{Code: code, Message: pulse.ErrorMessage(err)}
	if errors.As(err, &pe) {
		p.Field, p.Row = pe.Field, pe.Row
	}
	if rerr := river.RecordOutput(ctx, ShardOutput{Part: job.Args.Part, Problem: p}); rerr != nil {
		return rerr
	}
	return river.JobCancel(err)
}

// shardJobs lists the shard jobs of a score job.
func (s *Service) shardJobs(ctx context.Context, parent int64) ([]*rivertype.JobRow, error) {
	var rows []*rivertype.JobRow
	p := river.NewJobListParams().Kinds(KindScoreShard).States(rivertype.JobStates()...).
		Where("CAST(args ->> 'parent' AS TEXT) = @parent", river.NamedArgs{"parent": strconv.FormatInt(parent, 10)}).
		OrderBy(river.JobListOrderByID, river.SortOrderAsc).First(maxShards)
	res, err := s.client.JobList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("jobs: list shards of %d: %w", parent, err)
	}
	rows = append(rows, res.Jobs...)
	return rows, nil
}

// cancelShards cancels the shards of a score job that have not finished.
func (s *Service) cancelShards(ctx context.Context, parent int64) {
	shards, err := s.shardJobs(ctx, parent)
	if err != nil {
		s.log.WarnContext(ctx, "cannot list shards to cancel them", "job", parent, "err", err)
		return
	}
	for _, r := range shards {
		switch r.State {
		case rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
			continue
		}
		if _, err := s.client.JobCancel(ctx, r.ID); err != nil {
			s.log.WarnContext(ctx, "cannot cancel shard", "job", parent, "shard", r.ID, "err", err)
		}
	}
}

func shardArgs(r *rivertype.JobRow) ShardArgs {
	var a ShardArgs
	_ = json.Unmarshal(r.EncodedArgs, &a) // written by plan; a broken row shows as shard 0
	return a
}

func shardIndex(r *rivertype.JobRow) int { return shardArgs(r).Index }

func shardOutput(r *rivertype.JobRow) (*ShardOutput, error) {
	var md struct {
		Output *ShardOutput `json:"output"`
	}
	if len(r.Metadata) > 0 {
		if err := json.Unmarshal(r.Metadata, &md); err != nil {
			return nil, fmt.Errorf("jobs: shard job %d: metadata: %w", r.ID, err)
		}
	}
	if md.Output == nil {
		return &ShardOutput{}, nil
	}
	return md.Output, nil
}

func lastError(r *rivertype.JobRow) string {
	if len(r.Errors) == 0 {
		return "no error recorded"
	}
	return r.Errors[len(r.Errors)-1].Error
}

// blobReaderAt reads a blob by ranges: what batch.Plan needs of a file in a bucket.
type blobReaderAt struct {
	ctx context.Context //nolint:containedctx // an io.ReaderAt cannot take one per call
	b   *blob.Bucket
	key string
}

func (r *blobReaderAt) ReadAt(p []byte, off int64) (int, error) {
	rr, err := r.b.NewRangeReader(r.ctx, r.key, off, int64(len(p)), nil)
	if err != nil {
		return 0, err
	}
	defer rr.Close()
	n, err := io.ReadFull(rr, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// lazyWriter opens its blob on the first write, so that a shard without bad rows writes no
// file.
type lazyWriter struct {
	ctx context.Context //nolint:containedctx // the writer's lifetime is the shard's
	b   *blob.Bucket
	key string
	w   *blob.Writer
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if l.w == nil {
		w, err := l.b.NewWriter(l.ctx, l.key, &blob.WriterOptions{ContentType: "text/csv"})
		if err != nil {
			return 0, err
		}
		l.w = w
	}
	return l.w.Write(p)
}

func (l *lazyWriter) Close() error {
	if l.w == nil {
		return nil
	}
	return l.w.Close()
}

func (l *lazyWriter) abort() {
	if l.w != nil {
		l.w.Close() // the context is cancelled: nothing is published
	}
}
