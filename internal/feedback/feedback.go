// Package feedback joins ground truth to the predictions it is about.
//
// A label arrives by REST (POST /v1/feedback) or on the feedback topic, possibly days after the
// prediction, as {prediction_id, label, observed_at}. Submit checks each item, finds the stored
// predictions of its id in the lake (lake.FindPredictions: the served prediction and any
// shadow challenger's under the same id, whether compacted or still in the write-ahead log,
// after restarts too), and stores one outcome per stored prediction in the lake's outcomes
// table, durably, before it returns. Then it hands the outcomes to Config.OnOutcome, where
// live evaluation listens.
//
// Each item ends in one of four statuses:
//
//   - joined: outcomes were stored.
//   - duplicate: the prediction id was labelled before (the outcomes table holds it, so this
//     survives restarts; within one Submit, the first item of an id wins). Nothing is stored:
//     the first label of a prediction is the one kept.
//   - unknown: no stored prediction has the id, or its time (a prediction id is a UUIDv7,
//     which carries the time it was made) is older than Config.Retention or in the future, so
//     it is not searched. The reason says which.
//   - invalid: a field is wrong (prediction_id not a UUIDv7, label not 0/1/true/false,
//     observed_at not RFC 3339 or too far in the future); the result names the field.
//
// Labels for one prediction id are serialised (the duplicate check and the append are one
// critical section), so concurrent Submits never store an id twice.
package feedback

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/monitor"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Sources of feedback, recorded in each outcome.
const (
	SourceAPI   = "api"
	SourceKafka = "kafka"
)

// Defaults and limits.
const (
	// DefaultRetention is Config.Retention when 0: labels for predictions made longer ago are
	// reported unknown without a search.
	DefaultRetention = 90 * 24 * time.Hour
	// MaxItems is the most items one Submit takes.
	MaxItems = 10_000
	// maxSkew is how far in the future observed_at and a prediction id's time may be.
	maxSkew = 5 * time.Minute
)

// Feedback is one label as received.
type Feedback struct {
	// PredictionID is the prediction_id of a predict answer.
	PredictionID string
	// Label is the ground truth as a JSON value: 0, 1, true, false, or one of them in a
	// string ("1", "true").
	Label json.RawMessage
	// ObservedAt is when the truth was observed, in RFC 3339 (with a time zone).
	ObservedAt string
	// Source is SourceAPI or SourceKafka; ID the REST request id or the CloudEvent id that
	// carried the label. Both are stored with the outcomes.
	Source string
	ID     string
}

// Status is what became of a Feedback item.
type Status string

// Statuses of a Result.
const (
	Joined    Status = "joined"
	Duplicate Status = "duplicate"
	Unknown   Status = "unknown"
	Invalid   Status = "invalid"
)

// Result is what became of one item.
type Result struct {
	Status Status
	// Reason says why, for every status but Joined; Field names the field at fault of an
	// Invalid item (prediction_id, label or observed_at).
	Reason string
	Field  string
	// Model and Version are those of the served prediction of a Joined item; Outcomes is the
	// number of outcome rows stored (1 plus its shadow predictions).
	Model    string
	Version  int
	Outcomes int
}

// Summary counts results by status.
type Summary struct {
	Received  int `json:"received"`
	Joined    int `json:"joined"`
	Duplicate int `json:"duplicate"`
	Unknown   int `json:"unknown"`
	Invalid   int `json:"invalid"`
	// Outcomes is the number of outcome rows stored.
	Outcomes int `json:"outcomes"`
}

// Summarize counts rs by status.
func Summarize(rs []Result) Summary {
	s := Summary{Received: len(rs)}
	for _, r := range rs {
		switch r.Status {
		case Joined:
			s.Joined++
		case Duplicate:
			s.Duplicate++
		case Unknown:
			s.Unknown++
		case Invalid:
			s.Invalid++
		}
		s.Outcomes += r.Outcomes
	}
	return s
}

// Outcome is a stored prediction joined to its label: a row of the lake's outcomes table.
type Outcome = lake.Outcome

