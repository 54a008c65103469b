package evaluator

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/cloudmedical/pulse/internal/jobs"
	"github.com/cloudmedical/pulse/internal/monitor"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
)

// modelState is what the loop remembers of a model between evaluations.
type modelState struct {
	// lastKind is, per rule, the kind of the last decision recorded (see kindOf): a decision
	// of the same kind without an action is not recorded again.
	lastKind map[monitor.Action]string
	// lastAction is when each action was last carried out, for the cooldowns.
	lastAction map[monitor.Action]time.Time
	// unrecorded are actions carried out whose audit record could not be stored yet: they
	// are stored again before the model is evaluated again, and until they are the model is
	// not (the trail is what cooldowns and the previous good version are rebuilt from).
	unrecorded []unrecorded
}

type unrecorded struct {
	d       *pulse.Decision
	webhook string
}

// parsedPolicy is a model's current policy, parsed once per version.
type parsedPolicy struct {
	version int
	policy  *monitor.Policy
}

// tick evaluates every model that has a policy and refreshes the summaries and gauges.
func (e *Evaluator) tick(ctx context.Context) {
	now := e.cfg.Now()
	models, byName, err := e.readModels(ctx)
	if err != nil {
		e.log.Warn("evaluation skipped", "err", err)
		return
	}
	minLabels := map[string]int{}
	current := map[vkey]bool{}
	for _, m := range models {
		champion, challenger := m.Aliases[pulse.AliasChampion], m.Aliases[pulse.AliasChallenger]
		current[vkey{m.Name, champion}] = true
		current[vkey{m.Name, challenger}] = true
		doc := byName[m.Name]
		if doc == nil {
			continue
		}
		pol, err := e.policy(doc)
		if err != nil {
			e.log.Error("stored policy is invalid; model not evaluated", "model", m.Name, "policy_version", doc.Version, "err", err)
			continue
		}
		minLabels[m.Name] = pol.LiveMetricMinLabels
		if champion == 0 {
			continue
		}
		if err := e.evaluate(ctx, m.Name, champion, challenger, pol, doc.Version, now); err != nil && ctx.Err() == nil {
			e.log.Warn("evaluation failed", "model", m.Name, "err", err)
		}
	}
	e.refresh(now, current, minLabels)
}

// readModels reads every model and the current policies, and updates which models shadow their
// challenger: one whose challenger differs from its champion, unless its policy says
// "shadow": false.
func (e *Evaluator) readModels(ctx context.Context) ([]*pulse.Model, map[string]*pulse.PolicyDocument, error) {
	models, err := e.cfg.Models.Models(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("models unreadable: %w", err)
	}
	docs, err := e.cfg.Store.CurrentPolicies(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("policies unreadable: %w", err)
	}
	byName := make(map[string]*pulse.PolicyDocument, len(docs))
	for _, d := range docs {
		byName[d.Model] = d
	}
	shadowOff := map[string]bool{}
	shadowing := map[string]int{}
	for _, m := range models {
		var pol *monitor.Policy
		if doc := byName[m.Name]; doc != nil {
			pol, _ = e.policy(doc) // an invalid one is reported by tick
		}
		champion, challenger := m.Aliases[pulse.AliasChampion], m.Aliases[pulse.AliasChallenger]
		switch {
		case !pol.ShadowOn():
			shadowOff[m.Name] = true
		case challenger != 0 && challenger != champion:
			shadowing[m.Name] = challenger
		}
	}
	e.shadowOff.Store(&shadowOff)
	e.mu.Lock()
	e.shadowing = shadowing
	e.mu.Unlock()
	return models, byName, nil
}

// policy returns doc parsed, from the cache when its version was parsed before.
func (e *Evaluator) policy(doc *pulse.PolicyDocument) (*monitor.Policy, error) {
	if p, ok := e.policies[doc.Model]; ok && p.version == doc.Version {
		return p.policy, nil
	}
	p, err := monitor.ParsePolicy(doc.Policy)
	if err != nil {
		return nil, err
	}
	e.policies[doc.Model] = parsedPolicy{version: doc.Version, policy: p}
	return p, nil
}

