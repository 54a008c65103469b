package evaluator

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudmedical/pulse/internal/monitor"
)

// metrics are the evaluator's Prometheus series: gauges per model and version, refreshed by
// every evaluation, and counters.
type metrics struct {
	accuracy, rocAUC, brier, labels *prometheus.GaugeVec
	maxPSI, scorePSI, records       *prometheus.GaugeVec
	decisions                       *prometheus.CounterVec
	invalid                         *prometheus.CounterVec
	dropped, outcomes, paired       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"model", "version"})
	}
	m := &metrics{
		accuracy: gauge("pulse_live_accuracy", "Live accuracy of a model version over its window of labelled outcomes (absent while undefined)."),
		rocAUC:   gauge("pulse_live_roc_auc", "Live ROC AUC of a model version over its window of labelled outcomes (absent while undefined)."),
		brier:    gauge("pulse_live_brier", "Live Brier score of a model version over its window of labelled outcomes (absent while undefined)."),
		labels:   gauge("pulse_live_labels", "Labelled outcomes in a model version's live window."),
		maxPSI:   gauge("pulse_drift_max_psi", "Largest population stability index of a model version's inputs, recent traffic against the training profile."),
		scorePSI: gauge("pulse_drift_score_psi", "Population stability index of a model version's score, recent traffic against the training profile."),
		records:  gauge("pulse_drift_records", "Scored records in a model version's drift window."),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_policy_decisions_total",
			Help: "Decisions recorded in the audit trails, by model, rule and action (none when a guard stopped the rule).",
		}, []string{"model", "rule", "action"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_evaluator_invalid_total",
			Help: "Outcomes and scored records that the windows refused (a probability outside [0, 1], a missing time, values that do not match the profile).",
		}, []string{"kind"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_evaluator_observations_dropped_total",
			Help: "Scored records not counted for drift because the evaluator's queue was full.",
		}),
		outcomes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_evaluator_outcomes_total",
			Help: "Labelled outcomes added to the live windows.",
		}),
		paired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_evaluator_shadow_pairs_total",
			Help: "Champion and shadow challenger outcomes of the same request paired for comparison.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.accuracy, m.rocAUC, m.brier, m.labels, m.maxPSI, m.scorePSI, m.records,
			m.decisions, m.invalid, m.dropped, m.outcomes, m.paired} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("evaluator: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// set updates a version's gauges; an undefined metric has no series.
func (m *metrics) set(k vkey, live *monitor.LiveMetrics, drift *monitor.DriftReport) {
	v := strconv.Itoa(k.version)
	put := func(g *prometheus.GaugeVec, x *float64) {
		if x == nil {
			g.DeleteLabelValues(k.model, v)
			return
		}
		g.WithLabelValues(k.model, v).Set(*x)
	}
	est := func(e *monitor.Estimate) *float64 {
		if e == nil {
			return nil
		}
		return &e.Value
	}
	n := float64(live.N)
	put(m.labels, &n)
	put(m.accuracy, est(live.Accuracy))
	put(m.rocAUC, est(live.ROCAUC))
	put(m.brier, live.Brier)
	if drift == nil {
		put(m.records, nil)
		put(m.maxPSI, nil)
		put(m.scorePSI, nil)
		return
	}
	r := float64(drift.N)
	put(m.records, &r)
	put(m.maxPSI, drift.MaxPSI)
	put(m.scorePSI, drift.ScorePSI)
}

// forget deletes a version's gauges.
func (m *metrics) forget(k vkey) {
	v := strconv.Itoa(k.version)
	for _, g := range []*prometheus.GaugeVec{m.accuracy, m.rocAUC, m.brier, m.labels, m.maxPSI, m.scorePSI, m.records} {
		g.DeleteLabelValues(k.model, v)
	}
}
