package serving

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Observer hears of every record scored and stored: the model's input values and the
// probability, after the lake append succeeded (the evaluator's drift windows). Observe runs
// on the request path: it must return at once, and must copy values to keep them.
type Observer interface {
	Observe(model string, version int, values []ml.Value, probability float64, at time.Time)
}

// LiveMetrics gives the live accuracy that the response's model block shows next to the
// holdout metrics. LiveAccuracy is called on every request: it must be a lookup. gen changes
// whenever any of the other results do, so that the block is rebuilt only then.
type LiveMetrics interface {
	LiveAccuracy(model string, version int) (accuracy float64, labels int, ok bool, gen uint64)
}

// ShadowConfig configures shadow scoring: each record answered through the champion alias
// is scored again by the model's challenger (when it has one, of another version) after the
// answer, off the request path, and stored in the lake with the champion's prediction_id,
// alias "challenger" and Shadow set, so that both meet the same feedback.
type ShadowConfig struct {
	// Enabled reports whether a model's challenger scores in shadow (the policy's "shadow");
	// nil turns shadow scoring off.
	Enabled func(model string) bool
	// Queue bounds the records waiting (default 10000): when it is full a record is not
	// scored in shadow, and is counted (pulse_shadow_failures_total{reason="queue_full"}).
	Queue int
	// Workers score the queue (default 1).
	Workers int
	// Linger is how long a worker gathers records before it scores and stores them together
	// (default 50 ms, at most 256 records): one lake append for many, so that shadow records
	// rarely hold the write-ahead log's fsync that a live request waits for.
	Linger time.Duration
}

// shadowTask is one record to score with a challenger.
type shadowTask struct {
	model     string
	version   int // the challenger's
	id        string
	requestID string
	scoredAt  time.Time
	features  []byte // the input object as sent
}

// shadow is the shadow scorer: a bounded queue and its workers.
type shadow struct {
	cfg      ShadowConfig
	queue    chan shadowTask
	done     chan struct{}
	wg       sync.WaitGroup
	scored   *prometheus.CounterVec
	failures *prometheus.CounterVec
	stopOnce sync.Once
}

func newShadow(cfg ShadowConfig) *shadow {
	if cfg.Queue <= 0 {
		cfg.Queue = 10000
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 50 * time.Millisecond
	}
	return &shadow{
		cfg:   cfg,
		queue: make(chan shadowTask, cfg.Queue),
		done:  make(chan struct{}),
		scored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_shadow_predictions_total",
			Help: "Records scored in shadow by a challenger and stored, by model and challenger version.",
		}, []string{"model", "version"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_shadow_failures_total",
			Help: "Records not scored in shadow, by model and reason: queue_full, input (the challenger refused the input), model (it could not be loaded), lake (not stored).",
		}, []string{"model", "reason"}),
	}
}

// observe tells the observer of the stored records, then queues the champion's records for
// the challenger. sc holds the records' input values (sc.obs from sc.obsOff[i]).
func (s *Scorer) observe(sc *scratch, recs []lake.Prediction) {
	if o := s.cfg.Observer; o != nil && len(sc.obsOff) == len(recs) {
		for i := range recs {
			end := len(sc.obs)
			if i+1 < len(recs) {
				end = sc.obsOff[i+1]
			}
			o.Observe(recs[i].Model, recs[i].Version, sc.obs[sc.obsOff[i]:end], recs[i].Probability, recs[i].ScoredAt)
		}
	}
	sh := s.shadow
	if sh == nil {
		return
	}
	model, challenger := "", 0
	for i := range recs {
		r := &recs[i]
		if r.Alias != pulse.AliasChampion {
			continue
		}
		if r.Model != model {
			model, challenger = r.Model, 0
			if v, ok := s.cfg.Models.Resolve(r.Model, pulse.AliasChallenger); ok && v != r.Version && sh.cfg.Enabled(r.Model) {
				challenger = v
			}
		}
		if challenger == 0 {
			continue
		}
		select {
		case sh.queue <- shadowTask{model: r.Model, version: challenger, id: r.PredictionID, requestID: r.RequestID, scoredAt: r.ScoredAt, features: r.Features}:
		default:
			sh.failures.WithLabelValues(r.Model, "queue_full").Inc()
		}
	}
}