// evaluate applies a model's policy to its current state and carries out the decisions.
func (e *Evaluator) evaluate(ctx context.Context, model string, champion, challenger int, pol *monitor.Policy, pv int, now time.Time) error {
	ms, err := e.modelState(ctx, model)
	if err != nil {
		return err
	}
	for len(ms.unrecorded) > 0 {
		u := ms.unrecorded[0]
		if !e.record(ctx, u.d, u.webhook) {
			return nil // the store still refuses: act on nothing until the trail holds it
		}
		ms.lastKind[monitor.Action(u.d.Rule)] = kindOf(u.d)
		ms.unrecorded = ms.unrecorded[1:]
	}
	st := monitor.State{Now: now, Champion: champion}
	e.mu.Lock()
	if vs := e.versions[vkey{model, champion}]; vs != nil {
		live := vs.live.Report(now)
		st.Live = &live
		if vs.drift != nil {
			drift := vs.drift.Report(now)
			st.Drift = &drift
		}
	}
	if challenger != 0 && challenger != champion && pol.ShadowOn() {
		st.Challenger = &monitor.Shadow{Version: challenger}
		if ps := e.pairs[pairKey{model, champion, challenger}]; ps != nil {
			a, b := ps.challenger.Report(now), ps.champion.Report(now)
			st.Challenger.Live, st.Challenger.Champion = &a, &b
		}
	}
	e.mu.Unlock()
	if pol.Rollback != nil {
		if st.PreviousGood, err = e.previousGood(ctx, model, champion); err != nil {
			return err
		}
	}
	st.LastRollback = ms.lastAction[monitor.ActionRollback]
	st.LastRetrain = ms.lastAction[monitor.ActionRetrain]
	st.LastPromote = ms.lastAction[monitor.ActionPromote]
	if pol.Retrain != nil {
		st.Retraining = e.retraining(ctx, model)
	}
	decisions, err := monitor.Evaluate(pol, st)
	if err != nil {
		return err
	}
	for _, d := range decisions {
		rec := &pulse.Decision{
			Model: model, Rule: string(d.Rule), Action: string(d.Action), Version: d.Version, Champion: champion,
			PolicyVersion: pv, Guard: d.Guard, Reason: d.Reason, Numbers: d.Numbers, At: d.At,
		}
		if d.Action != monitor.ActionNone {
			e.execute(ctx, rec, pol)
			if rec.Error == "" {
				ms.lastAction[d.Action] = now
			}
		}
		kind := kindOf(rec)
		if rec.Action == string(monitor.ActionNone) && kind == ms.lastKind[d.Rule] {
			continue
		}
		if rec.Error != "" && kind == ms.lastKind[d.Rule] {
			continue // the same failure again: it is retried, not recorded again
		}
		switch {
		case e.record(ctx, rec, pol.Webhook):
			ms.lastKind[d.Rule] = kind
		case rec.Action != string(monitor.ActionNone) && rec.Error == "":
			ms.unrecorded = append(ms.unrecorded, unrecorded{rec, pol.Webhook})
		}
	}
	return nil
}

// kindOf is what a decision's record must differ in from the rule's last one to be recorded
// again: the policy version, and the action, or the guard (or error) without the numbers,
// which change with every label.
func kindOf(d *pulse.Decision) string {
	k := "policy " + strconv.Itoa(d.PolicyVersion) + ": "
	switch {
	case d.Error != "":
		return k + "failed " + d.Action + ": " + withoutNumbers(d.Error)
	case d.Action != string(monitor.ActionNone):
		return k + "action " + d.Action
	case d.Guard == "":
		return k + "ok"
	}
	return k + "guard: " + withoutNumbers(d.Guard)
}

// withoutNumbers drops the digits and the dots, minus signs and percent signs around them.
func withoutNumbers(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r == '.' || r == '%' {
			return -1
		}
		return r
	}, s)
}

// modelState returns the loop's memory of a model, reading the latest entries of its trail
// the first time: which kind each rule last recorded, when each action was last taken.
func (e *Evaluator) modelState(ctx context.Context, model string) (*modelState, error) {
	if ms, ok := e.states[model]; ok {
		return ms, nil
	}
	ms := &modelState{lastKind: map[monitor.Action]string{}, lastAction: map[monitor.Action]time.Time{}}
	recent, err := e.cfg.Store.ListDecisions(ctx, model, pulse.DecisionQuery{Limit: 100})
	if err != nil {
		return nil, fmt.Errorf("read the audit trail: %w", err)
	}
	for _, d := range recent {
		if _, ok := ms.lastKind[monitor.Action(d.Rule)]; !ok {
			ms.lastKind[monitor.Action(d.Rule)] = kindOf(d)
		}
	}
	for _, a := range []monitor.Action{monitor.ActionRollback, monitor.ActionRetrain, monitor.ActionPromote} {
		ds, err := e.cfg.Store.ListDecisions(ctx, model, pulse.DecisionQuery{Action: string(a), Limit: 20})
		if err != nil {
			return nil, fmt.Errorf("read the audit trail: %w", err)
		}
		for _, d := range ds {
			if d.Error == "" {
				ms.lastAction[a] = d.At
				break
			}
		}
	}
	e.states[model] = ms
	return ms, nil
}

