// Package jobs runs Pulse's long work (training model versions) as River jobs: durable,
// retried with backoff after infrastructure failures, cancellable, and worked by any number of
// processes. Embedded, River keeps its queue in its own SQLite file (<data-dir>/jobs.db);
// scaled out, it uses a PostgreSQL pool shared by every `pulse serve` and `pulse worker`.
package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/riverlog"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"gocloud.dev/blob"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
)

// KindTrain is the kind of a job that trains a model version.
const KindTrain = "train"

// Config configures a Service. Exactly one of SQLitePath and Pool is set.
type Config struct {
	// SQLitePath is River's own SQLite database file (embedded mode), e.g. <data-dir>/jobs.db.
	SQLitePath string
	// Pool is a PostgreSQL pool (scaled-out mode). The caller owns it and closes it after
	// Close.
	Pool *pgxpool.Pool
	// Registry trains versions; required when Workers > 0.
	Registry *registry.Service
	// Workers is how many jobs this process works at once; 0 makes an enqueue-only service
	// (it inserts, lists and cancels, but runs nothing).
	Workers int
	Logger  *slog.Logger
	// JobTimeout bounds one attempt (default 1 hour).
	JobTimeout time.Duration
	// MaxAttempts is how many times a job runs before it is discarded (default 5).
	MaxAttempts int
	// Retention is how long finished jobs are kept (default 7 days).
	Retention time.Duration
	// PollInterval is how often workers look for new jobs inserted by other processes
	// (default 100 ms on SQLite, 1 s on PostgreSQL, which also gets notifications).
	PollInterval time.Duration
	// RetryDelay, when set, replaces River's exponential backoff: the delay before the next
	// attempt after attempt number attempt failed.
	RetryDelay func(attempt int) time.Duration
	// Schedules retrain models periodically. They run on the processes that work jobs
	// (Workers > 0); River's leader among them enqueues each scheduled job once.
	Schedules []Schedule
	// Notifier, when set, hears when an attempt starts, succeeds or fails (pulse publishes
	// these on the model.events topic). It must not block.
	Notifier Notifier
	// Lake is the bucket that score jobs read their input from and write their output to;
	// without it score jobs are refused.
	Lake *blob.Bucket
	// ShardTimeout bounds the scoring of one shard (default 30 minutes).
	ShardTimeout time.Duration
	// RescueAfter is how long a job may run before River considers its worker dead and runs
	// it again (default JobTimeout + 10 minutes; it must exceed every timeout). A shard of a
	// worker killed mid-way is scored again after this long.
	RescueAfter time.Duration
	// BatchPoll is how often a score job checks on its shards (default 2 s).
	BatchPoll time.Duration
}

// Notifier receives job lifecycle events.
type Notifier interface {
	JobStarted(ctx context.Context, id int64, kind string, attempt int, model string)
	// JobSucceeded's result is the job's output as JSON shows it: model, version, and the
	// gate's decision with its numbers when a gate ran.
	JobSucceeded(ctx context.Context, id int64, kind string, attempt int, model string, result any)
	JobFailed(ctx context.Context, id int64, kind string, attempt int, model string, final bool, problem string)
}

// Service enqueues, inspects, cancels and (with Workers > 0) works jobs.
type Service struct {
	cfg    Config
	log    *slog.Logger
	client riverClient
	sqlDB  *sql.DB // embedded mode only
}

// riverClient is the part of *river.Client[TTx] that does not depend on TTx, so that one
// Service works on both drivers.
type riverClient interface {
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	JobCancel(ctx context.Context, id int64) (*rivertype.JobRow, error)
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
}

