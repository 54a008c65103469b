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
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudmedical/pulse/internal/features"
	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/ml"
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
}

// Scorer scores requests. It is safe for concurrent use.
type Scorer struct {
	cfg         Config
	duration    *prometheus.HistogramVec
	predictions *prometheus.CounterVec
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
		cfg: cfg,
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
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.duration, s.predictions} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("serving: register metrics: %w", err)
			}
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
}

// Predict scores the request body: one JSON object of features, or {"instances": [...]}.
// It returns the response body. Every scored record is durable in the lake when it returns.
func (s *Scorer) Predict(ctx context.Context, req Request) ([]byte, error) {
	start := time.Now()
	loaded, alias, err := s.resolve(ctx, req)
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
	out, err := s.predict(ctx, req, loaded, alias, start)
	s.duration.WithLabelValues(req.Model, strconv.Itoa(loaded.Version.Version), statusOf(err)).Observe(time.Since(start).Seconds())
	return out, err
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

func (s *Scorer) resolve(ctx context.Context, req Request) (*registry.Loaded, string, error) {
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

func (s *Scorer) predict(ctx context.Context, req Request, loaded *registry.Loaded, alias string, start time.Time) ([]byte, error) {
	body := bytes.TrimSpace(req.Body)
	if len(body) == 0 || body[0] != '{' {
		return nil, pulse.Errorf(pulse.EINVALID, "request body: want a JSON object of features, or {\"instances\": [...]}")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, pulse.Errorf(pulse.EINVALID, "request body is not valid JSON: %v", err)
	}
	instances := []json.RawMessage{body}
	batch := false
	if raw, ok := top["instances"]; ok && len(top) == 1 {
		batch = true
		if err := json.Unmarshal(raw, &instances); err != nil {
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "instances", "instances: want an array of JSON objects")
		}
		if len(instances) == 0 {
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "instances", "instances: want at least one object")
		}
		if len(instances) > s.cfg.MaxInstances {
			return nil, pulse.FieldErrorf(pulse.ETOOLARGE, "instances", "instances: got %d objects, want at most %d", len(instances), s.cfg.MaxInstances)
		}
	}

	m := loaded.Model
	v := loaded.Version
	values := make([]ml.Value, len(m.Inputs()))
	scratch := make([]float64, m.Width())
	recs := make([]lake.Prediction, len(instances))
	responses := make([][]byte, len(instances))
	now := s.cfg.Now().UTC()
	modelJSON := modelBlock(v, alias)
	for i, inst := range instances {
		inst = bytes.TrimSpace(inst)
		prefix := ""
		if batch {
			prefix = fmt.Sprintf("instances[%d].", i)
		}
		fields := top
		if batch {
			fields = nil
			if len(inst) == 0 || inst[0] != '{' {
				return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, prefix[:len(prefix)-1], "%s: want a JSON object of features", prefix[:len(prefix)-1])
			}
			if err := json.Unmarshal(inst, &fields); err != nil {
				return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, prefix[:len(prefix)-1], "%s: %v", prefix[:len(prefix)-1], err)
			}
		}
		warnings, err := features.Parse(m.Inputs(), fields, values, prefix, req.Strict)
		if err != nil {
			return nil, err
		}
		p, _ := m.Predict(values, scratch)
		if math.IsNaN(p) || math.IsInf(p, 0) {
			return nil, pulse.Errorf(pulse.EINTERNAL, "model %s version %d produced a non-finite probability", v.Model, v.Version)
		}
		label := 0
		if p >= m.Threshold() {
			label = 1
		}
		id := uuid.Must(uuid.NewV7()).String()
		resp := augment(inst, label, p, m.Threshold(), modelJSON, id, now, warnings)
		responses[i] = resp
		recs[i] = lake.Prediction{
			PredictionID: id,
			ScoredAt:     now,
			Model:        v.Model,
			Version:      v.Version,
			Alias:        alias,
			Label:        label,
			Probability:  p,
			Threshold:    m.Threshold(),
			RequestID:    req.RequestID,
			Features:     inst,
			Response:     resp,
		}
	}
	latency := time.Since(start).Microseconds()
	for i := range recs {
		recs[i].LatencyMicros = latency
	}
	if err := s.cfg.Sink.AppendPredictions(ctx, recs...); err != nil {
		s.cfg.Logger.ErrorContext(ctx, "scored records not stored; answering 503", "err", err, "model", v.Model, "records", len(recs))
		return nil, pulse.Errorf(pulse.EUNAVAILABLE, "the scored records could not be stored durably, so no prediction is returned; retry")
	}
	version := strconv.Itoa(v.Version)
	for i := range recs {
		s.predictions.WithLabelValues(v.Model, version, strconv.Itoa(recs[i].Label)).Inc()
	}
	if !batch {
		return responses[0], nil
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
	return out.Bytes(), nil
}

// modelBlock is the "model" object of a response: which version answered and how good it was
// on its holdout.
func modelBlock(v *pulse.ModelVersion, alias string) []byte {
	type metrics struct {
		Accuracy float64 `json:"accuracy"`
		ROCAUC   float64 `json:"roc_auc"`
	}
	block := struct {
		Name    string   `json:"name"`
		Version int      `json:"version"`
		Alias   string   `json:"alias,omitempty"`
		Metrics *metrics `json:"metrics,omitempty"`
	}{Name: v.Model, Version: v.Version, Alias: alias}
	if h := v.Metrics.Holdout; h != nil {
		block.Metrics = &metrics{Accuracy: h.Accuracy, ROCAUC: h.ROCAUC}
	}
	b, _ := json.Marshal(block) // cannot fail: plain strings and finite numbers
	return b
}

// augment returns the input object with the prediction fields appended, keeping the input's
// own bytes (key order, number formatting) as they were sent.
func augment(inst []byte, label int, p, threshold float64, modelJSON []byte, id string, at time.Time, warnings []string) []byte {
	var b bytes.Buffer
	b.Grow(len(inst) + 256)
	body := bytes.TrimSpace(inst[:len(inst)-1]) // drop the closing brace
	b.Write(body)
	if len(bytes.TrimSpace(body[1:])) > 0 {
		b.WriteByte(',')
	}
	b.WriteString(`"prediction":{"label":`)
	b.WriteString(strconv.Itoa(label))
	b.WriteString(`,"probability":`)
	b.WriteString(strconv.FormatFloat(p, 'g', -1, 64))
	b.WriteString(`,"threshold":`)
	b.WriteString(strconv.FormatFloat(threshold, 'g', -1, 64))
	b.WriteString(`},"model":`)
	b.Write(modelJSON)
	b.WriteString(`,"prediction_id":"`)
	b.WriteString(id)
	b.WriteString(`","scored_at":"`)
	b.WriteString(at.Format(time.RFC3339Nano))
	b.WriteByte('"')
	if len(warnings) > 0 {
		w, _ := json.Marshal(warnings)
		b.WriteString(`,"warnings":`)
		b.Write(w)
	}
	b.WriteByte('}')
	return b.Bytes()
}