// previousGood returns the version a rollback restores: the newest earlier champion (from
// the alias history) that is not the champion now and that no rollback moved away from; 0
// when there is none.
func (e *Evaluator) previousGood(ctx context.Context, model string, champion int) (int, error) {
	hist, err := e.cfg.Store.AliasHistory(ctx, model, pulse.AliasChampion, 100)
	if err != nil {
		return 0, fmt.Errorf("read the champion's history: %w", err)
	}
	rolled, err := e.cfg.Store.ListDecisions(ctx, model, pulse.DecisionQuery{Action: string(monitor.ActionRollback), Limit: 1000})
	if err != nil {
		return 0, fmt.Errorf("read the audit trail: %w", err)
	}
	bad := map[int]bool{champion: true, 0: true}
	for _, d := range rolled {
		if d.Error == "" {
			bad[d.Champion] = true
		}
	}
	for _, h := range hist {
		for _, v := range []int{h.Version, h.Previous} {
			if !bad[v] {
				return v, nil
			}
		}
	}
	return 0, nil
}

// retraining reports whether a training job of the model is queued or running. When the
// queue cannot say, it answers true: better no retraining than two.
func (e *Evaluator) retraining(ctx context.Context, model string) bool {
	if e.cfg.Jobs == nil {
		return false
	}
	js, err := e.cfg.Jobs.List(ctx, jobs.Filter{Model: model, Kind: jobs.KindTrain, Limit: 20})
	if err != nil {
		e.log.Warn("job queue unreadable; no retraining started", "model", model, "err", err)
		return true
	}
	for _, j := range js {
		if !j.Finished() {
			return true
		}
	}
	return false
}

// execute carries out a decision's action, recording in d what it did or why it failed.
func (e *Evaluator) execute(ctx context.Context, d *pulse.Decision, pol *monitor.Policy) {
	var err error
	switch monitor.Action(d.Action) {
	case monitor.ActionRollback:
		_, err = e.cfg.Models.SetAlias(ctx, d.Model, pulse.AliasChampion, d.Version)
		d.Result = fmt.Sprintf("champion moved from version %d back to version %d", d.Champion, d.Version)
	case monitor.ActionPromote:
		if _, err = e.cfg.Models.SetAlias(ctx, d.Model, pulse.AliasChampion, d.Version); err == nil {
			d.Result = fmt.Sprintf("champion moved from version %d to the challenger, version %d", d.Champion, d.Version)
			if derr := e.cfg.Models.DeleteAlias(ctx, d.Model, pulse.AliasChallenger); derr != nil && pulse.ErrorCode(derr) != pulse.ENOTFOUND {
				d.Result += "; the challenger alias could not be removed: " + derr.Error()
			} else {
				d.Result += "; challenger alias removed"
			}
		}
	case monitor.ActionRetrain:
		err = e.retrain(ctx, d, pol)
	}
	if err != nil {
		d.Error = err.Error()
		d.Result = ""
		e.log.Error("policy action failed", "model", d.Model, "action", d.Action, "version", d.Version, "err", err)
	}
}

// retrain enqueues a training job that redoes the champion's training on the newest version
// of its dataset; the job's gate makes the new version challenger.
func (e *Evaluator) retrain(ctx context.Context, d *pulse.Decision, pol *monitor.Policy) error {
	if e.cfg.Jobs == nil {
		return errNoJobs
	}
	v, err := e.cfg.Models.Version(ctx, d.Model, d.Champion)
	if err != nil {
		return err
	}
	req := RetrainRequest(v)
	if pol.Retrain != nil {
		req.IngestWindow = pol.Retrain.IngestWindow
	}
	j, _, err := e.cfg.Jobs.Enqueue(ctx, d.Model, req, jobs.EnqueueOptions{
		Trigger:     "policy",
		RequestedBy: fmt.Sprintf("policy version %d of model %s", d.PolicyVersion, d.Model),
		Gate:        &jobs.Gate{Metric: "roc_auc", Challenger: true}, // it proves itself in shadow
	})
	if err != nil {
		return err
	}
	d.JobID = j.ID
	d.Result = fmt.Sprintf("job %d enqueued: version %d's training redone on the newest version of dataset %q", j.ID, v.Version, req.Dataset)
	if req.IngestWindow != "" {
		d.Result += " with the records ingested within " + req.IngestWindow
	}
	d.Result += "; the new version becomes challenger"
	return nil
}

