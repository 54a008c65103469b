package monitor

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Action is what a policy rule does.
type Action string

// Actions.
const (
	ActionNone     Action = "none"
	ActionRollback Action = "rollback"
	ActionRetrain  Action = "retrain"
	ActionPromote  Action = "promote"
)

// State is what a policy is evaluated against: one model's champion and challenger at a
// moment. Evaluate reads no clock; Now is the time of the evaluation.
type State struct {
	Now time.Time
	// Champion is the champion's version and Live its live metrics (nil before any label).
	Champion int
	Live     *LiveMetrics
	// Drift compares the champion's recent traffic with its training profile (nil if unknown).
	Drift *DriftReport
	// Challenger is the challenger scored in shadow, nil when there is none.
	Challenger *Shadow
	// PreviousGood is the version a rollback restores, 0 when there is none.
	PreviousGood int
	// LastRollback, LastRetrain and LastPromote are when each action was last taken (zero:
	// never), for the cooldowns.
	LastRollback, LastRetrain, LastPromote time.Time
	// Retraining is true while a retraining job of the model is queued or running.
	Retraining bool
}

// Shadow is a challenger scored in shadow on the champion's traffic.
type Shadow struct {
	Version int
	// Live are the challenger's metrics and Champion the champion's over the same outcomes:
	// those of the requests that both scored.
	Live     *LiveMetrics
	Champion *LiveMetrics
}

// Decision is the outcome of one rule: the action taken, or none and why not.
type Decision struct {
	// Rule is the rule evaluated; Action is Rule when it is taken, else none.
	Rule   Action `json:"rule"`
	Action Action `json:"action"`
	// Version is the version the action applies to: the previous good version that a
	// rollback restores, the challenger that a promotion makes champion, the champion whose
	// drift or AUC starts a retraining.
	Version int `json:"version,omitempty"`
	// Guard, when set, is what stopped the rule: "too few labels: 37 < 200", "cooldown: ...",
	// "no previous good version", "not significant: ...", "no challenger",
	// "a retraining job is already running", "superseded by ...".
	Guard string `json:"guard,omitempty"`
	// Reason says, with the numbers, what the rule found.
	Reason string `json:"reason"`
	// Numbers are the values the rule used, by name (labels, min_labels, value, lower,
	// upper, below, max_psi, gain, ...). Undefined values are left out.
	Numbers map[string]float64 `json:"numbers"`
	At      time.Time          `json:"at"`
}

// Evaluate applies policy p (defaults filled in and validated on a copy; an invalid policy
// is an EINVALID error) to state s and returns one decision per rule of p, in the order
// rollback, retrain, promote. It is pure: the same policy and state give the same decisions.
//
// Rules act only on evidence, never on noise:
//
//   - rollback: needs at least min_labels champion labels and the 95% interval of the
//     metric entirely below "below" (its upper bound below it), so that a stable stream
//     whose true metric is at or above the threshold triggers it in at most 2.5% of
//     independent windows, and in practically none when the threshold is a few standard
//     errors below the true value; then a previous good version, and the cooldown.
//   - retrain: fires when any trigger holds: the largest input PSI above drift_psi_above or
//     the score's PSI above score_psi_above, over at least min_records records; or the live
//     ROC AUC's 95% interval entirely below live_roc_auc_below over at least min_labels
//     labels. Then no retraining may be running, and the cooldown.
//   - promote: needs a challenger with at least min_labels shadow labels and a gain
//     (challenger minus champion on the same outcomes) whose lower 95% bound,
//     gain - sqrt(h1² + h2²) with h1 and h2 the half-widths of the two intervals, exceeds
//     min_gain (the two treated as independent, which is conservative on shared traffic);
//     then the cooldown. The margin matters: evaluated after every label, a bound that only
//     had to exceed 0 would promote an equal challenger on noise sooner or later.
//
// When both a rollback and a promotion would be taken, the promotion is (the challenger has
// proven itself on the live traffic, the previous version has not) and the rollback gets
// the guard "superseded by the promotion of version N".
func Evaluate(p *Policy, s State) ([]Decision, error) {
	if p == nil {
		return nil, pulse.Errorf(pulse.EINVALID, "policy: missing")
	}
	q := p.clone()
	if err := q.normalize(); err != nil {
		return nil, err
	}
	var ds []Decision
	rb, pr := -1, -1
	if q.Rollback != nil {
		rb = len(ds)
		ds = append(ds, evalRollback(q.Rollback, s))
	}
	if q.Retrain != nil {
		ds = append(ds, evalRetrain(q.Retrain, s))
	}
	if q.Promote != nil {
		pr = len(ds)
		ds = append(ds, evalPromote(q.Promote, s))
	}
	if rb >= 0 && pr >= 0 && ds[rb].Action == ActionRollback && ds[pr].Action == ActionPromote {
		ds[rb].Action = ActionNone
		ds[rb].Guard = fmt.Sprintf("superseded by the promotion of version %d", ds[pr].Version)
		ds[rb].Version = 0
	}
	return ds, nil
}

