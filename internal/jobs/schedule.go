package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/riverqueue/river"
	"github.com/robfig/cron/v3"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
)

// Schedule retrains a model periodically: a train job with trigger "schedule" at every time
// its cron expression names, gated against the champion when Gate is set.
type Schedule struct {
	Model string `json:"model"`
	// Cron is a standard five-field cron expression ("0 3 * * *") or a descriptor ("@daily",
	// "@every 6h"), in UTC.
	Cron string `json:"cron"`
	// Request is the training request. Its dataset names the data window: a dataset name
	// resolves to the name's latest version when the job runs, so retraining picks up the
	// newest registered data.
	Request registry.TrainRequest `json:"request"`
	// Gate decides whether the new version replaces the champion; without it the new
	// version gets no alias (except a model's first, which becomes champion).
	Gate *Gate `json:"gate,omitempty"`
	// RunOnStart also enqueues a job when the schedule starts (on the leader).
	RunOnStart bool `json:"run_on_start,omitempty"`
}

// Gate is a champion/challenger rule. The new version (the challenger) and the champion are
// evaluated on the SAME rows: the challenger's holdout, the fresh rows of its training data that
// it never saw (registry.CompareOnHoldout). The challenger becomes champion when its metric beats
// the champion's by at least MinGain and reaches Floor; otherwise it becomes challenger and the
// champion stays. When the versions cannot be compared on the same rows (the challenger has no
// holdout, or the champion cannot score its data), the stored metrics decide: the
// cross-validation means when both have them, else the holdout's.
type Gate struct {
	// Metric is roc_auc (the default), accuracy, f1, log_loss or brier; the last two are
	// better when lower.
	Metric string `json:"metric,omitempty"`
	// MinGain is the improvement required (in the metric's units, e.g. 0.01 of ROC AUC); it
	// may be negative to tolerate a small loss.
	MinGain float64 `json:"min_gain"`
	// Floor, when set, is an absolute bound the challenger's metric must reach (at least it
	// for roc_auc, accuracy, f1; at most it for log_loss, brier).
	Floor *float64 `json:"floor,omitempty"`
	// Challenger, when set and the model has a champion, makes the new version challenger
	// whatever its numbers (they are still computed and recorded): it must prove itself on
	// live traffic first, as versions retrained by a policy do (the evaluator promotes them
	// from shadow).
	Challenger bool `json:"challenger,omitempty"`
}

// GateDecision records what a gate decided and the numbers it decided on.
type GateDecision struct {
	Metric string `json:"metric"`
	// Source is where the numbers come from: fresh_holdout (both versions on the challenger's
	// holdout), cv, holdout (stored metrics), or none.
	Source          string   `json:"source"`
	Rows            int      `json:"rows,omitempty"` // rows of the fresh holdout
	Value           float64  `json:"value"`
	ChampionVersion int      `json:"champion_version,omitempty"`
	ChampionValue   float64  `json:"champion_value,omitempty"`
	MinGain         float64  `json:"min_gain"`
	Floor           *float64 `json:"floor,omitempty"`
	// Alias is the alias the new version got: champion or challenger.
	Alias string `json:"alias"`
	// Reason says why, in words, with the numbers.
	Reason string `json:"reason"`
}

var lowerIsBetter = map[string]bool{"log_loss": true, "brier": true}

func (g *Gate) validate() error {
	switch g.Metric {
	case "":
		g.Metric = "roc_auc"
	case "roc_auc", "accuracy", "f1", "log_loss", "brier":
	default:
		return pulse.FieldErrorf(pulse.EINVALID, "gate.metric", "gate.metric %q: want roc_auc, accuracy, f1, log_loss or brier", g.Metric)
	}
	return nil
}

// evalMetric is one metric of an evaluation.
func evalMetric(m *pulse.EvalMetrics, name string) float64 {
	return map[string]float64{"roc_auc": m.ROCAUC, "accuracy": m.Accuracy, "f1": m.F1, "log_loss": m.LogLoss, "brier": m.Brier}[name]
}

// metric returns a version's stored value of the gate's metric and where it came from.
func metric(v *pulse.ModelVersion, name string, useCV bool) (float64, string, bool) {
	if useCV {
		c := v.Metrics.CV
		m := map[string]float64{"roc_auc": c.ROCAUC, "accuracy": c.Accuracy, "f1": c.F1, "log_loss": c.LogLoss, "brier": c.Brier}
		return m[name], "cv", true
	}
	h := v.Metrics.Holdout
	if h == nil {
		return 0, "none", false
	}
	return evalMetric(h, name), "holdout", true
}