// MonitorOutcome returns o as live evaluation takes it (monitor.LiveWindow.Add).
func MonitorOutcome(o *Outcome) monitor.Outcome {
	return monitor.Outcome{Probability: o.Probability, Predicted: o.Predicted, Label: o.Label, PredictedAt: o.ScoredAt, ObservedAt: o.ObservedAt}
}

// Lake is what the service needs of the lake; *lake.Lake implements it.
type Lake interface {
	FindPredictions(ctx context.Context, ids []string) ([]lake.Match, error)
	Labelled(ctx context.Context, ids []string) ([]bool, error)
	AppendOutcomes(ctx context.Context, recs ...lake.Outcome) error
	ReadOutcomes(ctx context.Context, model string, since time.Time) ([]lake.Outcome, error)
}

// Config configures a Service.
type Config struct {
	// Lake holds the predictions and stores the outcomes. Required.
	Lake Lake
	// Retention is how old a prediction may be and still be joined, by the time in its id. 0
	// means DefaultRetention. The lake keeps its files longer (nothing deletes them); this
	// bounds how far back a label makes the join read.
	Retention time.Duration
	// OnOutcome, when set, receives the outcomes of each Submit once they are durable, in the
	// order they were stored, one call at a time (it runs inside the critical section that
	// orders the appends, so it must be quick: hand the outcomes over, do not do I/O).
	OnOutcome func([]Outcome)
	// Logger and Registerer: nil discards logs and registers no metrics.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service joins feedback to predictions. Its methods are safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger
	m   *metrics
	// mu makes the duplicate check and the append of outcomes one step.
	mu sync.Mutex
}

// New validates cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Lake == nil {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "Lake", "feedback: config: Lake is nil, want the lake")
	}
	if cfg.Retention < 0 {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "Retention", "feedback: config: Retention is %v, want 0 (the default) or more", cfg.Retention)
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, log: cfg.Logger, m: m}, nil
}

// Retention is the configured retention of the join.
func (s *Service) Retention() time.Duration { return s.cfg.Retention }

// Recent returns the stored outcomes of every model observed at or after since, oldest first:
// what live evaluation reads on start so that a restart does not empty its windows. It reads
// the outcomes table (the partitions of predictions made within the retention before since);
// outcomes appended but not yet compacted are not included, and at start there are none
// (opening the lake compacts what the previous run left).
func (s *Service) Recent(ctx context.Context, since time.Time) ([]Outcome, error) {
	all, err := s.cfg.Lake.ReadOutcomes(ctx, "", since.Add(-s.cfg.Retention))
	if err != nil {
		return nil, fmt.Errorf("feedback: recent outcomes: %w", err)
	}
	out := all[:0]
	for _, o := range all {
		if !o.ObservedAt.Before(since) {
			out = append(out, o)
		}
	}
	return out, nil
}

// item is a checked Feedback.
type item struct {
	id       string // lower case
	made     time.Time
	label    int
	observed time.Time
}