// runShadow is one shadow worker: it gathers queued records for up to Linger (or 256 of
// them), scores and stores them together, until Close.
func (s *Scorer) runShadow() {
	sh := s.shadow
	batch := make([]shadowTask, 0, 256)
	linger := time.NewTimer(sh.cfg.Linger)
	linger.Stop()
	for {
		select {
		case t := <-sh.queue:
			batch = append(batch[:0], t)
		case <-sh.done:
			return
		}
		linger.Reset(sh.cfg.Linger)
		stopping := false
	gather:
		for len(batch) < cap(batch) {
			select {
			case t := <-sh.queue:
				batch = append(batch, t)
			case <-linger.C:
				break gather
			case <-sh.done:
				stopping = true
				break gather
			}
		}
		linger.Stop()
		s.scoreShadow(batch)
		clear(batch)
		if stopping {
			return
		}
	}
}

// scoreShadow scores a batch with the challengers, stores the records in the lake together,
// then tells the observer.
func (s *Scorer) scoreShadow(batch []shadowTask) {
	sh := s.shadow
	ctx := context.Background()
	sc := s.scratch.Get().(*scratch)
	defer s.putScratch(sc)
	recs := sc.recs[:0]
	sc.obs, sc.obsOff = sc.obs[:0], sc.obsOff[:0]
	for i := range batch {
		t := &batch[i]
		start := time.Now()
		l, err := s.cfg.Models.Load(ctx, t.model, t.version)
		if err != nil {
			sh.failures.WithLabelValues(t.model, "model").Inc()
			s.cfg.Logger.Warn("challenger not loaded; record not scored in shadow", "model", t.model, "version", t.version, "err", err)
			continue
		}
		m := l.Model
		values := sc.valuesFor(len(m.Inputs()))
		parser := sc.parser(m)
		var fields map[string]json.RawMessage // nil: read from sc.obj
		if !sc.obj.Split(parser, t.features) {
			fields = sc.splitObject(t.features)
		}
		if _, err := sc.readInputs(parser, fields, nil, values, "", false); err != nil {
			sh.failures.WithLabelValues(t.model, "input").Inc()
			s.cfg.Logger.Debug("challenger refused the input; record not scored in shadow", "model", t.model, "version", t.version, "prediction_id", t.id, "err", err)
			continue
		}
		p, _ := m.Predict(values, sc.scratchFor(m.Width()))
		if math.IsNaN(p) || math.IsInf(p, 0) {
			sh.failures.WithLabelValues(t.model, "input").Inc()
			continue
		}
		sc.obsOff = append(sc.obsOff, len(sc.obs))
		sc.obs = append(sc.obs, values...)
		recs = append(recs, lake.Prediction{
			PredictionID:  t.id,
			ScoredAt:      t.scoredAt, // the champion's: the same record, the same lake partition
			Model:         t.model,
			Version:       t.version,
			Alias:         pulse.AliasChallenger,
			Shadow:        true,
			Label:         labelOf(p, m.Threshold()),
			Probability:   p,
			Threshold:     m.Threshold(),
			LatencyMicros: time.Since(start).Microseconds(),
			RequestID:     t.requestID,
			Features:      t.features,
		})
	}
	sc.recs = recs
	if len(recs) == 0 {
		return
	}
	if err := s.cfg.Sink.AppendPredictions(ctx, recs...); err != nil {
		for i := range recs {
			sh.failures.WithLabelValues(recs[i].Model, "lake").Inc()
		}
		s.cfg.Logger.Error("shadow predictions not stored", "model", recs[0].Model, "records", len(recs), "err", err)
		return
	}
	for i := range recs {
		sh.scored.WithLabelValues(recs[i].Model, strconv.Itoa(recs[i].Version)).Inc()
	}
	if s.cfg.Observer != nil {
		// Only the observer: a shadow record is never queued again.
		o := s.cfg.Observer
		for i := range recs {
			end := len(sc.obs)
			if i+1 < len(recs) {
				end = sc.obsOff[i+1]
			}
			o.Observe(recs[i].Model, recs[i].Version, sc.obs[sc.obsOff[i]:end], recs[i].Probability, recs[i].ScoredAt)
		}
	}
}

func labelOf(p, threshold float64) int {
	if p >= threshold {
		return 1
	}
	return 0
}

// Close stops the shadow workers after the batch they are scoring; records still queued are
// not scored in shadow. Call it once requests have stopped, before the lake closes.
func (s *Scorer) Close(ctx context.Context) error {
	sh := s.shadow
	if sh == nil {
		return nil
	}
	sh.stopOnce.Do(func() { close(sh.done) })
	done := make(chan struct{})
	go func() {
		sh.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
