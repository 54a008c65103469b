package evaluator

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cloudmedical/pulse/internal/monitor"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// LiveReport is a version's live evaluation: GET /v1/models/{model}/versions/{version}/live.
type LiveReport struct {
	Model   string    `json:"model"`
	Version int       `json:"version"`
	Aliases []string  `json:"aliases"`
	At      time.Time `json:"at"`
	// Threshold is the version's decision threshold: the probability from which the
	// predicted label is 1.
	Threshold float64 `json:"threshold"`
	// Holdout are the offline metrics to compare the live ones with (absent without a
	// holdout).
	Holdout *HoldoutMetrics `json:"holdout,omitempty"`
	Window  Windows         `json:"window"`
	// Live are the metrics over the labelled outcomes of the version's window, with their
	// sample size, 95% intervals and the label delay.
	Live monitor.LiveMetrics `json:"live"`
	// Drift compares the version's recent traffic with its training profile; null, with
	// DriftUnavailable saying why, when the version has no profile.
	Drift            *monitor.DriftReport `json:"drift"`
	DriftUnavailable string               `json:"drift_unavailable,omitempty"`
	// Shadow compares the champion and the challenger on the requests that both scored, when
	// this version is one of the two and the other scored in shadow.
	Shadow *ShadowReport `json:"shadow,omitempty"`
	// LiveMinLabels is the number of labels from which the predict response shows the live
	// accuracy.
	LiveMinLabels int `json:"live_min_labels"`
	// Policy is the model's current policy (thresholds included), absent without one.
	Policy *PolicyView `json:"policy,omitempty"`
}

// HoldoutMetrics are the offline metrics of a version, on its holdout.
type HoldoutMetrics struct {
	N        int     `json:"n"`
	Accuracy float64 `json:"accuracy"`
	ROCAUC   float64 `json:"roc_auc"`
	Brier    float64 `json:"brier"`
}

// Windows are the extents of the windows.
type Windows struct {
	LiveSize           int     `json:"live_size"`
	LivePeriodSeconds  float64 `json:"live_period_seconds"`
	DriftSize          int     `json:"drift_size"`
	DriftPeriodSeconds float64 `json:"drift_period_seconds"`
}

// ShadowReport compares a champion and a challenger on the same requests.
type ShadowReport struct {
	Champion   int                 `json:"champion"`
	Challenger int                 `json:"challenger"`
	Labels     int                 `json:"labels"`
	Metrics    ShadowReportMetrics `json:"metrics"`
}

// ShadowReportMetrics are each side's live metrics over the shared outcomes.
type ShadowReportMetrics struct {
	Champion   monitor.LiveMetrics `json:"champion"`
	Challenger monitor.LiveMetrics `json:"challenger"`
}