// Submit joins items to their predictions and stores the outcomes; it returns one Result per
// item, in order. An error means nothing was stored (the lake could not be read, or could
// not store the outcomes durably: EUNAVAILABLE, retry); more than MaxItems items is
// ETOOLARGE.
func (s *Service) Submit(ctx context.Context, items []Feedback) ([]Result, error) {
	if len(items) > MaxItems {
		return nil, pulse.Errorf(pulse.ETOOLARGE, "feedback: %d items, want at most %d", len(items), MaxItems)
	}
	start := time.Now()
	now := s.cfg.Now().UTC()
	results := make([]Result, len(items))
	checked := make([]item, len(items))
	first := make(map[string]int, len(items)) // id -> first item of it
	var ids []string
	var idx []int // item of each id
	oldest := now.Add(-s.cfg.Retention)
	for i := range items {
		it, field, err := check(&items[i], now)
		when := it.made
		if err != nil {
			results[i] = Result{Status: Invalid, Field: field, Reason: err.Error()}
			continue
		}
		checked[i] = it
		switch {
		case when.Before(oldest):
			results[i] = Result{Status: Unknown, Reason: fmt.Sprintf("prediction_id: made %s, before the join's retention of %s (since %s): not searched",
				when.Format(time.RFC3339), days(s.cfg.Retention), oldest.Format(time.RFC3339))}
			continue
		case when.After(now.Add(maxSkew)):
			results[i] = Result{Status: Unknown, Reason: fmt.Sprintf("prediction_id: made %s, in the future: no such prediction", when.Format(time.RFC3339))}
			continue
		}
		if j, ok := first[it.id]; ok {
			results[i] = Result{Status: Duplicate, Reason: fmt.Sprintf("prediction_id: the same as item %d of this batch; only the first is used", j)}
			continue
		}
		first[it.id] = i
		ids = append(ids, it.id)
		idx = append(idx, i)
	}

	var matches []lake.Match
	if len(ids) > 0 {
		var err error
		if matches, err = s.cfg.Lake.FindPredictions(ctx, ids); err != nil {
			return nil, fmt.Errorf("feedback: join: %w", err)
		}
	}
	s.m.joinSeconds.Observe(time.Since(start).Seconds())
	// found[k] are the matches of ids[k]; matches are ordered by index.
	found := make([][]lake.Match, len(ids))
	for a := 0; a < len(matches); {
		b := a
		for b < len(matches) && matches[b].Index == matches[a].Index {
			b++
		}
		found[matches[a].Index] = matches[a:b]
		a = b
	}
	var joinedIDs []string
	var joinedK []int
	for k, i := range idx {
		if len(found[k]) == 0 {
			results[i] = Result{Status: Unknown, Reason: fmt.Sprintf("prediction_id: no stored prediction has this id (searched the predictions made around %s, the time in the id)",
				checked[i].made.Format(time.RFC3339))}
			continue
		}
		joinedIDs = append(joinedIDs, ids[k])
		joinedK = append(joinedK, k)
	}

	if len(joinedIDs) > 0 {
		if err := s.store(ctx, items, checked, idx, joinedIDs, joinedK, found, results, now); err != nil {
			return nil, err
		}
	}
	for i := range results {
		s.m.labels.WithLabelValues(source(items[i].Source), string(results[i].Status)).Inc()
	}
	s.m.submitSeconds.Observe(time.Since(start).Seconds())
	return results, nil
}

// store checks the joined ids for earlier labels and stores the outcomes of the others, as
// one critical section.
func (s *Service) store(ctx context.Context, items []Feedback, checked []item, idx []int, ids []string, ks []int, found [][]lake.Match, results []Result, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	labelled, err := s.cfg.Lake.Labelled(ctx, ids)
	if err != nil {
		return fmt.Errorf("feedback: duplicate check: %w", err)
	}
	var outs []Outcome
	for n, k := range ks {
		i := idx[k]
		if labelled[n] {
			results[i] = Result{Status: Duplicate, Reason: "prediction_id: labelled before; the first label is kept"}
			continue
		}
		it, f := checked[i], &items[i]
		for _, m := range found[k] {
			outs = append(outs, Outcome{
				PredictionID: it.id, Model: m.Model, Version: m.Version, Alias: m.Alias, Shadow: m.Shadow,
				Probability: m.Probability, Predicted: m.Label, Threshold: m.Threshold, Label: it.label,
				ScoredAt: m.ScoredAt, ObservedAt: it.observed, ReceivedAt: now, Source: source(f.Source), FeedbackID: f.ID,
			})
		}
		served := found[k][0] // served before shadow
		results[i] = Result{Status: Joined, Model: served.Model, Version: served.Version, Outcomes: len(found[k])}
	}
	if len(outs) == 0 {
		return nil
	}
	// Not cancelled with the request: once the records reach the WAL's group commit they may
	// be written anyway, and "none was kept" must then hold. The fsync is bounded.
	if err := s.cfg.Lake.AppendOutcomes(context.WithoutCancel(ctx), outs...); err != nil {
		s.log.ErrorContext(ctx, "outcomes not stored", "err", err, "outcomes", len(outs))
		return pulse.Errorf(pulse.EUNAVAILABLE, "feedback: the outcomes could not be stored durably, so none was kept; retry")
	}
	s.m.outcomes.Add(float64(len(outs)))
	if s.cfg.OnOutcome != nil {
		s.cfg.OnOutcome(outs)
	}
	return nil
}

