package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cloudmedical/pulse/internal/blobstore"
	"github.com/cloudmedical/pulse/internal/bundle"
	"github.com/cloudmedical/pulse/internal/evaluator"
	"github.com/cloudmedical/pulse/internal/events"
	"github.com/cloudmedical/pulse/internal/example"
	"github.com/cloudmedical/pulse/internal/feedback"
	pulsehttp "github.com/cloudmedical/pulse/internal/http"
	"github.com/cloudmedical/pulse/internal/jobs"
	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/online"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/serving"
)

// ServeConfig is the configuration of `pulse serve`, from flags and PULSE_* variables.
type ServeConfig struct {
	// Events configures the event backbone (Kafka, or the embedded broker).
	Events  EventsConfig
	Addr    string
	DataDir string
	// DatabaseURL, when set, keeps metadata and the job queue in PostgreSQL instead of
	// SQLite files in the data dir.
	DatabaseURL string
	BlobURL     string
	LakeURL     string
	Example     string
	ExampleData string
	ExampleURL  string
	LogLevel    string
	LogFormat   string
	// ShutdownTimeout bounds the draining of requests in flight.
	ShutdownTimeout time.Duration
	// Workers is how many training jobs this process runs at once; 0 leaves them to
	// `pulse worker` processes.
	Workers int
	// Jobs are the job timeouts.
	Jobs JobTimeouts
	// SchedulesFile is a JSON array of retraining schedules (see jobs.Schedule).
	SchedulesFile string
	// OnlineFile is a JSON array of online followers (see online.Spec): ftrl models that
	// learn from their dataset's ingest stream.
	OnlineFile string
	// WALSegmentAge is how long scored records wait in the write-ahead log before they are
	// compacted to Parquet.
	WALSegmentAge time.Duration
	// SigningKey is the Ed25519 private key (PKCS#8 PEM) that signs model bundles; empty
	// means <data-dir>/keys/bundle-signing.pem, generated on first start.
	SigningKey string
	// FeedbackRetention is how old a prediction may be and still be joined to its label.
	FeedbackRetention time.Duration
	// MaxLoadedVersions bounds the model versions kept loaded in memory (registry).
	MaxLoadedVersions int
	// Evaluation configures continuous evaluation (evaluate.go).
	Evaluation EvaluationConfig
}

// ServeMain runs `pulse serve`: it wires the adapters together (and is the only place that
// does), runs until the context ends, then shuts down in order.
type ServeMain struct {
	Config ServeConfig
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger

	db   metadataStore
	jobs *jobs.Service
	bus  *eventBus
	// online runs the followers of --online; nil without it.
	online *online.Manager
	// stopRefresh ends the loop that keeps aliases moved by other processes in sync.
	stopRefresh context.CancelFunc
	blobs       *blobstore.Store
	lakeSt      *blobstore.Store
	lake        *lake.Lake
	server      *pulsehttp.Server
	// scorer and evaluator are kept to be stopped in order (shadow workers, the loop).
	scorer    *serving.Scorer
	evaluator *evaluator.Evaluator
}

// NewServeMain returns a ServeMain with the defaults.
func NewServeMain(stdout, stderr io.Writer) *ServeMain {
	return &ServeMain{stdout: stdout, stderr: stderr}
}

