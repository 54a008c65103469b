package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cloudmedical/pulse/internal/blobstore"
	"github.com/cloudmedical/pulse/internal/jobs"
	"github.com/cloudmedical/pulse/internal/postgres"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/sqlite"
)

// metadataStore is what `pulse serve` and `pulse worker` need of a metadata store: SQLite
// embedded, PostgreSQL scaled out.
type metadataStore interface {
	registry.Store
	pulse.EventStore
	Ping(ctx context.Context) error
	Close() error
}

// openMetadata opens the metadata store: PostgreSQL at databaseURL when it is set, else
// <dataDir>/pulse.db. With PostgreSQL it also returns the jobs configuration that shares its
// pool; with SQLite, the one that uses <dataDir>/jobs.db.
func openMetadata(ctx context.Context, dataDir, databaseURL string, log *slog.Logger) (metadataStore, jobs.Config, string, error) {
	if databaseURL != "" {
		db, err := postgres.Open(ctx, databaseURL, log.With("component", "metadata"))
		if err != nil {
			return nil, jobs.Config{}, "", err
		}
		return db, jobs.Config{Pool: db.Pool()}, "postgresql", nil
	}
	path := filepath.Join(dataDir, "pulse.db")
	db, err := sqlite.Open(ctx, path, log.With("component", "metadata"))
	if err != nil {
		return nil, jobs.Config{}, "", err
	}
	return db, jobs.Config{SQLitePath: filepath.Join(dataDir, "jobs.db")}, path, nil
}

// prepareDataDir makes the data directory (absolute) and defaults the blob and lake URLs to
// buckets inside it, as pulse serve and pulse worker both do.
func prepareDataDir(cmd, dir string, blobURL, lakeURL *string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("%s: data dir: %w", cmd, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", fmt.Errorf("%s: data dir: %w", cmd, err)
	}
	if *blobURL == "" {
		*blobURL = blobstore.FileURL(filepath.Join(abs, "blobs"))
	}
	if *lakeURL == "" {
		*lakeURL = blobstore.FileURL(filepath.Join(abs, "lake"))
	}
	return abs, nil
}

// newLogger returns the logger that --log-level and --log-format ask for.
func newLogger(cmd, level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%s: --log-level %q: want debug, info, warn or error", cmd, level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%s: --log-format %q: want text or json", cmd, format)
}

// WorkerConfig is the configuration of `pulse worker`, from flags and PULSE_* variables.
type WorkerConfig struct {
	DataDir     string
	DatabaseURL string
	BlobURL     string
	LakeURL     string
	Concurrency int
	// SchedulesFile is a JSON array of retraining schedules (see jobs.Schedule).
	SchedulesFile string
	// Events says where model and job events are published (off by default).
	Events EventsConfig
	// Jobs are the job timeouts.
	Jobs      JobTimeouts
	LogLevel  string
	LogFormat string
	// ShutdownTimeout is how long jobs in flight may run on after a stop signal before they
	// are cancelled (they then run again on another worker).
	ShutdownTimeout time.Duration
}

// JobTimeouts bound jobs, and say when a job whose worker died is run again.
type JobTimeouts struct {
	Job, Shard, RescueAfter time.Duration
}

func addJobFlags(fs *flag.FlagSet, t *JobTimeouts) {
	fs.DurationVar(&t.Job, "job-timeout", envDuration("PULSE_JOB_TIMEOUT", time.Hour), "longest a training job (or the planning of a score job) may run (env PULSE_JOB_TIMEOUT)")
	fs.DurationVar(&t.Shard, "shard-timeout", envDuration("PULSE_SHARD_TIMEOUT", 30*time.Minute), "longest the scoring of one shard of a score job may run (env PULSE_SHARD_TIMEOUT)")
	fs.DurationVar(&t.RescueAfter, "rescue-after", envDuration("PULSE_RESCUE_AFTER", 0), "how long a job may run before its worker is presumed dead and the job runs again elsewhere; more than both timeouts (env PULSE_RESCUE_AFTER; default the longer timeout + 10m)")
}

// apply sets the timeouts in c; it refuses an environment variable that is not a duration
// (envDuration let the flag's default fall back on it).
func (t JobTimeouts) apply(c *jobs.Config) error {
	for _, name := range []string{"PULSE_JOB_TIMEOUT", "PULSE_SHARD_TIMEOUT", "PULSE_RESCUE_AFTER"} {
		if v := os.Getenv(name); v != "" {
			if _, err := time.ParseDuration(v); err != nil {
				return fmt.Errorf("%s=%q: want a duration such as 45m", name, v)
			}
		}
	}
	c.JobTimeout, c.ShardTimeout, c.RescueAfter = t.Job, t.Shard, t.RescueAfter
	return nil
}

// envDuration is a duration flag's default from the environment, or def when unset or not a
// duration (JobTimeouts.apply then refuses it).
func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// WorkerMain runs `pulse worker`: it works jobs (training) from the queue that `pulse serve`
// fills, and serves no HTTP.
type WorkerMain struct {
	Config WorkerConfig
	stderr io.Writer
	log    *slog.Logger
}

