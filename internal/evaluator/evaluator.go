package evaluator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudmedical/pulse/internal/jobs"
	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/monitor"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
)

// Models is what the evaluator needs of the registry; *registry.Service implements it.
type Models interface {
	Models(ctx context.Context) ([]*pulse.Model, error)
	Version(ctx context.Context, model string, version int) (*pulse.ModelVersion, error)
	Profile(ctx context.Context, model string, version int) (*monitor.Profile, error)
	SetAlias(ctx context.Context, model, alias string, version int) (int, error)
	DeleteAlias(ctx context.Context, model, alias string) error
}

// Store is the metadata the evaluator keeps and reads: the policies, the audit trail and the
// alias history. *sqlite.DB and *postgres.DB implement it.
type Store interface {
	pulse.PolicyStore
	pulse.DecisionStore
	pulse.AliasHistoryStore
}

// Jobs is what the evaluator needs of the job queue; *jobs.Service implements it.
type Jobs interface {
	Enqueue(ctx context.Context, model string, req registry.TrainRequest, opts jobs.EnqueueOptions) (*jobs.Job, bool, error)
	List(ctx context.Context, f jobs.Filter) ([]*jobs.Job, error)
}

// Notifier hears of every decision recorded in an audit trail, after it is stored (pulse
// serve publishes it on model.events). It must not block.
type Notifier interface {
	DecisionRecorded(ctx context.Context, d *pulse.Decision)
}

// Outcome is one labelled prediction, as the feedback join produces it: the stored
// prediction joined to its ground truth.
type Outcome struct {
	PredictionID string
	Model        string
	Version      int
	// Alias is the alias the prediction was served through ("" when by version). Shadow is
	// true for a challenger's shadow prediction; a prediction with alias "challenger" that
	// shares its prediction_id with a champion prediction is one too.
	Alias  string
	Shadow bool
	// Probability is the predicted probability of class 1, Predicted the predicted label at
	// Threshold, Label the true label (0 or 1).
	Probability float64
	Predicted   int
	Threshold   float64
	Label       int
	ScoredAt    time.Time
	ObservedAt  time.Time
}

// Defaults of Config.
const (
	DefaultInterval      = 5 * time.Second
	DefaultMinGap        = 500 * time.Millisecond
	DefaultLiveSize      = 1000
	DefaultLivePeriod    = 7 * 24 * time.Hour
	DefaultDriftSize     = 2000
	DefaultDriftPeriod   = 24 * time.Hour
	DefaultLiveMinLabels = 100
	DefaultObserveQueue  = 1 << 16
	DefaultMaxPending    = 20000
	DefaultIdleAfter     = 24 * time.Hour
)

