package monitor

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// PolicyFormat is the version of the policy document that this package reads and writes.
const PolicyFormat = 1

// Policy defaults, applied to a field that is absent or 0.
const (
	DefaultLiveMetricMinLabels = 100
	DefaultMinLabels           = 200
	DefaultMinRecords          = 500
	DefaultCooldown            = "1h"
	DefaultRollbackMetric      = "accuracy"
	DefaultPromoteMetric       = "roc_auc"
	DefaultMinGain             = 0.02
	maxMinLabels               = 10_000_000
)

// Metrics a rule may watch: those of LiveMetrics with a confidence interval, all higher is
// better.
var ruleMetrics = []string{"accuracy", "roc_auc", "sensitivity", "specificity"}

// Policy is a model's declarative policy for acting on its live evaluation, a JSON document
// such as
//
//	{"format": 1,
//	 "rollback": {"metric": "accuracy", "below": 0.7, "min_labels": 200},
//	 "retrain": {"drift_psi_above": 0.25, "live_roc_auc_below": 0.8, "min_labels": 200, "cooldown": "1h"},
//	 "promote": {"metric": "roc_auc", "min_gain": 0.02, "min_labels": 200},
//	 "live_metric_min_labels": 100}
//
// Every rule is optional; a policy with none only monitors. The schema is PolicySchema;
// ParsePolicy reads a document, fills in the defaults and validates it. How Evaluate applies
// the rules is documented there.
type Policy struct {
	// Format is PolicyFormat (absent means PolicyFormat).
	Format int `json:"format"`
	// LiveMetricMinLabels is the number of labels from which live metrics are shown next to
	// the holdout ones (in the predict response); default 100. It does not gate any rule.
	LiveMetricMinLabels int           `json:"live_metric_min_labels"`
	Rollback            *RollbackRule `json:"rollback,omitempty"`
	Retrain             *RetrainRule  `json:"retrain,omitempty"`
	Promote             *PromoteRule  `json:"promote,omitempty"`
	// Shadow says whether the model's challenger, when it has one, scores the champion's
	// requests in shadow (see ShadowOn): absent means yes, false turns it off.
	Shadow *bool `json:"shadow,omitempty"`
	// Webhook, when set, is an http or https URL that every decision recorded in the audit
	// trail is POSTed to as JSON.
	Webhook string `json:"webhook,omitempty"`
}

// ShadowOn reports whether a challenger scores in shadow under p: unless p says
// "shadow": false. A nil policy leaves it on.
func (p *Policy) ShadowOn() bool {
	return p == nil || p.Shadow == nil || *p.Shadow
}

// RollbackRule moves the champion alias back to the previous good version when the champion's
// live Metric is, with 95% confidence, below Below over at least MinLabels labels.
type RollbackRule struct {
	// Metric is accuracy (the default), roc_auc, sensitivity or specificity.
	Metric string `json:"metric"`
	// Below is the threshold, in (0, 1]; required.
	Below float64 `json:"below"`
	// MinLabels is the fewest labelled outcomes to act on; default 200.
	MinLabels int `json:"min_labels"`
	// Cooldown is the least time between two rollbacks, a Go duration ("90m", "1h");
	// default "1h", "0s" for none.
	Cooldown string `json:"cooldown"`
}

// RetrainRule starts a retraining job when the inputs drift or the live ROC AUC falls. At
// least one of DriftPSIAbove, ScorePSIAbove and LiveROCAUCBelow is required; 0 turns one off.
type RetrainRule struct {
	// DriftPSIAbove fires when the largest PSI of the inputs exceeds it, over at least
	// MinRecords records.
	DriftPSIAbove float64 `json:"drift_psi_above,omitempty"`
	// ScorePSIAbove fires when the PSI of the score exceeds it, over at least MinRecords
	// records.
	ScorePSIAbove float64 `json:"score_psi_above,omitempty"`
	// LiveROCAUCBelow fires when the live ROC AUC is, with 95% confidence, below it, over at
	// least MinLabels labels.
	LiveROCAUCBelow float64 `json:"live_roc_auc_below,omitempty"`
	// MinLabels defaults to 200, MinRecords (drift) to 500.
	MinLabels  int `json:"min_labels"`
	MinRecords int `json:"min_records"`
	// Cooldown is the least time between two retrainings; default "1h".
	Cooldown string `json:"cooldown"`
	// IngestWindow, when set ("30d", "720h"), adds to the retraining's data the labelled
	// records ingested for the dataset within that window (registry.TrainRequest.IngestWindow).
	IngestWindow string `json:"ingest_window,omitempty"`
}

