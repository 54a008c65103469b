// Package serving scores JSON records with registered model versions: it resolves the version
// (by alias or number), turns each JSON object into the model's inputs under documented rules,
// answers with the same JSON augmented with the prediction, and keeps every scored record in
// the data lake before the answer is given.
package serving

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudmedical/pulse/internal/jsonscan"
	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
)

// Sink keeps scored records durably; AppendPredictions returns once they survive a crash.
type Sink interface {
	AppendPredictions(ctx context.Context, recs ...lake.Prediction) error
}

// Models is what the scorer needs from the registry.
type Models interface {
	Resolve(model, alias string) (int, bool)
	Load(ctx context.Context, model string, version int) (*registry.Loaded, error)
	Model(ctx context.Context, name string) (*pulse.Model, error)
}

// Config configures a Scorer.
type Config struct {
	Models Models
	Sink   Sink
	Logger *slog.Logger
	// Registerer receives the scoring metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// MaxInstances bounds {"instances": [...]} (default 1000).
	MaxInstances int
	Now          func() time.Time
	// Observer, when set, hears of every scored record once it is stored (shadow.go).
	Observer Observer
	// Live, when set, gives the live accuracy that the model block shows next to the holdout
	// metrics.
	Live LiveMetrics
	// Shadow configures shadow scoring by challengers (shadow.go); off without Enabled.
	Shadow ShadowConfig
}

// Scorer scores requests. It is safe for concurrent use.
type Scorer struct {
	cfg         Config
	duration    *prometheus.HistogramVec
	predictions *prometheus.CounterVec
	scratch     sync.Pool // *scratch
	shadow      *shadow   // nil without shadow scoring
	// blocks caches the model block of each version and alias, rebuilt when its live
	// metrics change; blockMu serialises the copies-on-write.
	blocks  atomic.Pointer[map[blockKey]*block]
	blockMu sync.Mutex
}

// New returns a Scorer.
func New(cfg Config) (*Scorer, error) {
	if cfg.Models == nil || cfg.Sink == nil {
		return nil, fmt.Errorf("serving: Models and Sink are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxInstances <= 0 {
		cfg.MaxInstances = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Scorer{
		cfg:     cfg,
		scratch: sync.Pool{New: func() any { return newScratch() }},
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pulse_predict_duration_seconds",
			Help:    "Time to score a predict request, by model, version and outcome status.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"model", "version", "status"}),
		predictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_predictions_total",
			Help: "Scored records, by model, version and predicted label.",
		}, []string{"model", "version", "label"}),
	}
	s.blocks.Store(&map[blockKey]*block{})
	collectors := []prometheus.Collector{s.duration, s.predictions}
	if cfg.Shadow.Enabled != nil {
		s.shadow = newShadow(cfg.Shadow)
		collectors = append(collectors, s.shadow.scored, s.shadow.failures)
	}
	if cfg.Registerer != nil {
		for _, c := range collectors {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("serving: register metrics: %w", err)
			}
		}
	}
	if s.shadow != nil {
		for range s.shadow.cfg.Workers {
			s.shadow.wg.Go(s.runShadow)
		}
	}
	return s, nil
}

// MaxInstances is the largest batch a request may carry.
func (s *Scorer) MaxInstances() int { return s.cfg.MaxInstances }

// Request is one predict call.
type Request struct {
	Model string
	// Version, when non-zero, selects a version; otherwise Alias (default "champion") does.
	Version int
	Alias   string
	// Strict refuses unknown fields and unseen categories instead of applying the lenient rules.
	Strict    bool
	RequestID string
	Body      []byte
	// Reserved names fields the caller adds to the response (the asynchronous path adds
	// request_id and correlation_id): they are refused as inputs, like the response's own.
	Reserved []string
	// ValidJSON says that the caller checked that Body is valid JSON (the asynchronous path
	// decoded it from a checked event), sparing the check.
	ValidJSON bool
}