// Open migrates River's schema, creates the River client and, when cfg.Workers > 0, starts
// working jobs.
func Open(ctx context.Context, cfg Config) (*Service, error) {
	if (cfg.SQLitePath == "") == (cfg.Pool == nil) {
		return nil, errors.New("jobs: set exactly one of SQLitePath and Pool")
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("jobs: Workers: got %d, want 0 or more", cfg.Workers)
	}
	if cfg.Workers > 0 && cfg.Registry == nil {
		return nil, errors.New("jobs: Registry is required to work jobs")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = time.Hour
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.ShardTimeout <= 0 {
		cfg.ShardTimeout = 30 * time.Minute
	}
	if cfg.RescueAfter <= 0 {
		cfg.RescueAfter = max(cfg.JobTimeout, cfg.ShardTimeout) + 10*time.Minute
	}
	if cfg.RescueAfter <= max(cfg.JobTimeout, cfg.ShardTimeout) {
		return nil, fmt.Errorf("jobs: RescueAfter %s: want more than the job timeouts (%s, %s)", cfg.RescueAfter, cfg.JobTimeout, cfg.ShardTimeout)
	}
	if cfg.BatchPoll <= 0 {
		cfg.BatchPoll = 2 * time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 7 * 24 * time.Hour
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
		if cfg.SQLitePath != "" {
			cfg.PollInterval = 100 * time.Millisecond
		}
	}
	s := &Service{cfg: cfg, log: cfg.Logger}

	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &trainWorker{svc: s}); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &scoreWorker{svc: s}); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &shardWorker{svc: s}); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	rc := &river.Config{
		Logger:                      cfg.Logger,
		Workers:                     workers,
		JobTimeout:                  cfg.JobTimeout,
		RescueStuckJobsAfter:        cfg.RescueAfter,
		MaxAttempts:                 cfg.MaxAttempts,
		CompletedJobRetentionPeriod: cfg.Retention,
		CancelledJobRetentionPeriod: cfg.Retention,
		DiscardedJobRetentionPeriod: cfg.Retention,
		FetchPollInterval:           cfg.PollInterval,
		FetchCooldown:               min(cfg.PollInterval, 20*time.Millisecond),
		Middleware: []rivertype.Middleware{
			riverlog.NewMiddleware(func(w io.Writer) slog.Handler {
				return slog.NewTextHandler(w, &slog.HandlerOptions{ReplaceAttr: dropTime})
			}, nil),
		},
	}
	if cfg.RetryDelay != nil {
		rc.RetryPolicy = retryPolicy(cfg.RetryDelay)
	}
	if cfg.Workers > 0 {
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}}
		pj, err := periodicJobs(cfg.Schedules)
		if err != nil {
			return nil, err
		}
		rc.PeriodicJobs = pj
	}

	var err error
	if cfg.SQLitePath != "" {
		s.sqlDB, err = openSQLite(cfg.SQLitePath)
		if err != nil {
			return nil, err
		}
		// SQLite has no LISTEN/NOTIFY: poll only.
		rc.PollOnly = true
		s.client, err = newClient(ctx, riversqlite.New(s.sqlDB), rc)
	} else {
		s.client, err = newClient[pgx.Tx](ctx, riverpgxv5.New(cfg.Pool), rc)
	}
	if err != nil {
		if s.sqlDB != nil {
			s.sqlDB.Close()
		}
		return nil, err
	}
	if cfg.Workers > 0 {
		// The client outlives the call that opens it; Close stops it.
		if err := s.client.Start(context.WithoutCancel(ctx)); err != nil {
			if s.sqlDB != nil {
				s.sqlDB.Close()
			}
			return nil, fmt.Errorf("jobs: start: %w", err)
		}
	}
	s.log.Info("jobs ready", "backend", s.backend(), "workers", cfg.Workers)
	return s, nil
}

func (s *Service) backend() string {
	if s.sqlDB != nil {
		return "sqlite:" + s.cfg.SQLitePath
	}
	return "postgresql"
}

