// Package evaluator is Pulse's continuous evaluation loop. It keeps, per model version, the
// live metrics of its labelled outcomes (monitor.LiveWindow, fed by the feedback join through
// Outcomes) and the drift of its recent traffic against its training profile
// (monitor.DriftWindow, fed by serving through Observe), compares a shadow challenger with
// the champion on the same requests, and applies each model's policy (monitor.Evaluate):
// it rolls the champion back, starts retraining jobs and promotes challengers on its own,
// and records every decision, and every decision not taken because a guard stopped it, in
// the model's audit trail with its numbers.
//
// # Data in
//
//   - Outcomes: the feedback join calls Outcomes with each labelled prediction. Champion
//     and shadow outcomes of the same request (same prediction_id) are paired, so that the
//     challenger and the champion are compared on identical traffic (monitor.Shadow). An
//     outcome is a shadow one when its Shadow flag is set or its alias is "challenger" (the
//     predictions table records shadow predictions with alias "challenger" and the
//     champion's prediction_id until it has a shadow column).
//   - Observe: serving calls it after each scored record is stored in the lake. It copies
//     the input values into a bounded queue and returns; one goroutine drains the queue into
//     the drift windows. When the queue is full the record is dropped and counted
//     (pulse_evaluator_observations_dropped_total): drift is a statistic over thousands of
//     records, the request path must never wait for it.
//   - On Start the live windows are rebuilt from the lake's recent outcomes through
//     Config.Recent (the feedback join's reader of the outcomes table), so that a restart does
//     not forget what the windows held. The drift windows start empty.
//
// # The loop
//
// Every Interval (default 5 s), and soon after new outcomes (at most every MinGap, default
// 500 ms), the loop evaluates every model that has a policy: it builds a monitor.State (the
// champion's live metrics and drift, the shadow challenger's metrics and the champion's over
// the same outcomes, the previous good version, when each action was last taken, whether a
// training job of the model is queued or running), calls monitor.Evaluate and carries out
// the decisions:
//
//   - rollback: the champion alias moves back to the previous good version: the newest
//     earlier champion in the alias history (the store records every move) that is not the
//     current champion and that no rollback moved away from (the audit trail).
//   - retrain: a training job is enqueued with the champion's training request from its
//     lineage (same target, algorithm, parameters, inputs, seed, holdout and folds) on the
//     newest version of its dataset, trigger "policy", with the policy's ingest_window. Its
//     gate makes the new version challenger: it has to prove itself in shadow on the live
//     traffic (the promote rule) before it serves.
//   - promote: the champion alias moves to the challenger and the challenger alias is
//     removed.
//
// Each decision that takes an action, and each decision whose outcome changed since the last
// one recorded for its rule (from "too few labels" to "not significant" to acting or to
// nothing to do), is appended to the audit trail (pulse.DecisionStore), published as a
// com.cloudmedical.pulse.model.decision event through the Notifier, and POSTed to the
// policy's webhook, if any: JSON, a timeout per attempt, retries with backoff, off the loop;
// a webhook that fails every attempt is logged and recorded in the trail (rule "webhook").
// The numbers that change with every label (a label count, an interval) do not make a new
// entry by themselves, so that the trail stays readable.
//
// Shadow scoring is on for a model whose challenger exists and differs from the champion,
// unless its policy says "shadow": false (ShadowOn): serving asks before queueing a shadow
// request.
//
// One evaluator runs per deployment: `pulse serve --evaluate` (on by default). Several
// servers on one database must run it on one of them only.
package evaluator