// Predict scores the request body: one JSON object of features, or {"instances": [...]}.
// It returns the response body. Every scored record is durable in the lake when it returns.
func (s *Scorer) Predict(ctx context.Context, req Request) ([]byte, error) {
	start := time.Now()
	t, err := s.target(ctx, &req)
	if err != nil {
		// The name of a model that may not exist is the client's: as a label value it would
		// make a new series for every name sent.
		model := req.Model
		if pulse.ErrorCode(err) == pulse.ENOTFOUND {
			model = ""
		}
		s.duration.WithLabelValues(model, "", statusOf(err)).Observe(time.Since(start).Seconds())
		return nil, err
	}
	out, err := s.predict(ctx, &req, t, start)
	s.duration.WithLabelValues(req.Model, t.version, statusOf(err)).Observe(time.Since(start).Seconds())
	return out, err
}

func (s *Scorer) predict(ctx context.Context, req *Request, t *target, start time.Time) ([]byte, error) {
	sc := s.scratch.Get().(*scratch)
	defer s.putScratch(sc)
	out, recs, err := s.score(req, t, s.cfg.Now().UTC(), sc, sc.recs[:0])
	sc.recs = recs
	if err != nil {
		return nil, err
	}
	if err := s.store(ctx, recs, start); err != nil {
		return nil, err
	}
	t.count()
	s.observe(sc, recs)
	return out, nil
}

// Result is the answer to one request of PredictEach: the response body Predict would return,
// or the error it would return.
type Result struct {
	Body []byte
	Err  error
}

// PredictEach scores independent requests at once, as many Predict calls would, and answers
// each in reqs' order: the same response body (apart from prediction_id and scored_at), or
// the same error. One request's error does not fail the others. The records of every scored
// request are appended to the lake together, durably, before PredictEach returns; if that
// fails, nothing is answered and the error (EUNAVAILABLE) is returned instead. Requests for
// the same model and version or alias share one resolution. scored_at is the same for all, and
// each record's latency is that of the whole call.
func (s *Scorer) PredictEach(ctx context.Context, reqs []Request) ([]Result, error) {
	start := time.Now()
	now := s.cfg.Now().UTC()
	sc := s.scratch.Get().(*scratch)
	defer s.putScratch(sc)
	results := make([]Result, len(reqs))
	type key struct {
		model, alias string
		version      int
	}
	type resolved struct {
		t   *target
		err error
	}
	targets := map[key]resolved{}
	recs := sc.recs[:0]
	for i := range reqs {
		req := &reqs[i]
		k := key{req.Model, req.Alias, req.Version}
		r, ok := targets[k]
		if !ok {
			r.t, r.err = s.target(ctx, req)
			targets[k] = r
		}
		if r.err != nil {
			results[i].Err = r.err
			continue
		}
		results[i].Body, recs, results[i].Err = s.score(req, r.t, now, sc, recs)
	}
	sc.recs = recs
	if err := s.store(ctx, recs, start); err != nil {
		return nil, err
	}
	for _, r := range targets {
		if r.t != nil {
			r.t.count()
		}
	}
	s.observe(sc, recs)
	return results, nil
}

// store appends the scored records to the lake, durably, with the latency since start.
func (s *Scorer) store(ctx context.Context, recs []lake.Prediction, start time.Time) error {
	if len(recs) == 0 {
		return nil
	}
	latency := time.Since(start).Microseconds()
	for i := range recs {
		recs[i].LatencyMicros = latency
	}
	if err := s.cfg.Sink.AppendPredictions(ctx, recs...); err != nil {
		s.cfg.Logger.ErrorContext(ctx, "scored records not stored; answering 503", "err", err, "model", recs[0].Model, "records", len(recs))
		return pulse.Errorf(pulse.EUNAVAILABLE, "the scored records could not be stored durably, so no prediction is returned; retry")
	}
	return nil
}

