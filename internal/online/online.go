// Package online trains ftrl models dynamically: a follower consumes a dataset's ingest
// stream and lets every labelled record update the model test-then-train, publishes the
// updated weights to serving as the model's live model every second, and registers snapshots
// as new versions with the stream offsets they include.
//
// Exactly once with respect to the persisted state: a follower starts from the newest
// snapshot (a version with stream lineage) and consumes the ingest topic from that snapshot's
// offsets with kgo.ConsumePartitions, not from consumer-group commits. Records after the
// snapshot are learnt again after a crash (their effect died with the process), none twice.
// Within a partition the order is Kafka's, so replay is bit-exact; across partitions the
// interleaving is not fixed, so producers should key ingest events by dataset (one partition
// per dataset) for a restarted follower to reach the very same weights.
//
// The partitions of the topic are listed when a follower starts; partitions added later are
// followed after the next restart.
//
// Only pulse serve runs followers, one per model; several servers following the same model
// would each register snapshots, and would need a leader (not done yet).
//
// On the hot path the follower decodes only the fields it needs (type, data.dataset,
// data.record, data.label) with encoding/json and does not validate the event against the
// ingest.record JSON Schema: the model's input rules (features.Parse) check the values.
package online

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cloudmedical/pulse/internal/events"
	"github.com/cloudmedical/pulse/internal/features"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/ml/ftrl"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
)

// Spec says which model follows which dataset; a JSON array of them is the file given to
// `pulse serve --online`.
type Spec struct {
	Model   string `json:"model"`
	Dataset string `json:"dataset"`
	// BaseVersion is the batch-trained ftrl version to start from when there is no snapshot
	// of it yet; 0 means the champion.
	BaseVersion int `json:"base_version"`
	// SnapshotEveryRecords and SnapshotEverySeconds: a snapshot is registered when either many
	// records were learnt since the last one (default 10000) or that long passed with records
	// learnt (default 60), and on Stop.
	SnapshotEveryRecords int64   `json:"snapshot_every_records"`
	SnapshotEverySeconds float64 `json:"snapshot_every_seconds"`
	// PromoteAlias, when set, is moved to every snapshot (e.g. "champion").
	PromoteAlias string `json:"promote_alias"`
	// Window is the number of last records the prequential window metrics cover (default 1000).
	Window int `json:"window"`
}

// withDefaults returns s with defaults filled in, or an EINVALID error naming the field.
func (s Spec) withDefaults() (Spec, error) {
	if !pulse.ValidName(s.Model) {
		return s, pulse.FieldErrorf(pulse.EINVALID, "model", "online: model %q: want 1-64 characters of a-z, 0-9, '-', '_', '.'", s.Model)
	}
	if !pulse.ValidName(s.Dataset) {
		return s, pulse.FieldErrorf(pulse.EINVALID, "dataset", "online: model %q: dataset %q: want a dataset name", s.Model, s.Dataset)
	}
	if s.BaseVersion < 0 || s.SnapshotEveryRecords < 0 || s.SnapshotEverySeconds < 0 || s.Window < 0 {
		return s, pulse.Errorf(pulse.EINVALID, "online: model %q: base_version, snapshot_every_records, snapshot_every_seconds and window must not be negative", s.Model)
	}
	if s.PromoteAlias != "" && (!pulse.ValidName(s.PromoteAlias) || s.PromoteAlias == pulse.AliasLive) {
		return s, pulse.FieldErrorf(pulse.EINVALID, "promote_alias", "online: model %q: promote_alias %q: want an alias name other than %q", s.Model, s.PromoteAlias, pulse.AliasLive)
	}
	if s.SnapshotEveryRecords == 0 {
		s.SnapshotEveryRecords = 10000
	}
	if s.SnapshotEverySeconds == 0 {
		s.SnapshotEverySeconds = 60
	}
	if s.Window == 0 {
		s.Window = 1000
	}
	return s, nil
}

// LoadSpecs reads a JSON array of Specs from a file and checks them: one follower per model.
func LoadSpecs(path string) ([]Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("online: %w", err)
	}
	var specs []Spec
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&specs); err != nil {
		return nil, pulse.Errorf(pulse.EINVALID, "online: %s: want a JSON array of {\"model\", \"dataset\", ...}: %v", path, err)
	}
	seen := map[string]bool{}
	for i, s := range specs {
		if _, err := s.withDefaults(); err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", path, i, err)
		}
		if seen[s.Model] {
			return nil, pulse.Errorf(pulse.EINVALID, "online: %s[%d]: model %q is followed twice, want one follower per model", path, i, s.Model)
		}
		seen[s.Model] = true
	}
	return specs, nil
}