// ParseFlags reads flags; every flag has a PULSE_* environment variable as its default.
func (m *ServeMain) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	c := &m.Config
	fs.StringVar(&c.Addr, "addr", envOr("PULSE_ADDR", "127.0.0.1:8080"), "listen address (env PULSE_ADDR)")
	fs.StringVar(&c.DataDir, "data-dir", envOr("PULSE_DATA_DIR", "./pulse-data"), "where metadata, the write-ahead log and (by default) blobs and the lake live (env PULSE_DATA_DIR)")
	fs.StringVar(&c.DatabaseURL, "database-url", envOr("PULSE_DATABASE_URL", ""), "PostgreSQL URL for metadata and the job queue, instead of SQLite files in the data dir (env PULSE_DATABASE_URL)")
	fs.IntVar(&c.Workers, "workers", 2, "training jobs this process runs at once; 0 leaves them to `pulse worker` processes")
	fs.StringVar(&c.SchedulesFile, "schedules", envOr("PULSE_SCHEDULES", ""), "JSON file of retraining schedules: [{\"model\",\"cron\",\"request\",\"gate\"}] (env PULSE_SCHEDULES); run where jobs are worked")
	fs.StringVar(&c.OnlineFile, "online", envOr("PULSE_ONLINE", ""), "JSON file of online followers: [{\"model\",\"dataset\",\"base_version\",\"snapshot_every_records\",\"snapshot_every_seconds\",\"promote_alias\"}] (env PULSE_ONLINE); ftrl models that learn from their dataset's ingest events, served with ?alias=live")
	fs.StringVar(&c.BlobURL, "blob-url", envOr("PULSE_BLOB_URL", ""), "bucket URL for model artifacts: file:///dir, azblob://container, s3://bucket (env PULSE_BLOB_URL; default <data-dir>/blobs)")
	fs.StringVar(&c.LakeURL, "lake-url", envOr("PULSE_LAKE_URL", ""), "bucket URL of the data lake (env PULSE_LAKE_URL; default <data-dir>/lake)")
	fs.StringVar(&c.Example, "example", envOr("PULSE_EXAMPLE", ""), "set up an example on start: heart-disease (env PULSE_EXAMPLE)")
	fs.StringVar(&c.ExampleData, "example-data", envOr("PULSE_EXAMPLE_DATA", ""), "local copy of the example's data file (env PULSE_EXAMPLE_DATA)")
	fs.StringVar(&c.ExampleURL, "example-url", envOr("PULSE_EXAMPLE_URL", example.DefaultURL), "where to download the example's data when there is no local copy (env PULSE_EXAMPLE_URL)")
	addEventFlags(fs, &c.Events, false)
	addJobFlags(fs, &c.Jobs)
	addEvaluationFlags(fs, &c.Evaluation)
	fs.StringVar(&c.LogLevel, "log-level", envOr("PULSE_LOG_LEVEL", "info"), "debug, info, warn or error (env PULSE_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", envOr("PULSE_LOG_FORMAT", "text"), "text or json (env PULSE_LOG_FORMAT)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long to drain requests in flight on shutdown")
	fs.DurationVar(&c.WALSegmentAge, "lake-flush-interval", 5*time.Second, "how often scored records are compacted from the write-ahead log to Parquet")
	fs.DurationVar(&c.FeedbackRetention, "feedback-retention", feedback.DefaultRetention, "labels are joined to predictions made within this long before (by the time in the prediction id); older ones are reported unknown")
	fs.IntVar(&c.MaxLoadedVersions, "max-loaded-versions", registry.DefaultMaxLoadedVersions, "model versions kept loaded in memory, the least recently used dropped first (read again from the artifact store when next used)")
	fs.StringVar(&c.SigningKey, "signing-key", envOr("PULSE_SIGNING_KEY", ""), "Ed25519 private key (PKCS#8 PEM) that signs model bundles; give every server the same file (env PULSE_SIGNING_KEY; default <data-dir>/keys/bundle-signing.pem, generated on first start)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected arguments %q", fs.Args())
	}
	if c.Workers < 0 {
		return fmt.Errorf("serve: --workers %d: want 0 or more", c.Workers)
	}
	if c.Example != "" && c.Example != example.HeartDisease {
		return fmt.Errorf("serve: --example %q: want %q", c.Example, example.HeartDisease)
	}
	var err error
	m.log, err = newLogger("serve", c.LogLevel, c.LogFormat, m.stderr)
	return err
}