// clone returns a copy of p that shares nothing with it.
func (p *Policy) clone() *Policy {
	q := *p
	if p.Rollback != nil {
		r := *p.Rollback
		q.Rollback = &r
	}
	if p.Retrain != nil {
		r := *p.Retrain
		q.Retrain = &r
	}
	if p.Promote != nil {
		r := *p.Promote
		q.Promote = &r
	}
	return &q
}

func newDecision(rule Action, s State) Decision {
	return Decision{Rule: rule, Action: ActionNone, At: s.Now, Numbers: map[string]float64{}}
}

// setEstimate records e's value and interval under name, name_lower and name_upper.
func (d *Decision) setEstimate(name string, e *Estimate) {
	d.Numbers[name] = e.Value
	d.Numbers[name+"_lower"] = e.Lower
	d.Numbers[name+"_upper"] = e.Upper
}

// cooldownGuard returns the guard of an action last taken at last, or "".
func cooldownGuard(d *Decision, s State, last time.Time, cd string, what string) string {
	c := cooldown(cd)
	d.Numbers["cooldown_seconds"] = c.Seconds()
	if last.IsZero() {
		return ""
	}
	since := s.Now.Sub(last)
	d.Numbers["since_last_seconds"] = since.Seconds()
	if since < c {
		return fmt.Sprintf("cooldown: last %s %v ago, cooldown %v", what, since.Round(time.Second), c)
	}
	return ""
}

func labels(m *LiveMetrics) int {
	if m == nil {
		return 0
	}
	return m.N
}

func evalRollback(r *RollbackRule, s State) Decision {
	d := newDecision(ActionRollback, s)
	n := labels(s.Live)
	d.Numbers["labels"] = float64(n)
	d.Numbers["min_labels"] = float64(r.MinLabels)
	d.Numbers["below"] = r.Below
	if n < r.MinLabels {
		d.Guard = fmt.Sprintf("too few labels: %d < %d", n, r.MinLabels)
		d.Reason = fmt.Sprintf("champion version %d has %d labels", s.Champion, n)
		return d
	}
	e := s.Live.Metric(r.Metric)
	if e == nil {
		d.Guard = fmt.Sprintf("%s undefined over %d labels", r.Metric, n)
		d.Reason = d.Guard
		return d
	}
	d.setEstimate(r.Metric, e)
	d.Reason = fmt.Sprintf("champion version %d: %s %s over %d labels", s.Champion, r.Metric, show(e), n)
	if e.Upper >= r.Below {
		if e.Value < r.Below {
			d.Guard = fmt.Sprintf("not significant: %s %.4f is below %g but its 95%% upper bound %.4f is not", r.Metric, e.Value, r.Below, e.Upper)
		} else {
			d.Reason += fmt.Sprintf(", not below %g", r.Below)
		}
		return d
	}
	d.Reason += fmt.Sprintf(", below %g with 95%% confidence", r.Below)
	if s.PreviousGood == 0 {
		d.Guard = "no previous good version"
		return d
	}
	d.Numbers["previous_good"] = float64(s.PreviousGood)
	if g := cooldownGuard(&d, s, s.LastRollback, r.Cooldown, "rollback"); g != "" {
		d.Guard = g
		return d
	}
	d.Action, d.Version = ActionRollback, s.PreviousGood
	d.Reason += fmt.Sprintf(": roll back to version %d", s.PreviousGood)
	return d
}