// Registry is what a follower needs from the model registry; *registry.Service has it.
type Registry interface {
	Versions(ctx context.Context, model string) ([]*pulse.ModelVersion, error)
	Load(ctx context.Context, model string, version int) (*registry.Loaded, error)
	Model(ctx context.Context, name string) (*pulse.Model, error)
	SetAlias(ctx context.Context, model, alias string, version int) (int, error)
	SetLive(model string, m *ml.Model, v *pulse.ModelVersion)
	RegisterStreamVersion(ctx context.Context, m *ml.Model, base *pulse.ModelVersion, stream *pulse.StreamLineage) (*pulse.ModelVersion, error)
}

// Config configures a Manager.
type Config struct {
	Specs    []Spec
	Registry Registry
	// ClientOpts connect to Kafka (kafka.Conn.Opts); the followers add their consume options.
	ClientOpts []kgo.Opt
	// Topic is the full name of the ingest topic, e.g. "pulse.ingest".
	Topic string
	// PublishInterval is how often the live model is published at most (default 1s).
	PublishInterval time.Duration
	// BatchRecords is the most records taken per poll (default 10000); snapshots are taken
	// between batches.
	BatchRecords int
	Logger       *slog.Logger
	// Registerer receives the pulse_online_* metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Manager runs one follower per Spec.
type Manager struct {
	cfg       Config
	log       *slog.Logger
	metrics   *metrics
	followers map[string]*follower
}

// Start checks the config, resolves every follower's starting state (its newest snapshot, or
// its base version) and starts following. It fails if a model does not exist or is not ftrl.
// The followers run until Stop, or until ctx ends (then without a final snapshot).
func Start(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Registry == nil || cfg.Topic == "" {
		return nil, fmt.Errorf("online: Registry and Topic are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PublishInterval <= 0 {
		cfg.PublishInterval = time.Second
	}
	if cfg.BatchRecords <= 0 {
		cfg.BatchRecords = 10000
	}
	met, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, metrics: met, followers: map[string]*follower{}}
	for _, s := range cfg.Specs {
		s, err := s.withDefaults()
		if err != nil {
			m.abort()
			return nil, err
		}
		if m.followers[s.Model] != nil {
			m.abort()
			return nil, pulse.Errorf(pulse.EINVALID, "online: model %q is followed twice, want one follower per model", s.Model)
		}
		f := newFollower(m, s)
		err = f.prepare(ctx)
		if err != nil && !waitable(err) {
			m.abort()
			return nil, err
		}
		m.followers[s.Model] = f
		if err != nil {
			f.setError(err)
		}
		f.start(ctx, err)
	}
	return m, nil
}

// abort ends the followers started so far without snapshots.
func (m *Manager) abort() {
	for _, f := range m.followers {
		f.halt()
	}
}

// Status returns the state of the follower of model.
func (m *Manager) Status(model string) (Status, bool) {
	f, ok := m.followers[model]
	if !ok {
		return Status{}, false
	}
	return f.statusNow(), true
}

// Stop stops every follower after the batch in flight and registers a final snapshot of each
// that learnt records since its last one.
func (m *Manager) Stop(ctx context.Context) error {
	var errs []error
	for _, f := range m.followers {
		if err := f.stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Status is what GET /v1/models/{model}/online answers.
type Status struct {
	Model   string `json:"model"`
	Dataset string `json:"dataset"`
	Topic   string `json:"topic"`
	// BaseVersion is the batch-trained version the stream started from; ResumedFrom the
	// snapshot this process started from (0 if it started from the base).
	BaseVersion int `json:"base_version"`
	ResumedFrom int `json:"resumed_from"`
	// Records counts the records learnt since the base version, snapshots included.
	Records int64 `json:"records"`
	// Skipped counts the records passed over, by reason: other_dataset, other_type,
	// unlabelled and malformed (not JSON, or values or label the model cannot take).
	Skipped Skipped `json:"skipped"`
	// Offsets are the next offsets to consume, by partition.
	Offsets map[string]int64 `json:"offsets"`
	// Prequential metrics since this process started following.
	Prequential         pulse.Prequential `json:"prequential"`
	LastSnapshotVersion int               `json:"last_snapshot_version"`
	LastSnapshotAt      *time.Time        `json:"last_snapshot_at,omitempty"`
	LivePublishedAt     *time.Time        `json:"live_published_at,omitempty"`
	Running             bool              `json:"running"`
	// Error is the last snapshot or consume error, if any.
	Error string `json:"error,omitempty"`
}

// Skipped counts the records a follower did not learn from.
type Skipped struct {
	OtherDataset int64 `json:"other_dataset"`
	OtherType    int64 `json:"other_type"`
	Unlabelled   int64 `json:"unlabelled"`
	Malformed    int64 `json:"malformed"`
}

// follower learns one model from the ingest stream. Its learning state is owned by the run
// goroutine; status is a copy under mu.
type follower struct {
	m    *Manager
	spec Spec
	log  *slog.Logger

	base    *pulse.ModelVersion // the batch-trained version
	last    *pulse.ModelVersion // the last snapshot, or base
	model   *ml.Model           // base's model: the encoding
	learner *ftrl.Learner
	target  ml.Target
	inputs  []pulse.Column
	values  []ml.Value
	x       []float64
	offsets map[int32]int64
	records int64 // learnt since base
	since   int64 // learnt since the last snapshot
	snapAt  time.Time
	pubAt   time.Time
	dirty   bool // learnt since the last publication
	preq    *prequential
	skipped Skipped
	ev      ingestEvent

	client *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	status Status
	// applied is closed and replaced whenever records are applied (for tests and latency
	// benchmarks that wait for a record to be learnt).
	applied chan struct{}
}

// ingestEvent is the part of an ingest.record event the follower decodes.
type ingestEvent struct {
	Type string `json:"type"`
	Data struct {
		Dataset string                     `json:"dataset"`
		Record  map[string]json.RawMessage `json:"record"`
		Label   json.RawMessage            `json:"label"`
	} `json:"data"`
}

func newFollower(m *Manager, s Spec) *follower {
	f := &follower{m: m, spec: s, log: m.log.With("model", s.Model, "dataset", s.Dataset), offsets: map[int32]int64{},
		done: make(chan struct{}), applied: make(chan struct{})}
	f.status = Status{Model: s.Model, Dataset: s.Dataset, Topic: m.cfg.Topic}
	return f
}

// waitable reports whether prepare failed because the model (or its champion) does not exist
// yet: the follower then waits for it to be trained.
func waitable(err error) bool { return pulse.ErrorCode(err) == pulse.ENOTFOUND }

// prepare resolves the starting state (the newest snapshot, else the base version), restores
// the learner and connects to the ingest topic from the snapshot's offsets.
func (f *follower) prepare(ctx context.Context) error {
	s, m := f.spec, f.m
	reg := m.cfg.Registry
	vs, err := reg.Versions(ctx, s.Model)
	if err != nil {
		return fmt.Errorf("online: model %q: %w", s.Model, err)
	}
	// The newest snapshot of this stream (of the configured base, if one is configured).
	var snap *pulse.ModelVersion
	for i := len(vs) - 1; i >= 0; i-- {
		st := vs[i].Lineage.Stream
		if st != nil && st.Topic == m.cfg.Topic && vs[i].Lineage.DatasetName != "" &&
			(s.BaseVersion == 0 || st.BaseVersion == s.BaseVersion) {
			snap = vs[i]
			break
		}
	}
	baseVersion := s.BaseVersion
	if snap != nil {
		baseVersion = snap.Lineage.Stream.BaseVersion
	} else if baseVersion == 0 {
		md, err := reg.Model(ctx, s.Model)
		if err != nil {
			return fmt.Errorf("online: model %q: %w", s.Model, err)
		}
		v, ok := md.Aliases[pulse.AliasChampion]
		if !ok {
			return pulse.Errorf(pulse.ENOTFOUND, "online: model %q has no champion yet; train a version or set base_version", s.Model)
		}
		baseVersion = v
	}
	base, err := reg.Load(ctx, s.Model, baseVersion)
	if err != nil {
		return fmt.Errorf("online: model %q version %d: %w", s.Model, baseVersion, err)
	}
	f.base = base.Version
	f.last = base.Version
	start := base
	if snap != nil {
		if start, err = reg.Load(ctx, s.Model, snap.Version); err != nil {
			return fmt.Errorf("online: model %q snapshot version %d: %w", s.Model, snap.Version, err)
		}
		f.last = snap
		f.records = snap.Lineage.Stream.Records
		for p, o := range snap.Lineage.Stream.Offsets {
			pi, err := strconv.ParseInt(p, 10, 32)
			if err != nil {
				return pulse.Errorf(pulse.EINTERNAL, "online: model %q version %d: stream offsets: bad partition %q", s.Model, snap.Version, p)
			}
			f.offsets[int32(pi)] = o
		}
	}
	f.snapAt = time.Now() // the timed snapshot counts from the start of this process
	f.model = start.Model
	f.learner = start.Model.Learner()
	if f.learner == nil {
		return pulse.Errorf(pulse.EUNPROCESSABLE, "online: model %q version %d is %s; only ftrl models learn online (train a version with algorithm ftrl)",
			s.Model, start.Version.Version, start.Model.Algorithm())
	}
	if f.target, err = ml.ParseTarget(start.Model.Target()); err != nil {
		return err
	}
	f.inputs = start.Model.Inputs()
	f.values = make([]ml.Value, len(f.inputs))
	f.x = make([]float64, start.Model.Width())
	f.preq = newPrequential(s.Window, start.Model.Threshold())
	f.mu.Lock()
	f.status.BaseVersion = f.base.Version
	f.status.Error = ""
	if snap != nil {
		f.status.ResumedFrom = snap.Version
		f.status.LastSnapshotVersion = snap.Version
		at := snap.CreatedAt
		f.status.LastSnapshotAt = &at
	}
	f.mu.Unlock()

	// The partitions of the topic, each from the snapshot's offset or from the start.
	if f.client, err = kgo.NewClient(m.cfg.ClientOpts...); err != nil {
		return fmt.Errorf("online: kafka client: %w", err)
	}
	parts, err := kadm.NewClient(f.client).ListStartOffsets(ctx, m.cfg.Topic)
	if err == nil {
		err = parts.Error()
	}
	if err != nil {
		f.client.Close()
		return fmt.Errorf("online: list partitions of %s: %w", m.cfg.Topic, err)
	}
	consume := map[int32]kgo.Offset{}
	parts.Each(func(o kadm.ListedOffset) {
		if next, ok := f.offsets[o.Partition]; ok {
			consume[o.Partition] = kgo.NewOffset().At(next)
		} else {
			consume[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	f.client.Close()
	opts := append(append([]kgo.Opt(nil), m.cfg.ClientOpts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{m.cfg.Topic: consume}))
	if f.client, err = kgo.NewClient(opts...); err != nil {
		return fmt.Errorf("online: kafka client: %w", err)
	}
	f.publish(time.Now()) // serving sees the starting state as live at once
	f.log.Info("following the ingest stream", "topic", m.cfg.Topic, "base_version", f.base.Version,
		"resumed_from", f.status.ResumedFrom, "records", f.records, "partitions", len(consume))
	return nil
}

// start runs the follower. When prepare failed with a waitable error, it first retries
// prepare every second until the model exists.
func (f *follower) start(ctx context.Context, prepErr error) {
	ctx, f.cancel = context.WithCancel(ctx)
	go func() {
		defer close(f.done)
		if prepErr != nil && !f.await(ctx, prepErr) {
			return
		}
		f.run(ctx)
	}()
}

// await retries prepare until it succeeds (true), fails otherwise or ctx ends (false).
func (f *follower) await(ctx context.Context, err error) bool {
	f.log.Info("waiting for the model to be trained before following", "reason", err)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		f.setError(err)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		if err = f.prepare(ctx); err == nil {
			return true
		}
		if !waitable(err) {
			f.log.Error("cannot follow the ingest stream", "err", err)
			f.setError(err)
			return false
		}
	}
}

// halt ends the run goroutine without a snapshot (as a crash would) and closes the client.
func (f *follower) halt() {
	if f.cancel != nil {
		f.cancel()
		<-f.done
	}
	if f.client != nil {
		f.client.Close()
	}
	f.mu.Lock()
	f.status.Running = false
	f.mu.Unlock()
}

// stop halts the follower and registers a final snapshot if it learnt since the last one.
func (f *follower) stop(ctx context.Context) error {
	f.halt()
	if f.since == 0 {
		return nil
	}
	return f.snapshot(ctx, time.Now())
}

// pollWait bounds one poll, so that the live model and timed snapshots happen while the
// stream is idle.
const pollWait = 250 * time.Millisecond

func (f *follower) run(ctx context.Context) {
	f.mu.Lock()
	f.status.Running = true
	f.mu.Unlock()
	every := time.Duration(f.spec.SnapshotEverySeconds * float64(time.Second))
	for {
		pctx, cancel := context.WithTimeout(ctx, pollWait)
		fetches := f.client.PollRecords(pctx, f.m.cfg.BatchRecords)
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				f.log.Warn("fetch failed; retrying", "topic", topic, "partition", p, "err", err)
				f.setError(err)
			}
		})
		n := 0
		for it := fetches.RecordIter(); !it.Done(); {
			f.apply(it.Next())
			n++
		}
		now := time.Now()
		if n > 0 {
			f.notify()
		}
		if f.dirty && now.Sub(f.pubAt) >= f.m.cfg.PublishInterval {
			f.publish(now)
		}
		if f.since >= f.spec.SnapshotEveryRecords || (f.since > 0 && now.Sub(f.snapAt) >= every) {
			if err := f.snapshot(ctx, now); err != nil && ctx.Err() == nil {
				f.log.Error("snapshot failed; retrying later", "err", err)
				f.snapAt = now // not at once again
			}
		}
	}
}

// apply learns from one record if it is a labelled ingest record of the followed dataset.
func (f *follower) apply(r *kgo.Record) {
	f.offsets[r.Partition] = r.Offset + 1
	mt := f.m.metrics
	ev := &f.ev
	ev.Type = ""
	ev.Data.Dataset = ""
	ev.Data.Label = nil
	clear(ev.Data.Record)
	if err := json.Unmarshal(r.Value, ev); err != nil {
		f.malformed(r, fmt.Errorf("not an ingest event: %w", err))
		return
	}
	if ev.Type != events.TypeIngestRecord {
		f.skipped.OtherType++
		return
	}
	if ev.Data.Dataset != f.spec.Dataset {
		f.skipped.OtherDataset++
		return
	}
	if len(ev.Data.Label) == 0 || string(ev.Data.Label) == "null" {
		f.skipped.Unlabelled++
		mt.skipped.WithLabelValues(f.spec.Model, "unlabelled").Inc()
		return
	}
	y, err := f.label(ev.Data.Label)
	if err != nil {
		f.malformed(r, err)
		return
	}
	if len(ev.Data.Record) == 0 {
		f.malformed(r, fmt.Errorf("data.record is missing or empty"))
		return
	}
	if _, err := features.Parse(f.inputs, ev.Data.Record, f.values, "", false); err != nil {
		f.malformed(r, err)
		return
	}
	if _, err := f.model.Encode(f.values, f.x); err != nil {
		f.malformed(r, err)
		return
	}
	p := f.learner.Update(f.x, float64(y))
	f.preq.add(p, y)
	f.records++
	f.since++
	f.dirty = true
}

// label decodes a JSON label and applies the target.
func (f *follower) label(raw json.RawMessage) (int, error) {
	var v any
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("label: %w", err)
		}
		v = s
	case 't':
		v = true
	case 'f':
		v = false
	case '{', '[':
		return 0, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "label", "label: got %s, want a number, string or boolean", raw)
	default:
		n, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return 0, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "label", "label: got %s, want a number", raw)
		}
		v = n
	}
	return f.target.Label(v)
}