// dropTime leaves the time out of job log lines (the job's attempt times are shown anyway),
// keeping them short.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// openSQLite opens River's SQLite database as River's notes require: WAL, a busy timeout so
// that other processes wait instead of failing, and a single connection.
func openSQLite(path string) (*sql.DB, error) {
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	db, err := sql.Open("sqlite", "file:"+p+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("jobs: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// newClient migrates River's schema up and returns a client on driver.
func newClient[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], rc *river.Config) (riverClient, error) {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("jobs: migrate: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("jobs: migrate: %w", err)
	}
	c, err := river.NewClient(driver, rc)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return c, nil
}

type retryPolicy func(attempt int) time.Duration

func (p retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(p(job.Attempt))
}

// Close stops working: jobs in flight get until ctx ends to finish, then their contexts are
// cancelled (they return to the queue and run again later). It then closes River's SQLite
// database, if any.
func (s *Service) Close(ctx context.Context) error {
	var errs []error
	if s.cfg.Workers > 0 {
		if err := s.client.Stop(ctx); err != nil {
			s.log.Warn("jobs did not finish in time; cancelling them", "err", err)
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.client.StopAndCancel(cctx); err != nil {
				errs = append(errs, fmt.Errorf("jobs: stop: %w", err))
			}
			cancel()
		}
	}
	if s.sqlDB != nil {
		if err := s.sqlDB.Close(); err != nil {
			errs = append(errs, fmt.Errorf("jobs: close: %w", err))
		}
	}
	return errors.Join(errs...)
}

// TrainArgs are the arguments of a train job, stored with it as JSON.
type TrainArgs struct {
	Model   string                `json:"model"`
	Request registry.TrainRequest `json:"request"`
	// Trigger is recorded in the version's lineage: api, cli, stream, schedule, ...
	Trigger string `json:"trigger"`
	// RequestedBy says who asked, when known (a user, a client, a consumer group).
	RequestedBy string `json:"requested_by,omitempty"`
	// EventID is the idempotency key: a job with the same one is enqueued only once.
	EventID string `json:"event_id,omitempty" river:"unique"`
	// Gate, when set, makes the new version champion or challenger by comparing it with the
	// champion.
	Gate *Gate `json:"gate,omitempty"`
}

// Kind is the River job kind.
func (TrainArgs) Kind() string { return KindTrain }

// EnqueueOptions are the optional parts of an enqueue.
type EnqueueOptions struct {
	// Trigger is recorded in the version's lineage (default "api").
	Trigger     string
	RequestedBy string
	// EventID, when set, makes the enqueue idempotent: if a job with this id exists (in any
	// state, while it is retained), that job is returned and nothing is enqueued.
	EventID string
	// Gate, when set, promotes the new version to champion only if it beats the champion.
	Gate *Gate
}

// allStates makes an idempotency key hold whatever became of the first job.
var allStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStateCancelled, rivertype.JobStateCompleted,
	rivertype.JobStateDiscarded, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// Enqueue asks for a new version of model trained as req. created is false when
// opts.EventID named a job that already existed, which is returned instead.
func (s *Service) Enqueue(ctx context.Context, model string, req registry.TrainRequest, opts EnqueueOptions) (job *Job, created bool, err error) {
	if !pulse.ValidName(model) {
		return nil, false, pulse.FieldErrorf(pulse.EINVALID, "model", "model name %q: want 1-64 characters of a-z, 0-9, '-', '_', '.'", model)
	}
	if opts.Trigger == "" {
		opts.Trigger = "api"
	}
	if opts.Gate != nil {
		g := *opts.Gate
		if err := g.validate(); err != nil {
			return nil, false, err
		}
		opts.Gate = &g
	}
	args := TrainArgs{Model: model, Request: req, Trigger: opts.Trigger, RequestedBy: opts.RequestedBy, EventID: opts.EventID, Gate: opts.Gate}
	args.Request.Trigger = ""
	var insOpts *river.InsertOpts
	if opts.EventID != "" {
		insOpts = &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: allStates}}
	}
	res, err := s.client.Insert(ctx, args, insOpts)
	if err != nil {
		return nil, false, fmt.Errorf("jobs: enqueue: %w", err)
	}
	j, err := fromRow(res.Job)
	if err != nil {
		return nil, false, err
	}
	if !res.UniqueSkippedAsDuplicate {
		s.log.InfoContext(ctx, "train job enqueued", "job", j.ID, "model", model, "dataset", req.Dataset, "trigger", opts.Trigger, "event_id", opts.EventID)
	}
	return j, !res.UniqueSkippedAsDuplicate, nil
}