// Live returns a version's live evaluation. ENOTFOUND when the version does not exist.
func (e *Evaluator) Live(ctx context.Context, model string, version int) (*LiveReport, error) {
	v, err := e.cfg.Models.Version(ctx, model, version)
	if err != nil {
		return nil, err
	}
	now := e.cfg.Now()
	r := &LiveReport{
		Model: model, Version: version, Aliases: v.Aliases, At: now.UTC(), Threshold: v.Threshold,
		Window: Windows{
			LiveSize: e.cfg.Live.Size, LivePeriodSeconds: e.cfg.Live.Period.Seconds(),
			DriftSize: e.cfg.Drift.Size, DriftPeriodSeconds: e.cfg.Drift.Period.Seconds(),
		},
		LiveMinLabels: e.cfg.LiveMinLabels,
	}
	if r.Aliases == nil {
		r.Aliases = []string{}
	}
	if h := v.Metrics.Holdout; h != nil {
		r.Holdout = &HoldoutMetrics{N: h.N, Accuracy: h.Accuracy, ROCAUC: h.ROCAUC, Brier: h.Brier}
	}
	pol, err := e.Policy(ctx, model, 0)
	switch {
	case err == nil:
		r.Policy = pol
		r.LiveMinLabels = pol.Policy.LiveMetricMinLabels
	case pulse.ErrorCode(err) != pulse.ENOTFOUND:
		return nil, err
	}
	k := vkey{model, version}
	e.mu.Lock()
	st := e.state(k)
	needProfile := st.drift == nil && !now.Before(st.retryAt)
	e.mu.Unlock()
	if needProfile {
		e.loadDrift(ctx, k, now)
	}
	champion, challenger := 0, 0
	for _, a := range v.Aliases {
		switch a {
		case pulse.AliasChampion:
			champion = version
		case pulse.AliasChallenger:
			challenger = version
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st = e.state(k) // the state may have been dropped (and made anew) while unlocked
	r.Live = st.live.Report(now)
	if st.drift != nil {
		d := st.drift.Report(now)
		r.Drift = &d
	} else {
		r.DriftUnavailable = st.driftErr
	}
	// The newest pair this version is part of, in the role its alias gives it.
	var best *pairState
	var bestKey pairKey
	for pk, ps := range e.pairs {
		var match bool
		switch {
		case champion != 0:
			match = pk.champion == version
		case challenger != 0:
			match = pk.challenger == version
		default:
			match = pk.champion == version || pk.challenger == version
		}
		if pk.model != model || !match {
			continue
		}
		if best == nil || ps.last.After(best.last) {
			best, bestKey = ps, pk
		}
	}
	if best != nil {
		a, b := best.champion.Report(now), best.challenger.Report(now)
		r.Shadow = &ShadowReport{Champion: bestKey.champion, Challenger: bestKey.challenger, Labels: min(a.N, b.N),
			Metrics: ShadowReportMetrics{Champion: a, Challenger: b}}
	}
	return r, nil
}

// PolicyView is one version of a model's policy, as the API shows it: the document with its
// defaults filled in.
type PolicyView struct {
	Model     string          `json:"model"`
	Version   int             `json:"version"`
	Policy    *monitor.Policy `json:"policy"`
	CreatedAt time.Time       `json:"created_at"`
	CreatedBy string          `json:"created_by,omitempty"`
}

func view(d *pulse.PolicyDocument) (*PolicyView, error) {
	p, err := monitor.ParsePolicy(d.Policy)
	if err != nil {
		return nil, pulse.Errorf(pulse.EINTERNAL, "stored policy version %d of model %q is invalid: %v", d.Version, d.Model, err)
	}
	return &PolicyView{Model: d.Model, Version: d.Version, Policy: p, CreatedAt: d.CreatedAt, CreatedBy: d.CreatedBy}, nil
}

// PutPolicy validates a policy document (JSON, or the YAML subset of PolicyFromYAML when
// yaml is true) and stores it, defaults filled in, as the model's next policy version; the
// loop applies it at its next evaluation, which it asks for now. Errors: EINVALID naming
// the field, ENOTFOUND for an unknown model.
func (e *Evaluator) PutPolicy(ctx context.Context, model string, doc []byte, yaml bool, createdBy string) (*PolicyView, error) {
	if yaml {
		var err error
		if doc, err = PolicyFromYAML(doc); err != nil {
			return nil, err
		}
	}
	p, err := monitor.ParsePolicy(doc)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("evaluator: encode policy: %w", err)
	}
	d := &pulse.PolicyDocument{Model: model, Policy: b, CreatedAt: e.cfg.Now(), CreatedBy: createdBy}
	if err := e.cfg.Store.PutPolicy(ctx, d); err != nil {
		return nil, err
	}
	e.log.Info("policy stored", "model", model, "version", d.Version, "by", createdBy)
	select {
	case e.kick <- struct{}{}:
	default:
	}
	return &PolicyView{Model: model, Version: d.Version, Policy: p, CreatedAt: d.CreatedAt, CreatedBy: createdBy}, nil
}

// Policy returns a version of a model's policy, the current one for version 0.
func (e *Evaluator) Policy(ctx context.Context, model string, version int) (*PolicyView, error) {
	d, err := e.cfg.Store.GetPolicy(ctx, model, version)
	if err != nil {
		return nil, err
	}
	return view(d)
}

// PolicyHistory returns every version of a model's policy, newest first.
func (e *Evaluator) PolicyHistory(ctx context.Context, model string) ([]*PolicyView, error) {
	ds, err := e.cfg.Store.ListPolicies(ctx, model)
	if err != nil {
		return nil, err
	}
	out := make([]*PolicyView, 0, len(ds))
	for _, d := range ds {
		v, err := view(d)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Events returns a model's audit trail, newest first.
func (e *Evaluator) Events(ctx context.Context, model string, q pulse.DecisionQuery) ([]*pulse.Decision, error) {
	return e.cfg.Store.ListDecisions(ctx, model, q)
}