func statusOf(err error) string {
	if err == nil {
		return "ok"
	}
	return pulse.ErrorCode(err)
}

// LiveModels is what Models may also offer: the live models of followed streams (see
// internal/online), which the alias "live" resolves to. *registry.Service offers it.
type LiveModels interface {
	Live(model string) (*registry.Loaded, bool)
}

// target is a resolved model version and what its answers share. Its counts are the records
// scored with it that are not counted in pulse_predictions_total yet.
type target struct {
	loaded    *registry.Loaded
	alias     string
	modelJSON []byte
	version   string
	labels    [2]prometheus.Counter // pulse_predictions_total by label 0 and 1
	counts    [2]int
}

func (s *Scorer) target(ctx context.Context, req *Request) (*target, error) {
	loaded, alias, err := s.resolve(ctx, req)
	if err != nil {
		return nil, err
	}
	v := loaded.Version
	t := &target{loaded: loaded, alias: alias, modelJSON: s.modelJSON(v, alias), version: strconv.Itoa(v.Version)}
	t.labels[0] = s.predictions.WithLabelValues(v.Model, t.version, "0")
	t.labels[1] = s.predictions.WithLabelValues(v.Model, t.version, "1")
	return t, nil
}

// count adds the records scored with t to pulse_predictions_total, once they are stored.
func (t *target) count() {
	for label, n := range t.counts {
		if n > 0 {
			t.labels[label].Add(float64(n))
		}
	}
	t.counts = [2]int{}
}

func (s *Scorer) resolve(ctx context.Context, req *Request) (*registry.Loaded, string, error) {
	if req.Version > 0 {
		l, err := s.cfg.Models.Load(ctx, req.Model, req.Version)
		return l, "", err
	}
	alias := req.Alias
	if alias == "" {
		alias = pulse.AliasChampion
	}
	if alias == pulse.AliasLive {
		if lm, ok := s.cfg.Models.(LiveModels); ok {
			if l, ok := lm.Live(req.Model); ok {
				return l, alias, nil
			}
		}
		// No follower publishes this model here: a stored alias named "live", if any, answers.
	}
	v, ok := s.cfg.Models.Resolve(req.Model, alias)
	if !ok {
		// Not known here: another process may have trained the model or set the alias.
		m, err := s.cfg.Models.Model(ctx, req.Model)
		if err != nil {
			return nil, "", err
		}
		if v, ok = m.Aliases[alias]; !ok {
			return nil, "", pulse.FieldErrorf(pulse.ENOTFOUND, "alias", "model %q has no alias %q", req.Model, alias)
		}
	}
	l, err := s.cfg.Models.Load(ctx, req.Model, v)
	return l, alias, err
}