// Get returns a job by id.
func (s *Service) Get(ctx context.Context, id int64) (*Job, error) {
	row, err := s.client.JobGet(ctx, id)
	if err != nil {
		if errors.Is(err, rivertype.ErrNotFound) {
			return nil, pulse.Errorf(pulse.ENOTFOUND, "job %d not found", id)
		}
		return nil, fmt.Errorf("jobs: get %d: %w", id, err)
	}
	j, err := fromRow(row)
	if err != nil {
		return nil, err
	}
	if j.Kind == KindScore && j.Batch != nil && !j.Finished() {
		// The score job records its shards' progress only when it wakes up: count them now.
		shards, err := s.shardJobs(ctx, j.ID)
		if err != nil {
			return nil, err
		}
		b := j.Batch
		b.ShardsDone, b.ShardsRetry, b.Rows, b.Scored, b.Bad = 0, 0, 0, 0, 0
		for _, r := range shards {
			switch r.State {
			case rivertype.JobStateCompleted:
				so, err := shardOutput(r)
				if err != nil {
					return nil, err
				}
				b.ShardsDone++
				b.Rows += so.Rows
				b.Scored += so.Scored
				b.Bad += so.Bad
			case rivertype.JobStateRetryable:
				b.ShardsRetry++
			}
		}
		j.Progress = progress(j)
	}
	return j, nil
}

// Filter selects jobs to list; zero fields select everything.
type Filter struct {
	State string // available, running, completed, retryable, cancelled, discarded, scheduled, pending
	Model string
	Kind  string
	// Limit is the most jobs returned (default 100, at most 1000).
	Limit int
}

// List returns jobs, newest first.
func (s *Service) List(ctx context.Context, f Filter) ([]*Job, error) {
	if f.Limit == 0 {
		f.Limit = 100
	}
	if f.Limit < 0 || f.Limit > 1000 {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "limit", "limit: got %d, want 1 to 1000", f.Limit)
	}
	p := river.NewJobListParams().OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(f.Limit)
	if f.State != "" {
		st := rivertype.JobState(f.State)
		if !slices.Contains(rivertype.JobStates(), st) {
			return nil, pulse.FieldErrorf(pulse.EINVALID, "state", "state %q: want one of available, running, completed, retryable, cancelled, discarded, scheduled, pending", f.State)
		}
		p = p.States(st)
	} else {
		p = p.States(rivertype.JobStates()...)
	}
	if f.Kind != "" {
		p = p.Kinds(f.Kind)
	}
	if f.Model != "" {
		p = p.Where("args ->> 'model' = @model", river.NamedArgs{"model": f.Model})
	}
	res, err := s.client.JobList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("jobs: list: %w", err)
	}
	out := make([]*Job, 0, len(res.Jobs))
	for _, row := range res.Jobs {
		j, err := fromRow(row)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// Cancel cancels a job. A job waiting in the queue is cancelled at once; a running job's
// context is cancelled (within a poll interval when another process runs it) and it ends as
// cancelled without producing a version. Cancelling a finished job changes nothing and
// returns it as it is.
func (s *Service) Cancel(ctx context.Context, id int64) (*Job, error) {
	row, err := s.client.JobCancel(ctx, id)
	if err != nil {
		if errors.Is(err, rivertype.ErrNotFound) {
			return nil, pulse.Errorf(pulse.ENOTFOUND, "job %d not found", id)
		}
		return nil, fmt.Errorf("jobs: cancel %d: %w", id, err)
	}
	if row.Kind == KindScore {
		s.cancelShards(ctx, id)
	}
	s.log.InfoContext(ctx, "job cancel requested", "job", id, "state", row.State)
	return fromRow(row)
}

// Wait polls a job until it is finished (completed, cancelled or discarded) or failed an
// attempt (retryable), and returns it then. It returns ctx's error if ctx ends first.
func (s *Service) Wait(ctx context.Context, id int64) (*Job, error) {
	delay := 5 * time.Millisecond
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		j, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if j.Finished() || j.State == string(rivertype.JobStateRetryable) {
			return j, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, 200*time.Millisecond)
		t.Reset(delay)
	}
}