// PromoteRule moves the champion alias to the challenger when, on the same live traffic, the
// challenger's Metric beats the champion's by more than MinGain with 95% confidence.
type PromoteRule struct {
	// Metric is roc_auc (the default), accuracy, sensitivity or specificity.
	Metric string `json:"metric"`
	// MinGain is the gain of challenger over champion that the lower 95% bound of the gain
	// must exceed, in (0, 1); default 0.02. A positive margin keeps a challenger of equal
	// quality from being promoted on noise when the rule is evaluated again and again.
	MinGain float64 `json:"min_gain"`
	// MinLabels is the fewest shadow labels (outcomes scored by both) to act on; default 200.
	MinLabels int `json:"min_labels"`
	// Cooldown is the least time between two promotions; default "1h".
	Cooldown string `json:"cooldown"`
}

//go:embed policy.schema.json
var policySchema []byte

// PolicySchema returns the JSON Schema (draft 2020-12) of the policy document, for the API.
func PolicySchema() []byte { return bytes.Clone(policySchema) }

// ParsePolicy reads a JSON policy document, fills in the defaults and validates it. Errors
// are EINVALID *pulse.Error values naming the field, such as "rollback.below".
func ParsePolicy(b []byte) (*Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		if f := unknownField(b); f != "" {
			return nil, pulse.FieldErrorf(pulse.EINVALID, f, "policy: unknown field %q", f)
		}
		return nil, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, pulse.Errorf(pulse.EINVALID, "policy: want one JSON object, found more after it")
	}
	if err := p.normalize(); err != nil {
		return nil, err
	}
	return &p, nil
}

// decodeError turns a JSON decoding error into an EINVALID *pulse.Error naming the field.
func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return pulse.Errorf(pulse.EINVALID, "policy: got a JSON %s, want an object", te.Value)
		}
		return pulse.FieldErrorf(pulse.EINVALID, field, "policy: %s: got a JSON %s, want %s", field, te.Value, jsonType(te.Type.Kind().String()))
	case errors.As(err, &se):
		return pulse.Errorf(pulse.EINVALID, "policy: invalid JSON at byte %d: %v", se.Offset, err)
	case errors.Is(err, io.EOF):
		return pulse.Errorf(pulse.EINVALID, "policy: empty document, want a JSON object")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return pulse.FieldErrorf(pulse.EINVALID, name, "policy: unknown field %q", name)
	}
	return pulse.Errorf(pulse.EINVALID, "policy: %v", err)
}

// unknownField returns the path of the first field of document b (in key order) that a
// Policy does not have, such as "rollback.extra", or "" when there is none or b is not an
// object. encoding/json names an unknown field without its path.
func unknownField(b []byte) string {
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil {
		return ""
	}
	rules := map[string]reflect.Type{
		"rollback": reflect.TypeFor[RollbackRule](),
		"retrain":  reflect.TypeFor[RetrainRule](),
		"promote":  reflect.TypeFor[PromoteRule](),
	}
	known := jsonNames(reflect.TypeFor[Policy]())
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if !slices.Contains(known, k) {
			return k
		}
		t, ok := rules[k]
		if !ok {
			continue
		}
		var sub map[string]json.RawMessage
		if json.Unmarshal(top[k], &sub) != nil {
			continue
		}
		names := jsonNames(t)
		for _, kk := range slices.Sorted(maps.Keys(sub)) {
			if !slices.Contains(names, kk) {
				return k + "." + kk
			}
		}
	}
	return ""
}

// jsonNames returns the JSON names of the fields of struct type t.
func jsonNames(t reflect.Type) []string {
	names := make([]string, 0, t.NumField())
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}

// jsonType names a Go kind as a JSON type.
func jsonType(kind string) string {
	switch kind {
	case "float64", "int":
		return "a number"
	case "string":
		return "a string"
	case "ptr", "struct":
		return "an object"
	}
	return kind
}

// Validate fills in p's defaults and checks it, as ParsePolicy does.
func (p *Policy) Validate() error {
	return p.normalize()
}