// applyGate moves the champion or challenger alias to v by g.
func applyGate(ctx context.Context, reg *registry.Service, v *pulse.ModelVersion, g *Gate) (*GateDecision, error) {
	d := &GateDecision{Metric: g.Metric, MinGain: g.MinGain, Floor: g.Floor}
	better := func(a, b float64) float64 { // how much a beats b
		if lowerIsBetter[g.Metric] {
			return b - a
		}
		return a - b
	}
	reachesFloor := func(x float64) bool { return g.Floor == nil || better(x, *g.Floor) >= 0 }
	// Ask the store, not the registry's cache: another process may have moved the alias.
	m, err := reg.Model(ctx, v.Model)
	if err != nil {
		return nil, err
	}
	champ, ok := m.Aliases[pulse.AliasChampion]
	if !ok || champ == v.Version {
		// The model's first version (or one already champion): nothing to compare with, but
		// the floor still holds.
		val, src, _ := metric(v, g.Metric, v.Metrics.CV != nil)
		d.Value, d.Source, d.Alias = val, src, pulse.AliasChampion
		d.Reason = "no other champion to compare with"
		if champ != v.Version && src != "none" && !reachesFloor(val) {
			d.Alias = pulse.AliasChallenger
			d.Reason = fmt.Sprintf("no champion to compare with, and %s %.4f does not reach the floor %.4f", g.Metric, val, *g.Floor)
		}
		if champ != v.Version {
			if _, err := reg.SetAlias(ctx, v.Model, d.Alias, v.Version); err != nil {
				return nil, err
			}
		}
		return d, nil
	}
	d.ChampionVersion = champ
	cmp, cerr := reg.CompareOnHoldout(ctx, v.Model, champ, v.Version)
	comparable := true
	switch {
	case cerr == nil:
		d.Source, d.Rows = "fresh_holdout", cmp.Rows
		d.Value, d.ChampionValue = evalMetric(&cmp.Challenger, g.Metric), evalMetric(&cmp.Champion, g.Metric)
	case pulse.ErrorCode(cerr) == pulse.EINTERNAL:
		return nil, cerr // an infrastructure failure (or cancellation): the job retries
	default:
		cv, err := reg.Version(ctx, v.Model, champ)
		if err != nil {
			return nil, err
		}
		useCV := v.Metrics.CV != nil && cv.Metrics.CV != nil
		var ok1, ok2 bool
		d.Value, d.Source, ok1 = metric(v, g.Metric, useCV)
		d.ChampionValue, _, ok2 = metric(cv, g.Metric, useCV)
		comparable = ok1 && ok2
	}
	gain := better(d.Value, d.ChampionValue)
	switch {
	case !comparable:
		d.Alias, d.Reason = pulse.AliasChallenger, "the versions have no metrics to compare"
	case gain < g.MinGain:
		d.Alias = pulse.AliasChallenger
		d.Reason = fmt.Sprintf("%s %.4f vs the champion's %.4f (%s): a gain of %.4f, short of %.4f", g.Metric, d.Value, d.ChampionValue, d.Source, gain, g.MinGain)
	case !reachesFloor(d.Value):
		d.Alias = pulse.AliasChallenger
		d.Reason = fmt.Sprintf("%s %.4f does not reach the floor %.4f", g.Metric, d.Value, *g.Floor)
	default:
		d.Alias = pulse.AliasChampion
		d.Reason = fmt.Sprintf("%s %.4f vs the champion's %.4f (%s): a gain of %.4f, at least %.4f", g.Metric, d.Value, d.ChampionValue, d.Source, gain, g.MinGain)
	}
	if g.Challenger {
		d.Alias = pulse.AliasChallenger
		d.Reason = fmt.Sprintf("challenger until it proves itself on live traffic (%s %.4f vs the champion's %.4f, %s)", g.Metric, d.Value, d.ChampionValue, d.Source)
	}
	if _, err := reg.SetAlias(ctx, v.Model, d.Alias, v.Version); err != nil {
		return nil, err
	}
	return d, nil
}

// LoadSchedules reads a JSON array of schedules from a file.
func LoadSchedules(path string) ([]Schedule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jobs: schedules: %w", err)
	}
	var ss []Schedule
	if err := json.Unmarshal(b, &ss); err != nil {
		return nil, fmt.Errorf("jobs: schedules %s: %w", path, err)
	}
	return ss, nil
}

// periodicJobs turns schedules into River periodic jobs.
func periodicJobs(schedules []Schedule) ([]*river.PeriodicJob, error) {
	var out []*river.PeriodicJob
	for i, s := range schedules {
		where := fmt.Sprintf("schedule %d (model %q)", i+1, s.Model)
		if !pulse.ValidName(s.Model) {
			return nil, fmt.Errorf("jobs: %s: model name: want 1-64 characters of a-z, 0-9, '-', '_', '.'", where)
		}
		sched, err := cron.ParseStandard(s.Cron)
		if err != nil {
			return nil, fmt.Errorf("jobs: %s: cron %q: %w", where, s.Cron, err)
		}
		if s.Gate != nil {
			if err := s.Gate.validate(); err != nil {
				return nil, fmt.Errorf("jobs: %s: %w", where, err)
			}
		}
		args := TrainArgs{Model: s.Model, Request: s.Request, Trigger: "schedule", RequestedBy: "schedule " + s.Cron, Gate: s.Gate}
		out = append(out, river.NewPeriodicJob(utcSchedule{sched}, func() (river.JobArgs, *river.InsertOpts) {
			return args, nil
			// The ID names the schedule by its place in the file (the same on every process),
			// so that a model may have several schedules.
		}, &river.PeriodicJobOpts{ID: fmt.Sprintf("train:%s:%d", s.Model, i+1), RunOnStart: s.RunOnStart}))
	}
	return out, nil
}

// utcSchedule evaluates a cron schedule in UTC, whatever the machine's zone.
type utcSchedule struct{ s cron.Schedule }

func (u utcSchedule) Next(t time.Time) time.Time { return u.s.Next(t.UTC()) }