// Job is a job as the API shows it.
type Job struct {
	ID          int64     `json:"id"`
	Kind        string    `json:"kind"`
	State       string    `json:"state"`
	Model       string    `json:"model,omitempty"`
	Trigger     string    `json:"trigger,omitempty"`
	RequestedBy string    `json:"requested_by,omitempty"`
	EventID     string    `json:"event_id,omitempty"`
	Attempt     int       `json:"attempt"`
	MaxAttempts int       `json:"max_attempts"`
	CreatedAt   time.Time `json:"created_at"`
	// ScheduledAt is when the job runs (again), for a waiting or retrying job.
	ScheduledAt time.Time  `json:"scheduled_at"`
	AttemptedAt *time.Time `json:"attempted_at,omitempty"`
	// AttemptedBy names the worker clients that ran the job's attempts.
	AttemptedBy []string   `json:"attempted_by"`
	FinalizedAt *time.Time `json:"finalized_at,omitempty"`
	// Request is the training request of a train job.
	Request *registry.TrainRequest `json:"request,omitempty"`
	// Errors are the failed attempts, oldest first.
	Errors []AttemptError `json:"errors"`
	// Logs are each attempt's log lines.
	Logs []AttemptLog `json:"logs"`
	// Progress says in words where the job is.
	Progress string `json:"progress"`
	// Version is the version the job produced (train) or scores with (score), and VersionURL
	// its address.
	Version    int    `json:"version,omitempty"`
	VersionURL string `json:"version_url,omitempty"`
	// Problem is why the job failed for good: a request that cannot succeed, or an
	// infrastructure error after the last attempt.
	Problem *Problem `json:"problem,omitempty"`
	// Gate is the champion/challenger rule of the job, and GateDecision what it decided.
	Gate         *Gate         `json:"gate,omitempty"`
	GateDecision *GateDecision `json:"gate_decision,omitempty"`
	// ScoreRequest and Batch are a score job's request and where it is.
	ScoreRequest *ScoreRequest `json:"score_request,omitempty"`
	Batch        *BatchStatus  `json:"batch,omitempty"`
	// Parent is the score job of a shard job.
	Parent int64 `json:"parent,omitempty"`
}

// AttemptError is one failed attempt.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
}

// AttemptLog is the log of one attempt.
type AttemptLog struct {
	Attempt int    `json:"attempt"`
	Log     string `json:"log"`
}

// Problem is a job's permanent failure, with the domain error's code and the field it names.
type Problem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	Row     int    `json:"row,omitempty"`
}

// Err returns the problem as a *pulse.Error, so that it maps to the same HTTP status as the
// synchronous call would have.
func (p *Problem) Err() error {
	return &pulse.Error{Code: p.Code, Message: p.Message, Field: p.Field, Row: p.Row}
}

// Finished reports whether the job will not run again.
func (j *Job) Finished() bool {
	switch rivertype.JobState(j.State) {
	case rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
		return true
	}
	return false
}

// output is what a train job records: the version it produced, or its problem.
type output struct {
	Model   string        `json:"model,omitempty"`
	Version int           `json:"version,omitempty"`
	Problem *Problem      `json:"problem,omitempty"`
	Gate    *GateDecision `json:"gate,omitempty"`
}

type metadata struct {
	Output *output      `json:"output"`
	Logs   []AttemptLog `json:"river:log"`
}