// NewWorkerMain returns a WorkerMain with the defaults.
func NewWorkerMain(stderr io.Writer) *WorkerMain {
	return &WorkerMain{stderr: stderr}
}

// ParseFlags reads flags; every flag has a PULSE_* environment variable as its default.
func (m *WorkerMain) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	c := &m.Config
	fs.StringVar(&c.DataDir, "data-dir", envOr("PULSE_DATA_DIR", "./pulse-data"), "the data directory of the `pulse serve` to work for: metadata, jobs.db and (by default) blobs and the lake (env PULSE_DATA_DIR)")
	fs.StringVar(&c.DatabaseURL, "database-url", envOr("PULSE_DATABASE_URL", ""), "PostgreSQL URL for metadata and the job queue, instead of SQLite files in the data dir (env PULSE_DATABASE_URL)")
	fs.StringVar(&c.BlobURL, "blob-url", envOr("PULSE_BLOB_URL", ""), "bucket URL for model artifacts (env PULSE_BLOB_URL; default <data-dir>/blobs)")
	fs.StringVar(&c.LakeURL, "lake-url", envOr("PULSE_LAKE_URL", ""), "bucket URL of the data lake (env PULSE_LAKE_URL; default <data-dir>/lake)")
	fs.IntVar(&c.Concurrency, "concurrency", 2, "how many jobs this worker runs at once")
	fs.StringVar(&c.SchedulesFile, "schedules", envOr("PULSE_SCHEDULES", ""), "JSON file of retraining schedules: [{\"model\",\"cron\",\"request\",\"gate\"}] (env PULSE_SCHEDULES); the workers' leader enqueues each run once")
	addEventFlags(fs, &c.Events, true)
	addJobFlags(fs, &c.Jobs)
	fs.StringVar(&c.LogLevel, "log-level", envOr("PULSE_LOG_LEVEL", "info"), "debug, info, warn or error (env PULSE_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", envOr("PULSE_LOG_FORMAT", "text"), "text or json (env PULSE_LOG_FORMAT)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long jobs in flight may finish on shutdown before they are cancelled and requeued")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("worker: unexpected arguments %q", fs.Args())
	}
	if c.Concurrency < 1 {
		return fmt.Errorf("worker: --concurrency %d: want 1 or more", c.Concurrency)
	}
	var err error
	m.log, err = newLogger("worker", c.LogLevel, c.LogFormat, m.stderr)
	return err
}

// Run works jobs until ctx is done, then lets jobs in flight finish (within the shutdown
// timeout) and stops.
func (m *WorkerMain) Run(ctx context.Context) (err error) {
	if m.log == nil {
		if err := m.ParseFlags(nil); err != nil {
			return err
		}
	}
	c := m.Config
	dataDir, err := prepareDataDir("worker", c.DataDir, &c.BlobURL, &c.LakeURL)
	if err != nil {
		return err
	}
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if cerr := closers[i](); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	db, jcfg, metaWhere, err := openMetadata(ctx, dataDir, c.DatabaseURL, m.log)
	if err != nil {
		return err
	}
	closers = append(closers, db.Close)
	blobs, err := blobstore.Open(ctx, c.BlobURL)
	if err != nil {
		return fmt.Errorf("worker: blob store: %w", err)
	}
	closers = append(closers, blobs.Close)
	lakeSt, err := blobstore.Open(ctx, c.LakeURL)
	if err != nil {
		return fmt.Errorf("worker: lake: %w", err)
	}
	closers = append(closers, lakeSt.Close)
	if c.Events.Brokers == "" {
		c.Events.Brokers = "off" // a worker never starts a broker of its own
	}
	bus, err := openEvents(ctx, c.Events, dataDir, m.log, nil)
	if err != nil {
		return err
	}
	rcfg := registry.Config{
		Store:        db,
		Blobs:        blobs,
		Lake:         lakeSt,
		Logger:       m.log.With("component", "registry"),
		PulseVersion: Version,
		GitCommit:    gitCommit(),
	}
	if bus != nil {
		closers = append(closers, func() error {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return bus.Close(cctx)
		})
		rcfg.Notifier = bus
		jcfg.Notifier = bus
	}
	reg, err := registry.New(ctx, rcfg)
	if err != nil {
		return err
	}
	jcfg.Registry = reg
	jcfg.Workers = c.Concurrency
	jcfg.Lake = lakeSt.Bucket
	if err := c.Jobs.apply(&jcfg); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if c.SchedulesFile != "" {
		if jcfg.Schedules, err = jobs.LoadSchedules(c.SchedulesFile); err != nil {
			return err
		}
	}
	jcfg.Logger = m.log.With("component", "jobs")
	js, err := jobs.Open(ctx, jcfg)
	if err != nil {
		return err
	}
	m.log.Info("worker started", "version", Version, "commit", gitCommit(), "concurrency", c.Concurrency,
		"metadata", metaWhere, "blobs", c.BlobURL, "lake", c.LakeURL)
	<-ctx.Done()
	m.log.Info("shutting down: letting jobs in flight finish", "timeout", c.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	if err := js.Close(sctx); err != nil {
		return err
	}
	m.log.Info("stopped cleanly")
	return nil
}