// Config configures an Evaluator. Zero fields take the defaults above.
type Config struct {
	Models Models
	Store  Store
	// Jobs starts retraining jobs; without it a retrain decision is recorded with the error
	// that this server has no job queue.
	Jobs     Jobs
	Notifier Notifier
	Logger   *slog.Logger
	// Registerer receives the live-metric and drift gauges; nil registers nothing.
	Registerer prometheus.Registerer
	// Interval is how often every model with a policy is evaluated; MinGap the least time
	// between two evaluations when new outcomes ask for one sooner.
	Interval time.Duration
	MinGap   time.Duration
	// Live is the live window of each version and of each champion/challenger pair (default
	// the last 1000 outcomes observed within 7 days); Drift the drift window of each version
	// (default the last 2000 records within 24 hours).
	Live  monitor.LiveConfig
	Drift monitor.DriftConfig
	// LiveMinLabels is the number of labels from which the predict response shows a
	// version's live accuracy, for models whose policy does not set live_metric_min_labels.
	LiveMinLabels int
	// ObserveQueue bounds the records waiting for the drift windows; MaxPending the
	// outcomes waiting for the other half of their champion/challenger pair.
	ObserveQueue int
	MaxPending   int
	// IdleAfter is how long a version that is neither champion nor challenger keeps its
	// windows without new data.
	IdleAfter time.Duration
	// Recent, when set, returns the outcomes observed since a time (the lake's outcomes
	// table, read by the feedback join's reader): Start feeds them to the live windows, so
	// that a restart does not empty them. nil starts the windows empty.
	Recent func(ctx context.Context, since time.Time) ([]Outcome, error)
	// Webhook configures the POSTs to policies' webhooks.
	Webhook WebhookConfig
	// Now returns the current time (default time.Now); tests give a fake clock.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.Models == nil || c.Store == nil {
		return pulse.Errorf(pulse.EINVALID, "evaluator: config: Models and Store are required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.MinGap == 0 {
		c.MinGap = DefaultMinGap
	}
	if c.Live.Size == 0 {
		c.Live.Size = DefaultLiveSize
	}
	if c.Live.Period == 0 {
		c.Live.Period = DefaultLivePeriod
	}
	if c.Drift.Size == 0 {
		c.Drift.Size = DefaultDriftSize
	}
	if c.Drift.Period == 0 {
		c.Drift.Period = DefaultDriftPeriod
	}
	if c.LiveMinLabels == 0 {
		c.LiveMinLabels = DefaultLiveMinLabels
	}
	if c.ObserveQueue == 0 {
		c.ObserveQueue = DefaultObserveQueue
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.IdleAfter == 0 {
		c.IdleAfter = DefaultIdleAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case c.Interval < 0 || c.MinGap < 0 || c.IdleAfter < 0:
		return pulse.Errorf(pulse.EINVALID, "evaluator: config: Interval, MinGap and IdleAfter must not be negative")
	case c.LiveMinLabels < 0 || c.ObserveQueue < 0 || c.MaxPending < 0:
		return pulse.Errorf(pulse.EINVALID, "evaluator: config: LiveMinLabels, ObserveQueue and MaxPending must not be negative")
	}
	// The windows check their own settings; a probe finds a bad one now rather than later.
	if _, err := monitor.NewLiveWindow(c.Live); err != nil {
		return fmt.Errorf("evaluator: config: live %w", err)
	}
	return c.Webhook.setDefaults()
}

// Evaluator is the continuous evaluation loop and the windows it reads. Its methods are safe
// for concurrent use.
type Evaluator struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	// mu guards the windows, the pairs and the pending outcomes. Reports run under it; they
	// take well under a millisecond for the default windows.
	mu       sync.Mutex
	versions map[vkey]*versionState
	pairs    map[pairKey]*pairState
	pending  map[string]pendingOutcome
	queue    []string // prediction ids of pending, oldest first (some already paired)
	// shadowing maps a model to its challenger while shadow scoring is on for it, so that
	// the champion's outcomes wait for their shadow half; set by the loop.
	shadowing map[string]int

	// summaries is what serving reads on every request: the live accuracy per version.
	summaries  atomic.Pointer[map[vkey]summary]
	summaryGen uint64 // the loop's; the last generation given out
	// shadowOff holds the models whose policy turns shadow scoring off.
	shadowOff atomic.Pointer[map[string]bool]

	obs       chan observation
	valuePool sync.Pool // *[]ml.Value
	kick      chan struct{}

	// The loop's own state (one goroutine, or a test calling tick).
	states   map[string]*modelState
	policies map[string]parsedPolicy
	hooks    *webhooks

	cancel context.CancelFunc
	done   sync.WaitGroup
}

type vkey struct {
	model   string
	version int
}

// versionState is one version's windows.
type versionState struct {
	live  *monitor.LiveWindow
	drift *monitor.DriftWindow // nil until the profile is read
	// driftErr says why drift is unavailable; the profile is tried again after retryAt.
	driftErr string
	retryAt  time.Time
	last     time.Time // newest outcome or record
}

type pairKey struct {
	model                string
	champion, challenger int
}

// pairState holds the outcomes of the requests that both the champion and the challenger
// scored: each side's live window over the same predictions.
type pairState struct {
	champion, challenger *monitor.LiveWindow
	last                 time.Time
}

type pendingOutcome struct {
	o      Outcome
	shadow bool
}

type observation struct {
	model   string
	version int
	values  *[]ml.Value
	p       float64
	at      time.Time
}

type summary struct {
	accuracy float64
	labels   int
	ok       bool
	gen      uint64
}

