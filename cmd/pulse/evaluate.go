package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudmedical/pulse/internal/blobstore"
	"github.com/cloudmedical/pulse/internal/evaluator"
	"github.com/cloudmedical/pulse/internal/events"
	"github.com/cloudmedical/pulse/internal/feedback"
	"github.com/cloudmedical/pulse/internal/jobs"
	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/monitor"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/serving"
)

// EvaluationConfig is continuous evaluation's part of the configuration of pulse serve.
type EvaluationConfig struct {
	// On runs the evaluation loop in this process (one per deployment).
	On       bool
	Interval time.Duration
	// The windows: the last LiveWindow outcomes within LivePeriod, the last DriftWindow
	// scored records within DriftPeriod.
	LiveWindow  int
	LivePeriod  time.Duration
	DriftWindow int
	DriftPeriod time.Duration
	// LiveMinLabels is when the predict response shows live metrics, for models whose policy
	// does not say.
	LiveMinLabels int
	// Shadow scoring of challengers: on/off, the queue and the workers.
	Shadow        bool
	ShadowQueue   int
	ShadowWorkers int
}

func addEvaluationFlags(fs *flag.FlagSet, c *EvaluationConfig) {
	fs.BoolVar(&c.On, "evaluate", envOr("PULSE_EVALUATE", "true") == "true", "run continuous evaluation here: live metrics, drift, policies (one server per deployment) (env PULSE_EVALUATE)")
	fs.DurationVar(&c.Interval, "evaluate-interval", evaluator.DefaultInterval, "how often every model's policy is evaluated (and soon after new labels)")
	fs.IntVar(&c.LiveWindow, "live-window", evaluator.DefaultLiveSize, "labelled outcomes in each version's live window")
	fs.DurationVar(&c.LivePeriod, "live-period", evaluator.DefaultLivePeriod, "how long an outcome stays in the live window (by its observation time)")
	fs.IntVar(&c.DriftWindow, "drift-window", evaluator.DefaultDriftSize, "scored records in each version's drift window")
	fs.DurationVar(&c.DriftPeriod, "drift-period", evaluator.DefaultDriftPeriod, "how long a scored record stays in the drift window")
	fs.IntVar(&c.LiveMinLabels, "live-min-labels", evaluator.DefaultLiveMinLabels, "labels from which the predict response shows live_accuracy (a policy's live_metric_min_labels overrides it)")
	fs.BoolVar(&c.Shadow, "shadow", true, "score the champion's requests with the model's challenger too, after the answer (a policy's \"shadow\": false turns it off per model)")
	fs.IntVar(&c.ShadowQueue, "shadow-queue", 10000, "records waiting to be scored in shadow; beyond it they are not (and are counted)")
	fs.IntVar(&c.ShadowWorkers, "shadow-workers", 1, "goroutines scoring in shadow")
}

// evaluationStore is what the evaluator needs of the metadata store; both stores have it.
type evaluationStore interface {
	metadataStore
	evaluator.Store
}

// openEvaluator returns the evaluator of pulse serve (nil with --evaluate=false) and the
// serving configuration that feeds it: the observer, the live metrics of the model block, and
// shadow scoring.
func (m *ServeMain) openEvaluator(c EvaluationConfig, reg *registry.Service, metrics prometheus.Registerer) (*evaluator.Evaluator, serving.Config, error) {
	var scfg serving.Config
	if !c.On {
		if c.Shadow {
			scfg.Shadow = serving.ShadowConfig{Enabled: func(string) bool { return true }, Queue: c.ShadowQueue, Workers: c.ShadowWorkers}
		}
		return nil, scfg, nil
	}
	st, ok := m.db.(evaluationStore)
	if !ok {
		return nil, scfg, fmt.Errorf("serve: the metadata store keeps no policies")
	}
	cfg := evaluator.Config{
		Models:        reg,
		Store:         st,
		Jobs:          lazyJobs{m},
		Logger:        m.log.With("component", "evaluator"),
		Registerer:    metrics,
		Interval:      c.Interval,
		Live:          monitor.LiveConfig{Size: c.LiveWindow, Period: c.LivePeriod},
		Drift:         monitor.DriftConfig{Size: c.DriftWindow, Period: c.DriftPeriod},
		LiveMinLabels: c.LiveMinLabels,
		Recent:        recentOutcomes(reg, m.lakeSt),
	}
	if m.bus != nil {
		cfg.Notifier = m.bus
	}
	ev, err := evaluator.New(cfg)
	if err != nil {
		return nil, scfg, fmt.Errorf("serve: %w", err)
	}
	scfg.Observer, scfg.Live = ev, ev
	if c.Shadow {
		scfg.Shadow = serving.ShadowConfig{Enabled: ev.ShadowOn, Queue: c.ShadowQueue, Workers: c.ShadowWorkers}
	}
	return ev, scfg, nil
}

// lazyJobs is the job queue of pulse serve, opened after the evaluator.
type lazyJobs struct{ m *ServeMain }

func (j lazyJobs) Enqueue(ctx context.Context, model string, req registry.TrainRequest, opts jobs.EnqueueOptions) (*jobs.Job, bool, error) {
	if j.m.jobs == nil {
		return nil, false, pulse.Errorf(pulse.EUNAVAILABLE, "the job queue is not open")
	}
	return j.m.jobs.Enqueue(ctx, model, req, opts)
}

func (j lazyJobs) List(ctx context.Context, f jobs.Filter) ([]*jobs.Job, error) {
	if j.m.jobs == nil {
		return nil, pulse.Errorf(pulse.EUNAVAILABLE, "the job queue is not open")
	}
	return j.m.jobs.List(ctx, f)
}

// recentOutcomes reads the lake's outcomes table of every model since a time: the evaluator
// rebuilds its live windows from them on start.
func recentOutcomes(reg *registry.Service, lakeSt *blobstore.Store) func(ctx context.Context, since time.Time) ([]evaluator.Outcome, error) {
	return func(ctx context.Context, since time.Time) ([]evaluator.Outcome, error) {
		models, err := reg.Models(ctx)
		if err != nil {
			return nil, err
		}
		var out []evaluator.Outcome
		for _, md := range models {
			outs, err := lake.ReadOutcomes(ctx, lakeSt, md.Name, since)
			if err != nil {
				return nil, err
			}
			out = append(out, evaluator.LakeOutcomes(outs)...)
		}
		return out, nil
	}
}

// DecisionRecorded implements evaluator.Notifier: each entry of an audit trail is published
// on model.events.
func (b *eventBus) DecisionRecorded(ctx context.Context, d *pulse.Decision) {
	b.publish(ctx, events.TypeModelDecision, d.Model, d)
}

// logEvaluation says how continuous evaluation runs here.
func logEvaluation(log *slog.Logger, c EvaluationConfig) {
	if !c.On {
		log.Info("continuous evaluation is off here (--evaluate=false): no live metrics, drift or policies", "shadow", c.Shadow)
		return
	}
	log.Info("continuous evaluation on", "interval", c.Interval, "live_window", c.LiveWindow, "live_period", c.LivePeriod,
		"drift_window", c.DriftWindow, "drift_period", c.DriftPeriod, "live_min_labels", c.LiveMinLabels, "shadow", c.Shadow)
}

// outcomeListener is the feedback join's listener: the outcomes it stored go to the
// evaluator's live windows. nil without an evaluator.
func outcomeListener(ev *evaluator.Evaluator) func([]feedback.Outcome) {
	if ev == nil {
		return nil
	}
	return ev.OnLakeOutcomes
}