func evalRetrain(r *RetrainRule, s State) Decision {
	d := newDecision(ActionRetrain, s)
	var fired, checked, guards []string
	records := 0
	if s.Drift != nil {
		records = s.Drift.N
	}
	if r.DriftPSIAbove > 0 || r.ScorePSIAbove > 0 {
		d.Numbers["records"] = float64(records)
		d.Numbers["min_records"] = float64(r.MinRecords)
	}
	psiCheck := func(name string, v *float64, above float64, what string) {
		if above == 0 {
			return
		}
		d.Numbers[name+"_above"] = above
		switch {
		case records < r.MinRecords:
			if g := fmt.Sprintf("too few records: %d < %d", records, r.MinRecords); !slices.Contains(guards, g) {
				guards = append(guards, g)
			}
		case v == nil:
			guards = append(guards, fmt.Sprintf("%s undefined", name))
		default:
			d.Numbers[name] = *v
			text := fmt.Sprintf("%s %.4f over %d records", what, *v, records)
			if *v > above {
				fired = append(fired, fmt.Sprintf("%s > %g", text, above))
			} else {
				checked = append(checked, fmt.Sprintf("%s <= %g", text, above))
			}
		}
	}
	var maxPSI, scorePSI *float64
	worst := ""
	if s.Drift != nil {
		maxPSI, scorePSI, worst = s.Drift.MaxPSI, s.Drift.ScorePSI, s.Drift.Worst
	}
	psiCheck("max_psi", maxPSI, r.DriftPSIAbove, fmt.Sprintf("input drift: PSI of %q", worst))
	psiCheck("score_psi", scorePSI, r.ScorePSIAbove, "score drift: PSI")
	if r.LiveROCAUCBelow > 0 {
		n := labels(s.Live)
		d.Numbers["labels"] = float64(n)
		d.Numbers["min_labels"] = float64(r.MinLabels)
		d.Numbers["live_roc_auc_below"] = r.LiveROCAUCBelow
		e := s.Live.Metric("roc_auc")
		switch {
		case n < r.MinLabels:
			guards = append(guards, fmt.Sprintf("too few labels: %d < %d", n, r.MinLabels))
		case e == nil:
			guards = append(guards, fmt.Sprintf("roc_auc undefined over %d labels", n))
		default:
			d.setEstimate("roc_auc", e)
			text := fmt.Sprintf("live roc_auc %s over %d labels", show(e), n)
			switch {
			case e.Upper < r.LiveROCAUCBelow:
				fired = append(fired, fmt.Sprintf("%s, below %g with 95%% confidence", text, r.LiveROCAUCBelow))
			case e.Value < r.LiveROCAUCBelow:
				guards = append(guards, fmt.Sprintf("not significant: roc_auc %.4f is below %g but its 95%% upper bound %.4f is not", e.Value, r.LiveROCAUCBelow, e.Upper))
			default:
				checked = append(checked, fmt.Sprintf("%s, not below %g", text, r.LiveROCAUCBelow))
			}
		}
	}
	if len(fired) == 0 {
		d.Guard = strings.Join(guards, "; ")
		d.Reason = fmt.Sprintf("champion version %d: no trigger", s.Champion)
		if len(checked) > 0 {
			d.Reason += ": " + strings.Join(checked, "; ")
		}
		return d
	}
	d.Reason = fmt.Sprintf("champion version %d: %s", s.Champion, strings.Join(fired, "; "))
	if s.Retraining {
		d.Guard = "a retraining job is already running"
		return d
	}
	if g := cooldownGuard(&d, s, s.LastRetrain, r.Cooldown, "retraining"); g != "" {
		d.Guard = g
		return d
	}
	d.Action, d.Version = ActionRetrain, s.Champion
	return d
}

func evalPromote(r *PromoteRule, s State) Decision {
	d := newDecision(ActionPromote, s)
	d.Numbers["min_labels"] = float64(r.MinLabels)
	d.Numbers["min_gain"] = r.MinGain
	c := s.Challenger
	if c == nil || c.Version == 0 {
		d.Guard = "no challenger"
		d.Reason = d.Guard
		return d
	}
	d.Numbers["challenger"] = float64(c.Version)
	n := min(labels(c.Live), labels(c.Champion))
	d.Numbers["labels"] = float64(n)
	if n < r.MinLabels {
		d.Guard = fmt.Sprintf("too few labels: %d < %d", n, r.MinLabels)
		d.Reason = fmt.Sprintf("challenger version %d has %d shadow labels", c.Version, n)
		return d
	}
	ce, ke := c.Live.Metric(r.Metric), c.Champion.Metric(r.Metric)
	if ce == nil || ke == nil {
		d.Guard = fmt.Sprintf("%s undefined over %d shadow labels", r.Metric, n)
		d.Reason = d.Guard
		return d
	}
	d.setEstimate("challenger_"+r.Metric, ce)
	d.setEstimate("champion_"+r.Metric, ke)
	gain := ce.Value - ke.Value
	h1, h2 := (ce.Upper-ce.Lower)/2, (ke.Upper-ke.Lower)/2
	lower := gain - math.Sqrt(h1*h1+h2*h2)
	d.Numbers["gain"] = gain
	d.Numbers["gain_lower"] = lower
	d.Reason = fmt.Sprintf("over %d shadow labels, %s of challenger version %d %s, of champion version %d %s: gain %.4f (95%% lower bound %.4f)",
		n, r.Metric, c.Version, show(ce), s.Champion, show(ke), gain, lower)
	if gain <= r.MinGain {
		d.Reason += fmt.Sprintf(", not above %g", r.MinGain)
		return d
	}
	if lower <= r.MinGain {
		d.Guard = fmt.Sprintf("not significant: gain %.4f is above %g but its 95%% lower bound %.4f is not", gain, r.MinGain, lower)
		return d
	}
	if g := cooldownGuard(&d, s, s.LastPromote, r.Cooldown, "promotion"); g != "" {
		d.Guard = g
		return d
	}
	d.Action, d.Version = ActionPromote, c.Version
	return d
}

// show formats an estimate as "0.8123 (95% CI 0.7900-0.8330)".
func show(e *Estimate) string {
	return fmt.Sprintf("%.4f (95%% CI %.4f-%.4f)", e.Value, e.Lower, e.Upper)
}