func (p *Policy) normalize() error {
	if p.Format == 0 {
		p.Format = PolicyFormat
	}
	if p.Format != PolicyFormat {
		return pulse.FieldErrorf(pulse.EINVALID, "format", "policy: format: got %d, want %d", p.Format, PolicyFormat)
	}
	if err := defaultCount(&p.LiveMetricMinLabels, DefaultLiveMetricMinLabels, "live_metric_min_labels"); err != nil {
		return err
	}
	if p.Webhook != "" {
		u, err := url.Parse(p.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return pulse.FieldErrorf(pulse.EINVALID, "webhook", "policy: webhook: got %q, want an http or https URL", p.Webhook)
		}
	}
	if r := p.Rollback; r != nil {
		if r.Metric == "" {
			r.Metric = DefaultRollbackMetric
		}
		if err := checkMetric(r.Metric, "rollback.metric"); err != nil {
			return err
		}
		if err := checkRate(r.Below, "rollback.below"); err != nil {
			return err
		}
		if err := defaultCount(&r.MinLabels, DefaultMinLabels, "rollback.min_labels"); err != nil {
			return err
		}
		if err := defaultCooldown(&r.Cooldown, "rollback.cooldown"); err != nil {
			return err
		}
	}
	if r := p.Retrain; r != nil {
		for _, c := range []struct {
			v     float64
			field string
		}{{r.DriftPSIAbove, "retrain.drift_psi_above"}, {r.ScorePSIAbove, "retrain.score_psi_above"}} {
			if !(c.v >= 0 && c.v <= 10) {
				return pulse.FieldErrorf(pulse.EINVALID, c.field, "policy: %s: got %v, want a PSI in (0, 10], or 0 for none", c.field, c.v)
			}
		}
		if r.LiveROCAUCBelow != 0 {
			if err := checkRate(r.LiveROCAUCBelow, "retrain.live_roc_auc_below"); err != nil {
				return err
			}
		}
		if r.DriftPSIAbove == 0 && r.ScorePSIAbove == 0 && r.LiveROCAUCBelow == 0 {
			return pulse.FieldErrorf(pulse.EINVALID, "retrain", "policy: retrain: want at least one of drift_psi_above, score_psi_above and live_roc_auc_below")
		}
		if err := defaultCount(&r.MinLabels, DefaultMinLabels, "retrain.min_labels"); err != nil {
			return err
		}
		if err := defaultCount(&r.MinRecords, DefaultMinRecords, "retrain.min_records"); err != nil {
			return err
		}
		if err := defaultCooldown(&r.Cooldown, "retrain.cooldown"); err != nil {
			return err
		}
		if r.IngestWindow != "" && !validWindow(r.IngestWindow) {
			return pulse.FieldErrorf(pulse.EINVALID, "retrain.ingest_window", "policy: retrain.ingest_window: got %q, want a positive duration such as \"30d\" or \"720h\"", r.IngestWindow)
		}
	}
	if r := p.Promote; r != nil {
		if r.Metric == "" {
			r.Metric = DefaultPromoteMetric
		}
		if err := checkMetric(r.Metric, "promote.metric"); err != nil {
			return err
		}
		if r.MinGain == 0 {
			r.MinGain = DefaultMinGain
		}
		if !(r.MinGain > 0 && r.MinGain < 1) {
			return pulse.FieldErrorf(pulse.EINVALID, "promote.min_gain", "policy: promote.min_gain: got %v, want a number in (0, 1)", r.MinGain)
		}
		if err := defaultCount(&r.MinLabels, DefaultMinLabels, "promote.min_labels"); err != nil {
			return err
		}
		if err := defaultCooldown(&r.Cooldown, "promote.cooldown"); err != nil {
			return err
		}
	}
	return nil
}

func checkMetric(m, field string) error {
	if !slices.Contains(ruleMetrics, m) {
		return pulse.FieldErrorf(pulse.EINVALID, field, "policy: %s: got %q, want one of %s", field, m, strings.Join(ruleMetrics, ", "))
	}
	return nil
}

// checkRate checks that v is in (0, 1].
func checkRate(v float64, field string) error {
	if v == 0 {
		return pulse.FieldErrorf(pulse.EINVALID, field, "policy: %s: required, a number in (0, 1]", field)
	}
	if !(v >= 0 && v <= 1) {
		return pulse.FieldErrorf(pulse.EINVALID, field, "policy: %s: got %v, want a number in (0, 1]", field, v)
	}
	return nil
}

func defaultCount(v *int, def int, field string) error {
	if *v == 0 {
		*v = def
	}
	if *v < 1 || *v > maxMinLabels {
		return pulse.FieldErrorf(pulse.EINVALID, field, "policy: %s: got %d, want 1 to %d", field, *v, maxMinLabels)
	}
	return nil
}

func defaultCooldown(v *string, field string) error {
	if *v == "" {
		*v = DefaultCooldown
	}
	d, err := time.ParseDuration(*v)
	if err != nil || d < 0 {
		return pulse.FieldErrorf(pulse.EINVALID, field, "policy: %s: got %q, want a duration such as \"30m\", \"1h\" or \"0s\"", field, *v)
	}
	return nil
}

// validWindow reports whether s is a data window as training reads it: whole days ("90d")
// or a positive Go duration ("720h").
func validWindow(s string) bool {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		return err == nil && n > 0
	}
	d, err := time.ParseDuration(s)
	return err == nil && d > 0
}

// cooldown returns the duration of a cooldown that normalize has checked.
func cooldown(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}