// malformed counts a record that cannot be learnt, logging the first ones and then every
// thousandth.
func (f *follower) malformed(r *kgo.Record, err error) {
	f.skipped.Malformed++
	f.m.metrics.skipped.WithLabelValues(f.spec.Model, "malformed").Inc()
	if n := f.skipped.Malformed; n <= 10 || n%1000 == 0 {
		f.log.Warn("ingest record not learnt", "partition", r.Partition, "offset", r.Offset, "err", err, "malformed_so_far", n)
	}
}

// frozen returns the current state as a model, sharing nothing with the learner.
func (f *follower) frozen() (*ml.Model, error) {
	return f.model.WithLearner(f.learner)
}

// publish hands serving a frozen copy of the current state as the live model and refreshes
// the status and gauges.
func (f *follower) publish(now time.Time) {
	m, err := f.frozen()
	if err != nil { // not expected: the learner is the model's own
		f.log.Error("live model not published", "err", err)
		f.setError(err)
		return
	}
	f.m.cfg.Registry.SetLive(f.spec.Model, m, f.last)
	f.pubAt = now
	f.dirty = false
	f.refresh(now, true)
}

// refresh copies the learning state to the status and the gauges.
func (f *follower) refresh(now time.Time, published bool) {
	pq := f.preq.metrics()
	mt := f.m.metrics
	mt.records.WithLabelValues(f.spec.Model).Set(float64(f.records))
	mt.accuracy.WithLabelValues(f.spec.Model, "window").Set(pq.Accuracy)
	mt.accuracy.WithLabelValues(f.spec.Model, "cumulative").Set(pq.CumulativeAccuracy)
	mt.auc.WithLabelValues(f.spec.Model, "window").Set(pq.ROCAUC)
	mt.auc.WithLabelValues(f.spec.Model, "cumulative").Set(pq.CumulativeROCAUC)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status.Records = f.records
	f.status.Skipped = f.skipped
	f.status.Offsets = f.offsetsJSON()
	f.status.Prequential = pq
	if published {
		t := now.UTC()
		f.status.LivePublishedAt = &t
	}
}