// score parses req's body and scores every record in it with t, appending the records to recs
// (not stored yet). It returns the response body and the grown recs; on error, recs as they
// were.
func (s *Scorer) score(req *Request, t *target, now time.Time, sc *scratch, recs []lake.Prediction) ([]byte, []lake.Prediction, error) {
	body := bytes.TrimSpace(req.Body)
	if len(body) == 0 || body[0] != '{' {
		return nil, recs, pulse.Errorf(pulse.EINVALID, "request body: want a JSON object of features, or {\"instances\": [...]}")
	}
	if !req.ValidJSON && !jsonscan.Valid(body) && !json.Valid(body) {
		var top map[string]json.RawMessage
		err := json.Unmarshal(body, &top) // for encoding/json's own description of the fault
		return nil, recs, pulse.Errorf(pulse.EINVALID, "request body is not valid JSON: %v", err)
	}
	m := t.loaded.Model
	parser := sc.parser(m)
	// The common request, one object whose names need no decoding, is read straight from
	// its members (top stays nil); the others through a map of them.
	var top map[string]json.RawMessage
	instances := append(sc.instances[:0], body)
	batch := false
	if !sc.obj.Split(parser, body) || sc.obj.Has("instances") {
		top = sc.splitObject(body)
	}
	if raw, ok := top["instances"]; ok && len(top) == 1 {
		batch = true
		switch raw[0] {
		case '[':
			instances = splitArray(raw, instances[:0])
		case 'n': // null: no instances, as encoding/json reads it into a slice
			instances = instances[:0]
		default:
			return nil, recs, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "instances", "instances: want an array of JSON objects")
		}
		sc.instances = instances
		if len(instances) == 0 {
			return nil, recs, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "instances", "instances: want at least one object")
		}
		if len(instances) > s.cfg.MaxInstances {
			return nil, recs, pulse.FieldErrorf(pulse.ETOOLARGE, "instances", "instances: got %d objects, want at most %d", len(instances), s.cfg.MaxInstances)
		}
	}

	v := t.loaded.Version
	stamp := sc.stampOf(now)
	values := sc.valuesFor(len(m.Inputs()))
	x := sc.scratchFor(m.Width())
	first := len(recs)
	var responses [][]byte
	if batch {
		responses = make([][]byte, 0, len(instances))
	}
	var labels [2]int
	obsStart, offStart := len(sc.obs), len(sc.obsOff)
	fail := func(err error) ([]byte, []lake.Prediction, error) {
		clear(recs[first:])
		sc.obs, sc.obsOff = sc.obs[:obsStart], sc.obsOff[:offStart]
		return nil, recs[:first], err
	}
	for i, inst := range instances {
		prefix := ""
		fields := top
		if batch {
			name := "instances[" + strconv.Itoa(i) + "]"
			prefix = name + "."
			if len(inst) == 0 || inst[0] != '{' {
				return fail(pulse.FieldErrorf(pulse.EUNPROCESSABLE, name, "%s: want a JSON object of features", name))
			}
			fields = nil
			if !sc.obj.Split(parser, inst) {
				fields = sc.splitObject(inst)
			}
		}
		warnings, err := sc.readInputs(parser, fields, req.Reserved, values, prefix, req.Strict)
		if err != nil {
			return fail(err)
		}
		p, _ := m.Predict(values, x)
		if math.IsNaN(p) || math.IsInf(p, 0) {
			return fail(pulse.Errorf(pulse.EINTERNAL, "model %s version %d produced a non-finite probability", v.Model, v.Version))
		}
		label := 0
		if p >= m.Threshold() {
			label = 1
		}
		labels[label]++
		id := uuid.Must(uuid.NewV7FromReader(sc.random)).String()
		resp := augment(inst, label, p, m.Threshold(), t.modelJSON, id, stamp, warnings)
		if batch {
			responses = append(responses, resp)
		}
		recs = append(recs, lake.Prediction{
			PredictionID: id,
			ScoredAt:     now,
			Model:        v.Model,
			Version:      v.Version,
			Alias:        t.alias,
			Label:        label,
			Probability:  p,
			Threshold:    m.Threshold(),
			RequestID:    req.RequestID,
			Features:     inst,
			Response:     resp,
		})
		if s.cfg.Observer != nil {
			sc.obsOff = append(sc.obsOff, len(sc.obs))
			sc.obs = append(sc.obs, values...)
		}
	}
	t.counts[0] += labels[0]
	t.counts[1] += labels[1]
	if !batch {
		return recs[len(recs)-1].Response, recs, nil
	}
	var out bytes.Buffer
	out.Grow(len(responses) * (len(responses[0]) + 1))
	out.WriteString(`{"predictions":[`)
	for i, r := range responses {
		if i > 0 {
			out.WriteByte(',')
		}
		out.Write(r)
	}
	out.WriteString("]}")
	return out.Bytes(), recs, nil
}

// blockKey names a cached model block; block is one, with the generation of the live
// metrics it shows.
type blockKey struct {
	model   string
	version int
	alias   string
}

type block struct {
	gen  uint64
	json []byte
}