// RetrainRequest is the training request that redoes v's training on the newest version of
// its dataset: the same target, algorithm, parameters (as chosen, without searching again),
// inputs, seed, holdout and cross-validation folds.
func RetrainRequest(v *pulse.ModelVersion) registry.TrainRequest {
	lin := v.Lineage
	req := registry.TrainRequest{
		Dataset:   lin.DatasetName,
		Target:    lin.Target,
		Algorithm: lin.Algorithm,
		Params:    maps.Clone(lin.Params),
		Seed:      lin.Seed,
		CVFolds:   lin.CVFolds,
	}
	if req.Dataset == "" {
		req.Dataset = lin.DatasetID
	}
	if req.Target == "" {
		req.Target = v.Target
	}
	if req.Algorithm == "" {
		req.Algorithm = v.Algorithm
	}
	holdout := lin.Holdout // 0: none was kept, which the request says with 0 too
	req.Holdout = &holdout
	if req.CVFolds == 0 {
		req.CVFolds = -1 // none was done
	}
	for _, f := range v.Features {
		req.Features = append(req.Features, f.Name)
	}
	return req
}

// record appends a decision to the audit trail, then publishes it and sends it to the
// webhook. It reports whether the decision was stored.
func (e *Evaluator) record(ctx context.Context, d *pulse.Decision, webhook string) bool {
	if err := e.cfg.Store.AppendDecision(ctx, d); err != nil {
		e.log.Error("decision not recorded in the audit trail", "model", d.Model, "rule", d.Rule, "action", d.Action, "err", err)
		return false
	}
	e.m.decisions.WithLabelValues(d.Model, d.Rule, d.Action).Inc()
	level := "decision"
	if d.Action != string(monitor.ActionNone) {
		level = "action"
	}
	e.log.Info("policy "+level, "model", d.Model, "rule", d.Rule, "action", d.Action, "version", d.Version,
		"champion", d.Champion, "guard", d.Guard, "reason", d.Reason, "result", d.Result, "error", d.Error, "id", d.ID)
	if e.cfg.Notifier != nil {
		e.cfg.Notifier.DecisionRecorded(ctx, d)
	}
	if webhook != "" {
		e.hooks.send(webhook, d)
	}
	return true
}

// webhookFailed records a webhook that failed every attempt in the model's trail.
func (e *Evaluator) webhookFailed(ctx context.Context, url string, d *pulse.Decision, attempts int, err error) {
	rec := &pulse.Decision{
		Model: d.Model, Rule: "webhook", Action: string(monitor.ActionNone), Champion: d.Champion, PolicyVersion: d.PolicyVersion,
		Reason:  fmt.Sprintf("decision %d (%s: %s) was not delivered to %s", d.ID, d.Rule, d.Action, url),
		Numbers: map[string]float64{"decision_id": float64(d.ID), "attempts": float64(attempts)},
		Error:   err.Error(), At: e.cfg.Now(),
	}
	if err := e.cfg.Store.AppendDecision(ctx, rec); err != nil {
		e.log.Error("webhook failure not recorded", "model", d.Model, "err", err)
		return
	}
	e.m.decisions.WithLabelValues(rec.Model, rec.Rule, rec.Action).Inc()
}

// refresh recomputes the summaries that serving reads and the gauges, and forgets the
// windows of versions that are neither champion nor challenger and have had no data for
// IdleAfter.
func (e *Evaluator) refresh(now time.Time, current map[vkey]bool, policyMin map[string]int) {
	old := *e.summaries.Load()
	next := make(map[vkey]summary, len(old))
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, st := range e.versions {
		if !current[k] && now.Sub(st.last) > e.cfg.IdleAfter {
			delete(e.versions, k)
			e.m.forget(k)
			continue
		}
		live := st.live.Report(now)
		var drift *monitor.DriftReport
		if st.drift != nil {
			r := st.drift.Report(now)
			drift = &r
		}
		e.m.set(k, &live, drift)
		need := e.cfg.LiveMinLabels
		if n, ok := policyMin[k.model]; ok {
			need = n
		}
		s := summary{labels: live.N, ok: live.Accuracy != nil && live.N >= need}
		if live.Accuracy != nil {
			s.accuracy = live.Accuracy.Value
		}
		if prev, ok := old[k]; ok && prev.accuracy == s.accuracy && prev.labels == s.labels && prev.ok == s.ok {
			s.gen = prev.gen
		} else {
			e.summaryGen++
			s.gen = e.summaryGen
		}
		next[k] = s
	}
	for k, ps := range e.pairs {
		if !current[vkey{k.model, k.champion}] && now.Sub(ps.last) > e.cfg.IdleAfter {
			delete(e.pairs, k)
		}
	}
	e.summaries.Store(&next)
}