func (f *follower) offsetsJSON() map[string]int64 {
	o := make(map[string]int64, len(f.offsets))
	for p, n := range f.offsets {
		o[strconv.Itoa(int(p))] = n
	}
	return o
}

// snapshot registers the current state as a new version with the offsets it includes, and
// moves PromoteAlias to it.
func (f *follower) snapshot(ctx context.Context, now time.Time) error {
	st := &pulse.StreamLineage{
		Topic:       f.m.cfg.Topic,
		Offsets:     f.offsetsJSON(),
		Records:     f.records,
		BaseVersion: f.base.Version,
		Prequential: f.preq.metrics(),
	}
	m, err := f.frozen()
	if err != nil {
		return fmt.Errorf("online: snapshot of %s: %w", f.spec.Model, err)
	}
	v, err := f.m.cfg.Registry.RegisterStreamVersion(ctx, m, f.base, st)
	if err != nil {
		f.setError(err)
		return fmt.Errorf("online: snapshot of %s: %w", f.spec.Model, err)
	}
	f.last = v
	f.since = 0
	f.snapAt = now
	f.m.metrics.snapshot.WithLabelValues(f.spec.Model).Set(float64(v.Version))
	if f.spec.PromoteAlias != "" {
		if _, err := f.m.cfg.Registry.SetAlias(ctx, f.spec.Model, f.spec.PromoteAlias, v.Version); err != nil {
			f.log.Error("snapshot registered but the alias not moved", "version", v.Version, "alias", f.spec.PromoteAlias, "err", err)
		}
	}
	f.mu.Lock()
	f.status.LastSnapshotVersion = v.Version
	t := v.CreatedAt
	f.status.LastSnapshotAt = &t
	f.status.Error = ""
	f.mu.Unlock()
	f.publish(now) // the live model now names the snapshot
	return nil
}