// maxBlocks bounds the cached model blocks: past it the cache starts again empty.
const maxBlocks = 1024

// modelJSON returns the model block of v served through alias, from the cache unless its
// live metrics changed since it was built.
func (s *Scorer) modelJSON(v *pulse.ModelVersion, alias string) []byte {
	var acc float64
	var n int
	var ok bool
	var gen uint64
	if s.cfg.Live != nil {
		acc, n, ok, gen = s.cfg.Live.LiveAccuracy(v.Model, v.Version)
	}
	k := blockKey{v.Model, v.Version, alias}
	if b := (*s.blocks.Load())[k]; b != nil && b.gen == gen {
		return b.json
	}
	var live *liveMetrics
	if ok {
		live = &liveMetrics{accuracy: acc, labels: n}
	}
	b := &block{gen: gen, json: modelBlock(v, alias, live)}
	s.blockMu.Lock()
	old := *s.blocks.Load()
	if len(old) >= maxBlocks {
		old = nil // versions come and go (retraining, snapshots): start again from those in use
	}
	next := make(map[blockKey]*block, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[k] = b
	s.blocks.Store(&next)
	s.blockMu.Unlock()
	return b.json
}

// liveMetrics are what the model block shows of a version's live evaluation.
type liveMetrics struct {
	accuracy float64
	labels   int
}

// modelBlock is the "model" object of a response: which version answered and how good it was
// on its holdout, and, once enough labels came back (live non-nil), live.
func modelBlock(v *pulse.ModelVersion, alias string, live *liveMetrics) []byte {
	type metrics struct {
		Accuracy     float64  `json:"accuracy"`
		ROCAUC       float64  `json:"roc_auc"`
		LiveAccuracy *float64 `json:"live_accuracy,omitempty"`
		LiveLabels   int      `json:"live_labels,omitempty"`
	}
	block := struct {
		Name    string   `json:"name"`
		Version int      `json:"version"`
		Alias   string   `json:"alias,omitempty"`
		Metrics *metrics `json:"metrics,omitempty"`
	}{Name: v.Model, Version: v.Version, Alias: alias}
	if h := v.Metrics.Holdout; h != nil {
		block.Metrics = &metrics{Accuracy: h.Accuracy, ROCAUC: h.ROCAUC}
		if live != nil && !math.IsNaN(live.accuracy) {
			block.Metrics.LiveAccuracy = &live.accuracy
			block.Metrics.LiveLabels = live.labels
		}
	}
	b, _ := json.Marshal(block) // cannot fail: plain strings and finite numbers
	return b
}

// augment returns the input object with the prediction fields appended, keeping the input's
// own bytes (key order, number formatting) as they were sent.
func augment(inst []byte, label int, p, threshold float64, modelJSON []byte, id string, stamp []byte, warnings []string) []byte {
	body := bytes.TrimSpace(inst[:len(inst)-1]) // drop the closing brace
	b := make([]byte, 0, len(body)+len(modelJSON)+len(id)+160)
	b = append(b, body...)
	if len(bytes.TrimSpace(body[1:])) > 0 {
		b = append(b, ',')
	}
	b = append(b, `"prediction":{"label":`...)
	b = strconv.AppendInt(b, int64(label), 10)
	b = append(b, `,"probability":`...)
	b = strconv.AppendFloat(b, p, 'g', -1, 64)
	b = append(b, `,"threshold":`...)
	b = strconv.AppendFloat(b, threshold, 'g', -1, 64)
	b = append(b, `},"model":`...)
	b = append(b, modelJSON...)
	b = append(b, `,"prediction_id":"`...)
	b = append(b, id...)
	b = append(b, `","scored_at":"`...)
	b = append(b, stamp...)
	b = append(b, '"')
	if len(warnings) > 0 {
		w, _ := json.Marshal(warnings)
		b = append(b, `,"warnings":`...)
		b = append(b, w...)
	}
	return append(b, '}')
}