// New returns an Evaluator; Start runs its loop.
func New(cfg Config) (*Evaluator, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	e := &Evaluator{
		cfg:       cfg,
		log:       cfg.Logger,
		m:         m,
		versions:  map[vkey]*versionState{},
		pairs:     map[pairKey]*pairState{},
		pending:   map[string]pendingOutcome{},
		shadowing: map[string]int{},
		obs:       make(chan observation, cfg.ObserveQueue),
		kick:      make(chan struct{}, 1),
		states:    map[string]*modelState{},
		policies:  map[string]parsedPolicy{},
	}
	e.valuePool.New = func() any { s := make([]ml.Value, 0, 16); return &s }
	e.summaries.Store(&map[vkey]summary{})
	e.shadowOff.Store(&map[string]bool{})
	e.hooks = newWebhooks(cfg.Webhook, e.log, e.webhookFailed)
	return e, nil
}

// Start rebuilds the live windows from the recent outcomes (Config.Recent), then runs the
// loop and the drift drainer until Stop.
func (e *Evaluator) Start(ctx context.Context) error {
	if _, _, err := e.readModels(ctx); err != nil { // which models shadow: the outcomes pair up
		return fmt.Errorf("evaluator: start: %w", err)
	}
	if e.cfg.Recent != nil {
		since := e.cfg.Now().Add(-e.cfg.Live.Period)
		outs, err := e.cfg.Recent(ctx, since)
		if err != nil {
			return fmt.Errorf("evaluator: read recent outcomes: %w", err)
		}
		e.Outcomes(ctx, outs)
		e.log.Info("live windows rebuilt from the lake", "outcomes", len(outs), "since", since)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel = cancel
	e.hooks.start(runCtx)
	e.done.Add(2)
	go func() {
		defer e.done.Done()
		e.drain(runCtx)
	}()
	go func() {
		defer e.done.Done()
		e.run(runCtx)
	}()
	return nil
}

// Stop ends the loop and waits for it, and for the webhooks in flight until ctx ends.
func (e *Evaluator) Stop(ctx context.Context) error {
	if e.cancel == nil {
		return nil
	}
	e.cancel()
	done := make(chan struct{})
	go func() {
		e.done.Wait()
		e.hooks.wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("evaluator: stop: %w", ctx.Err())
	}
}

// run evaluates every Interval, and at most every MinGap when kicked by new outcomes.
func (e *Evaluator) run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.kick:
			if wait := e.cfg.MinGap - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		last = time.Now()
		e.tick(ctx)
	}
}

// Observe counts one scored record in the drift window of its version: serving calls it
// after the record is stored. It copies values and returns at once; when the queue is full
// the record is dropped and counted.
func (e *Evaluator) Observe(model string, version int, values []ml.Value, probability float64, at time.Time) {
	buf := e.valuePool.Get().(*[]ml.Value)
	*buf = append((*buf)[:0], values...)
	select {
	case e.obs <- observation{model: model, version: version, values: buf, p: probability, at: at}:
	default:
		e.valuePool.Put(buf)
		e.m.dropped.Inc()
	}
}

// drain moves queued records into the drift windows until ctx ends.
func (e *Evaluator) drain(ctx context.Context) {
	batch := make([]observation, 0, 256)
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-e.obs:
			batch = append(batch[:0], o)
		}
	more:
		for len(batch) < cap(batch) {
			select {
			case o := <-e.obs:
				batch = append(batch, o)
			default:
				break more
			}
		}
		e.addRecords(ctx, batch)
		for i := range batch {
			e.valuePool.Put(batch[i].values)
			batch[i] = observation{}
		}
	}
}