// Run starts everything, blocks until ctx is done, then shuts down.
func (m *ServeMain) Run(ctx context.Context) (err error) {
	if m.log == nil {
		if err := m.ParseFlags(nil); err != nil {
			return err
		}
	}
	defer func() {
		if cerr := m.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := m.open(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	m.log.Info("shutting down: draining requests, then flushing the lake")
	return nil
}

func (m *ServeMain) open(ctx context.Context) error {
	c := m.Config
	dataDir, err := prepareDataDir("serve", c.DataDir, &c.BlobURL, &c.LakeURL)
	if err != nil {
		return err
	}
	walDir := filepath.Join(dataDir, "wal")

	db, jcfg, dbPath, err := openMetadata(ctx, dataDir, c.DatabaseURL, m.log)
	if err != nil {
		return err
	}
	m.db = db
	if m.blobs, err = blobstore.Open(ctx, c.BlobURL); err != nil {
		return fmt.Errorf("serve: blob store: %w", err)
	}
	if m.lakeSt, err = blobstore.Open(ctx, c.LakeURL); err != nil {
		return fmt.Errorf("serve: lake: %w", err)
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if m.lake, err = lake.Open(ctx, lake.Config{
		WALDir:        walDir,
		Store:         m.lakeSt,
		MaxSegmentAge: c.WALSegmentAge,
		Logger:        m.log.With("component", "lake"),
		Registerer:    metrics,
	}); err != nil {
		return err
	}
	if m.bus, err = openEvents(ctx, c.Events, dataDir, m.log, metrics); err != nil {
		return err
	}
	rcfg := registry.Config{
		Store:        m.db,
		Blobs:        m.blobs,
		Lake:         m.lakeSt,
		Logger:       m.log.With("component", "registry"),
		PulseVersion: Version,
		GitCommit:    gitCommit(),

		MaxLoadedVersions: c.MaxLoadedVersions,
	}
	if m.bus != nil {
		rcfg.Notifier = m.bus
	}
	reg, err := registry.New(ctx, rcfg)
	if err != nil {
		return err
	}
	refreshCtx, stopRefresh := context.WithCancel(context.WithoutCancel(ctx))
	m.stopRefresh = stopRefresh
	go refreshAliases(refreshCtx, reg, m.log)
	ev, scfg, err := m.openEvaluator(c.Evaluation, reg, metrics)
	if err != nil {
		return err
	}
	m.evaluator = ev
	scfg.Models, scfg.Sink, scfg.Logger, scfg.Registerer = reg, m.lake, m.log.With("component", "serving"), metrics
	scorer, err := serving.New(scfg)
	if err != nil {
		return err
	}
	m.scorer = scorer
	fb, err := feedback.New(feedback.Config{
		Lake:       m.lake,
		Retention:  c.FeedbackRetention,
		Logger:     m.log.With("component", "feedback"),
		Registerer: metrics,
		OnOutcome:  outcomeListener(ev),
	})
	if err != nil {
		return fmt.Errorf("serve: --feedback-retention: %w", err)
	}
	jcfg.Registry = reg
	jcfg.Workers = c.Workers
	jcfg.Lake = m.lakeSt.Bucket
	if err := c.Jobs.apply(&jcfg); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if c.SchedulesFile != "" {
		if jcfg.Schedules, err = jobs.LoadSchedules(c.SchedulesFile); err != nil {
			return err
		}
		if c.Workers == 0 {
			m.log.Warn("--schedules is ignored with --workers 0: give it to a pulse worker")
		}
	}
	jcfg.Logger = m.log.With("component", "jobs")
	if m.bus != nil {
		jcfg.Notifier = m.bus
	}
	if m.jobs, err = jobs.Open(ctx, jcfg); err != nil {
		return err
	}
	logEvaluation(m.log, c.Evaluation)
	if m.evaluator != nil {
		if err := m.evaluator.Start(ctx); err != nil {
			return err
		}
	}
	var asyncAPI []byte
	if m.bus != nil {
		if err := m.bus.startConsumers(ctx, reg, m.lake, m.jobs, m.db); err != nil {
			return err
		}
		if err := m.bus.startScoring(ctx, c.Events, scorer); err != nil {
			return err
		}
		if err := m.bus.startFeedback(ctx, fb); err != nil {
			return err
		}
		asyncAPI = m.bus.AsyncAPI()
	}
	if c.OnlineFile != "" {
		if m.bus == nil {
			return fmt.Errorf("serve: --online needs the event backbone; --kafka-brokers is off")
		}
		specs, err := online.LoadSpecs(c.OnlineFile)
		if err != nil {
			return err
		}
		// Not cancelled with ctx: Close stops the followers with a final snapshot.
		if m.online, err = online.Start(context.WithoutCancel(ctx), online.Config{
			Specs:      specs,
			Registry:   reg,
			ClientOpts: m.bus.conn.Opts,
			Topic:      m.bus.topics.Name(events.TopicIngest),
			Logger:     m.log.With("component", "online"),
			Registerer: metrics,
		}); err != nil {
			return fmt.Errorf("serve: --online: %w", err)
		}
	}
	m.log.Info("pulse starting", "version", Version, "commit", gitCommit(), "data_dir", dataDir, "metadata", dbPath,
		"blobs", c.BlobURL, "lake", c.LakeURL, "wal", walDir, "workers", c.Workers)

	var champion string
	if c.Example == example.HeartDisease {
		v, err := example.Ensure(ctx, reg, example.Options{
			DataPath: c.ExampleData,
			DataDir:  dataDir,
			URL:      c.ExampleURL,
			Logger:   m.log.With("component", "example"),
		})
		if err != nil {
			return err
		}
		champion = fmt.Sprintf("%s version %d", v.Model, v.Version)
		if h := v.Metrics.Holdout; h != nil {
			m.log.Info("example model ready", "model", v.Model, "version", v.Version, "holdout_accuracy", round(h.Accuracy), "holdout_roc_auc", round(h.ROCAUC))
		}
	}

	signer, created, err := bundle.OpenSigner(c.SigningKey, dataDir)
	if err != nil {
		return fmt.Errorf("serve: --signing-key: %w", err)
	}
	m.log.Info("bundle signing key", "key_id", signer.KeyID(), "generated", created)
	m.server, err = pulsehttp.New(pulsehttp.Config{
		Addr:     c.Addr,
		Registry: reg,
		Scorer:   scorer,
		Jobs:     m.jobs,
		AsyncAPI: asyncAPI,
		Online:   m.onlineStatus(),
		Signer:   signer,
		Feedback: fb,

		Evaluation: m.evaluator,

		PulseVersion: Version,
		Ready: func(ctx context.Context) error {
			return m.db.Ping(ctx)
		},
		Logger:  m.log.With("component", "http"),
		Metrics: metrics,
	})
	if err != nil {
		return err
	}
	if err := m.server.Open(); err != nil {
		return err
	}
	base := "http://" + m.server.Addr()
	if champion != "" {
		fmt.Fprintf(m.stdout, "\nPulse is serving %s. Try a prediction:\n\n  %s\n\n", champion, exampleCurl(base))
	}
	m.log.Info("listening", "addr", m.server.Addr(), "openapi", base+"/openapi.json", "metrics", base+"/metrics")
	return nil
}

// onlineStatus returns the status lookup of the online followers, nil without them.
func (m *ServeMain) onlineStatus() func(string) (any, bool) {
	if m.online == nil {
		return nil
	}
	return func(model string) (any, bool) { return m.online.Status(model) }
}

// refreshAliases keeps the aliases that other processes move (pulse worker, other servers)
// in sync every two seconds, until ctx ends.
func refreshAliases(ctx context.Context, reg *registry.Service, log *slog.Logger) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := reg.RefreshAliases(ctx); err != nil && ctx.Err() == nil {
				log.Warn("refreshing aliases failed; serving the ones known", "err", err)
			}
		}
	}
}