// check validates one item; on error it returns the field at fault.
func check(f *Feedback, now time.Time) (item, string, error) {
	if f.PredictionID == "" {
		return item{}, "prediction_id", fmt.Errorf("prediction_id: required")
	}
	made, err := lake.PredictionTime(f.PredictionID)
	if err != nil {
		return item{}, "prediction_id", err
	}
	label, err := parseLabel(f.Label)
	if err != nil {
		return item{}, "label", err
	}
	if f.ObservedAt == "" {
		return item{}, "observed_at", fmt.Errorf("observed_at: required, an RFC 3339 time such as 2026-11-30T09:00:00Z")
	}
	observed, err := time.Parse(time.RFC3339Nano, f.ObservedAt)
	if err != nil {
		return item{}, "observed_at", fmt.Errorf("observed_at: got %q, want an RFC 3339 time such as 2026-11-30T09:00:00Z", truncate(f.ObservedAt, 60))
	}
	if observed.After(now.Add(maxSkew)) {
		return item{}, "observed_at", fmt.Errorf("observed_at: got %s, after the time it was received (%s): want a time in the past", f.ObservedAt, now.Format(time.RFC3339))
	}
	return item{id: strings.ToLower(f.PredictionID), made: made, label: label, observed: observed.UTC()}, "", nil
}

// parseLabel reads a label: 0, 1, true or false, as JSON or inside a JSON string.
func parseLabel(raw json.RawMessage) (int, error) {
	v := bytes.TrimSpace(raw)
	if len(v) == 0 || string(v) == "null" {
		return 0, fmt.Errorf("label: required: 0, 1, true or false")
	}
	text := string(v)
	if v[0] == '"' {
		s, err := strconv.Unquote(text)
		if err != nil {
			return 0, fmt.Errorf("label: got %s, want 0, 1, true or false", truncate(text, 40))
		}
		switch s {
		case "0", "false":
			return 0, nil
		case "1", "true":
			return 1, nil
		}
		return 0, fmt.Errorf("label: got the string %s, want 0, 1, true or false", truncate(text, 40))
	}
	switch text {
	case "true":
		return 1, nil
	case "false":
		return 0, nil
	}
	f, err := strconv.ParseFloat(text, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("label: got %s, want 0, 1, true or false", truncate(text, 40))
	case f == 0:
		return 0, nil
	case f == 1:
		return 1, nil
	}
	return 0, fmt.Errorf("label: got %s, want 0 or 1 (or true or false)", truncate(text, 40))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func source(s string) string {
	if s == "" {
		return SourceAPI
	}
	return s
}

// days formats a retention in days when it is a whole number of them.
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// metrics are the service's Prometheus collectors.
type metrics struct {
	labels        *prometheus.CounterVec
	outcomes      prometheus.Counter
	joinSeconds   prometheus.Histogram
	submitSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		labels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pulse_feedback_labels_total",
			Help: "Feedback labels received, by source (api, kafka) and status (joined, duplicate, unknown, invalid).",
		}, []string{"source", "status"}),
		outcomes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pulse_feedback_outcomes_total",
			Help: "Outcome rows stored in the lake (one per stored prediction of a joined label, shadow ones included).",
		}),
		joinSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pulse_feedback_join_seconds",
			Help:    "Time to check a batch of labels and find their predictions in the lake.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}),
		submitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pulse_feedback_submit_seconds",
			Help:    "Time from receiving a batch of labels to its outcomes being durable in the lake.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.labels, m.outcomes, m.joinSeconds, m.submitSeconds} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("feedback: register metrics: %w", err)
			}
		}
	}
	for _, src := range []string{SourceAPI, SourceKafka} { // the series exist from the start
		for _, st := range []Status{Joined, Duplicate, Unknown, Invalid} {
			m.labels.WithLabelValues(src, string(st))
		}
	}
	return m, nil
}