func fromRow(row *rivertype.JobRow) (*Job, error) {
	j := &Job{
		ID:          row.ID,
		Kind:        row.Kind,
		State:       string(row.State),
		Attempt:     row.Attempt,
		MaxAttempts: row.MaxAttempts,
		CreatedAt:   row.CreatedAt.UTC(),
		ScheduledAt: row.ScheduledAt.UTC(),
		AttemptedAt: utc(row.AttemptedAt),
		FinalizedAt: utc(row.FinalizedAt),
		AttemptedBy: append([]string{}, row.AttemptedBy...),
		Errors:      make([]AttemptError, 0, len(row.Errors)),
		Logs:        []AttemptLog{},
	}
	for _, e := range row.Errors {
		j.Errors = append(j.Errors, AttemptError{Attempt: e.Attempt, At: e.At.UTC(), Error: e.Error})
	}
	switch row.Kind {
	case KindTrain:
		var a TrainArgs
		if err := json.Unmarshal(row.EncodedArgs, &a); err != nil {
			return nil, fmt.Errorf("jobs: job %d: decode args: %w", row.ID, err)
		}
		j.Model, j.Trigger, j.RequestedBy, j.EventID = a.Model, a.Trigger, a.RequestedBy, a.EventID
		j.Request = &a.Request
		j.Gate = a.Gate
	case KindScore:
		var a ScoreArgs
		if err := json.Unmarshal(row.EncodedArgs, &a); err != nil {
			return nil, fmt.Errorf("jobs: job %d: decode args: %w", row.ID, err)
		}
		j.Model, j.RequestedBy, j.EventID = a.Model, a.RequestedBy, a.EventID
		j.ScoreRequest = &a.Request
		j.Version = a.Version
		j.VersionURL = fmt.Sprintf("/v1/models/%s/versions/%d", a.Model, a.Version)
		var md struct {
			Output *scoreOutput `json:"output"`
		}
		if len(row.Metadata) > 0 {
			if err := json.Unmarshal(row.Metadata, &md); err != nil {
				return nil, fmt.Errorf("jobs: job %d: decode metadata: %w", row.ID, err)
			}
		}
		if md.Output != nil {
			j.Batch = md.Output.Batch
			j.Problem = md.Output.Problem
		}
	case KindScoreShard:
		a := shardArgs(row)
		j.Model, j.Parent, j.Version = a.Model, a.Parent, a.Version
	}
	if len(row.Metadata) > 0 && row.Kind == KindTrain {
		var md metadata
		if err := json.Unmarshal(row.Metadata, &md); err != nil {
			return nil, fmt.Errorf("jobs: job %d: decode metadata: %w", row.ID, err)
		}
		if md.Logs != nil {
			j.Logs = md.Logs
		}
		if o := md.Output; o != nil {
			if o.Version > 0 {
				j.Version = o.Version
				j.VersionURL = fmt.Sprintf("/v1/models/%s/versions/%d", o.Model, o.Version)
			}
			j.Problem = o.Problem
			j.GateDecision = o.Gate
		}
	}
	j.Progress = progress(j)
	return j, nil
}

func progress(j *Job) string {
	if j.Kind == KindScore && j.Batch != nil && !j.Finished() {
		b := j.Batch
		return fmt.Sprintf("scoring: %d of %d shards done, %d rows (%d bad)", b.ShardsDone, b.Shards, b.Rows, b.Bad)
	}
	switch rivertype.JobState(j.State) {
	case rivertype.JobStateAvailable, rivertype.JobStateScheduled, rivertype.JobStatePending:
		return "waiting for a worker"
	case rivertype.JobStateRunning:
		return fmt.Sprintf("attempt %d of %d running", j.Attempt, j.MaxAttempts)
	case rivertype.JobStateRetryable:
		return fmt.Sprintf("attempt %d of %d failed; retrying at %s", j.Attempt, j.MaxAttempts, j.ScheduledAt.Format(time.RFC3339))
	case rivertype.JobStateCompleted:
		if j.Version > 0 {
			return fmt.Sprintf("done: version %d", j.Version)
		}
		return "done"
	case rivertype.JobStateCancelled:
		if j.Problem != nil {
			return "failed: " + j.Problem.Message
		}
		return "cancelled"
	case rivertype.JobStateDiscarded:
		return fmt.Sprintf("failed after %d attempts", j.Attempt)
	}
	return j.State
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