// addRecords adds records to their versions' drift windows, reading a version's training
// profile the first time (outside the lock).
func (e *Evaluator) addRecords(ctx context.Context, batch []observation) {
	for i := range batch {
		o := &batch[i]
		k := vkey{o.model, o.version}
		e.mu.Lock()
		st := e.state(k)
		if st.drift == nil && !o.at.Before(st.retryAt) {
			e.mu.Unlock()
			e.loadDrift(ctx, k, o.at)
			e.mu.Lock()
			st = e.state(k) // refresh may have dropped it while unlocked
		}
		if o.at.After(st.last) {
			st.last = o.at
		}
		if st.drift != nil {
			if err := st.drift.Add(o.at, *o.values, o.p); err != nil {
				e.m.invalid.WithLabelValues("record").Inc()
				e.log.Debug("record not counted for drift", "model", o.model, "version", o.version, "err", err)
			}
		}
		e.mu.Unlock()
	}
}

// loadDrift reads a version's training profile and gives it a drift window; when there is
// none, it records why and tries again a minute later.
func (e *Evaluator) loadDrift(ctx context.Context, k vkey, now time.Time) {
	p, err := e.cfg.Models.Profile(ctx, k.model, k.version)
	var w *monitor.DriftWindow
	if err == nil {
		w, err = monitor.NewDriftWindow(p, e.cfg.Drift)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.state(k)
	if st.drift != nil {
		return
	}
	if err != nil {
		st.driftErr = pulse.ErrorMessage(err)
		if pulse.ErrorCode(err) == pulse.EINTERNAL {
			e.log.Warn("training profile unreadable; drift unavailable for now", "model", k.model, "version", k.version, "err", err)
		}
		st.retryAt = now.Add(time.Minute)
		return
	}
	st.drift, st.driftErr = w, ""
}

// state returns k's windows, creating them. e.mu must be held.
func (e *Evaluator) state(k vkey) *versionState {
	st, ok := e.versions[k]
	if !ok {
		lw, _ := monitor.NewLiveWindow(e.cfg.Live) // checked by setDefaults
		st = &versionState{live: lw}
		e.versions[k] = st
	}
	return st
}

// Outcomes adds labelled predictions to the live windows of their versions, pairs shadow
// outcomes with the champion's of the same request, and asks the loop to evaluate soon. It
// does not block on I/O. Invalid outcomes are counted and skipped.
func (e *Evaluator) Outcomes(ctx context.Context, outs []Outcome) {
	if len(outs) == 0 {
		return
	}
	e.mu.Lock()
	for i := range outs {
		e.addOutcome(&outs[i])
	}
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *Evaluator) addOutcome(o *Outcome) {
	if o.Model == "" || o.Version < 1 {
		e.m.invalid.WithLabelValues("outcome").Inc()
		return
	}
	mo := monitor.Outcome{Probability: o.Probability, Predicted: o.Predicted, Label: o.Label, PredictedAt: o.ScoredAt, ObservedAt: o.ObservedAt}
	st := e.state(vkey{o.Model, o.Version})
	if err := st.live.Add(mo); err != nil {
		e.m.invalid.WithLabelValues("outcome").Inc()
		e.log.Debug("outcome not counted", "model", o.Model, "version", o.Version, "prediction_id", o.PredictionID, "err", err)
		return
	}
	if o.ObservedAt.After(st.last) {
		st.last = o.ObservedAt
	}
	e.m.outcomes.Inc()
	shadow := o.Shadow || o.Alias == pulse.AliasChallenger
	if o.PredictionID == "" || (!shadow && (o.Alias != pulse.AliasChampion || e.shadowing[o.Model] == 0)) {
		return
	}
	other, ok := e.pending[o.PredictionID]
	if !ok || other.shadow == shadow || other.o.Model != o.Model {
		e.pend(o, shadow)
		return
	}
	delete(e.pending, o.PredictionID)
	champ, chal := &other.o, o
	if !shadow {
		champ, chal = o, &other.o
	}
	pk := pairKey{o.Model, champ.Version, chal.Version}
	ps, ok := e.pairs[pk]
	if !ok {
		a, _ := monitor.NewLiveWindow(e.cfg.Live)
		b, _ := monitor.NewLiveWindow(e.cfg.Live)
		ps = &pairState{champion: a, challenger: b}
		e.pairs[pk] = ps
	}
	// Both halves were valid outcomes of their own windows.
	_ = ps.champion.Add(monitor.Outcome{Probability: champ.Probability, Predicted: champ.Predicted, Label: champ.Label, PredictedAt: champ.ScoredAt, ObservedAt: champ.ObservedAt})
	_ = ps.challenger.Add(monitor.Outcome{Probability: chal.Probability, Predicted: chal.Predicted, Label: chal.Label, PredictedAt: chal.ScoredAt, ObservedAt: chal.ObservedAt})
	if o.ObservedAt.After(ps.last) {
		ps.last = o.ObservedAt
	}
	e.m.paired.Inc()
}

// pend keeps an outcome until the other half of its pair arrives, forgetting the oldest
// beyond MaxPending.
func (e *Evaluator) pend(o *Outcome, shadow bool) {
	if _, ok := e.pending[o.PredictionID]; !ok {
		e.queue = append(e.queue, o.PredictionID)
	}
	e.pending[o.PredictionID] = pendingOutcome{o: *o, shadow: shadow}
	for len(e.queue) > e.cfg.MaxPending {
		delete(e.pending, e.queue[0])
		e.queue[0] = ""
		e.queue = e.queue[1:]
	}
}

// LiveAccuracy returns a version's live accuracy and the number of labels it is over, ok
// when they are enough to be shown next to the holdout metrics (the policy's
// live_metric_min_labels, else Config.LiveMinLabels), and a generation that changes whenever
// any of these do. Serving calls it on every request: it is a map lookup.
func (e *Evaluator) LiveAccuracy(model string, version int) (accuracy float64, labels int, ok bool, gen uint64) {
	s, found := (*e.summaries.Load())[vkey{model, version}]
	if !found {
		return 0, 0, false, 0
	}
	return s.accuracy, s.labels, s.ok, s.gen
}

// ShadowOn reports whether a challenger of model scores in shadow: unless the model's
// policy says "shadow": false. Serving asks before queueing a shadow request.
func (e *Evaluator) ShadowOn(model string) bool {
	return !(*e.shadowOff.Load())[model]
}

// errNoJobs is the error of a retrain decision on a server without a job queue.
var errNoJobs = errors.New("this server has no job queue: retraining is not started")

// WebhookConfig configures the POSTs of decisions to policies' webhooks.
type WebhookConfig struct {
	// Client sends them (default: an http.Client without redirects to follow).
	Client *http.Client
	// Timeout bounds one attempt (default 5 s); Attempts is how many are made (default 3),
	// Backoff the delay before the second, doubled before each next one (default 1 s).
	Timeout  time.Duration
	Attempts int
	Backoff  time.Duration
	// Queue bounds the POSTs waiting (default 1000); beyond it a POST is not made and the
	// failure is recorded.
	Queue int
}

func (c *WebhookConfig) setDefaults() error {
	if c.Client == nil {
		c.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Attempts == 0 {
		c.Attempts = 3
	}
	if c.Backoff == 0 {
		c.Backoff = time.Second
	}
	if c.Queue == 0 {
		c.Queue = 1000
	}
	if c.Timeout < 0 || c.Attempts < 1 || c.Backoff < 0 || c.Queue < 1 {
		return pulse.Errorf(pulse.EINVALID, "evaluator: config: webhook timeout, attempts, backoff and queue must be positive")
	}
	return nil
}

// LakeOutcomes converts rows of the lake's outcomes table (what the feedback join stores and
// hands its listener) into Outcomes.
func LakeOutcomes(outs []lake.Outcome) []Outcome {
	res := make([]Outcome, len(outs))
	for i := range outs {
		o := &outs[i]
		res[i] = Outcome{
			PredictionID: o.PredictionID, Model: o.Model, Version: o.Version, Alias: o.Alias, Shadow: o.Shadow,
			Probability: o.Probability, Predicted: o.Predicted, Threshold: o.Threshold, Label: o.Label,
			ScoredAt: o.ScoredAt, ObservedAt: o.ObservedAt,
		}
	}
	return res
}

// OnLakeOutcomes adds the outcomes the feedback join stored: the listener to give it
// (feedback.Config.OnOutcome).
func (e *Evaluator) OnLakeOutcomes(outs []lake.Outcome) {
	e.Outcomes(context.Background(), LakeOutcomes(outs))
}