func round(f float64) float64 {
	return float64(int(f*1000+0.5)) / 1000
}

// exampleCurl is a ready-to-paste prediction for the heart-disease example (the first
// Cleveland patient).
func exampleCurl(base string) string {
	body := `{"age":63,"sex":1,"cp":1,"trestbps":145,"chol":233,"fbs":1,"restecg":2,"thalach":150,"exang":0,"oldpeak":2.3,"slope":3,"ca":0,"thal":6}`
	return strings.Join([]string{
		"curl -s " + base + "/v1/models/heart-disease/predict",
		"-H 'Content-Type: application/json'",
		"-d '" + body + "'",
	}, " ")
}

// Close shuts down in dependency order: stop taking requests (draining those in flight), then
// flush the lake, then close the stores.
func (m *ServeMain) Close() error {
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout+30*time.Second)
	defer cancel()
	if m.server != nil {
		dctx, dcancel := context.WithTimeout(ctx, m.Config.ShutdownTimeout)
		if err := m.server.Close(dctx); err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
		dcancel()
	}
	if m.stopRefresh != nil {
		m.stopRefresh()
	}
	if m.online != nil {
		// Before the bus and the stores: the final snapshots need the registry.
		if err := m.online.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("online: %w", err))
		}
	}
	if m.bus != nil {
		if err := m.bus.stopConsumers(ctx); err != nil {
			errs = append(errs, fmt.Errorf("events: %w", err))
		}
	}
	if m.scorer != nil { // no more requests: the shadow workers stop before the lake closes
		if err := m.scorer.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("serving: %w", err))
		}
	}
	if m.evaluator != nil {
		if err := m.evaluator.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if m.jobs != nil {
		// Trainings in flight get the shutdown timeout to finish; then they are cancelled and
		// return to the queue.
		jctx, jcancel := context.WithTimeout(ctx, m.Config.ShutdownTimeout)
		if err := m.jobs.Close(jctx); err != nil {
			errs = append(errs, err)
		}
		jcancel()
	}
	if m.bus != nil {
		if err := m.bus.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("events: %w", err))
		}
	}
	if m.lake != nil {
		if err := m.lake.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("lake: %w", err))
		}
	}
	for _, st := range []*blobstore.Store{m.blobs, m.lakeSt} {
		if st != nil {
			if err := st.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if m.db != nil {
		if err := m.db.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if m.log != nil && len(errs) == 0 {
		m.log.Info("stopped cleanly")
	}
	return errors.Join(errs...)
}