func (f *follower) setError(err error) {
	f.mu.Lock()
	f.status.Error = err.Error()
	f.mu.Unlock()
}

// notify wakes whoever waits for records to be applied.
func (f *follower) notify() {
	f.mu.Lock()
	close(f.applied)
	f.applied = make(chan struct{})
	f.status.Records = f.records
	f.status.Skipped = f.skipped
	f.status.Offsets = f.offsetsJSON()
	f.mu.Unlock()
}

func (f *follower) statusNow() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.status
	s.Offsets = make(map[string]int64, len(f.status.Offsets))
	for k, v := range f.status.Offsets {
		s.Offsets[k] = v
	}
	return s
}

// metrics are the pulse_online_* gauges.
type metrics struct {
	records  *prometheus.GaugeVec
	accuracy *prometheus.GaugeVec
	auc      *prometheus.GaugeVec
	snapshot *prometheus.GaugeVec
	skipped  *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		records: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pulse_online_records", Help: "Records learnt online since the base version, by model.",
		}, []string{"model"}),
		accuracy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pulse_online_accuracy", Help: "Prequential (test-then-train) accuracy, over the window or cumulative since start.",
		}, []string{"model", "scope"}),
		auc: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pulse_online_roc_auc", Help: "Prequential (test-then-train) ROC AUC, over the window or cumulative since start.",
		}, []string{"model", "scope"}),
		snapshot: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pulse_online_last_snapshot_version", Help: "Version of the last snapshot registered by the follower.",
		}, []string{"model"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_online_skipped_total", Help: "Records of the followed dataset not learnt, by reason (unlabelled, malformed).",
		}, []string{"model", "reason"}),
	}
	if r != nil {
		for _, c := range []prometheus.Collector{m.records, m.accuracy, m.auc, m.snapshot, m.skipped} {
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("online: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
