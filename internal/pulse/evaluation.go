package pulse

import (
	"bytes"
	"encoding/json"
	"time"
)

// Continuous evaluation's records: the versioned policy of a model, the audit trail of what
// the policy decided, and the history of alias moves (which version was champion before).

// PolicyDocument is one version of a model's policy: a JSON object in the format of package
// monitor (monitor.ParsePolicy reads it). The store keeps it as given; the caller validates it.
type PolicyDocument struct {
	Model string `json:"model"`
	// Version is assigned by the store: 1 + the model's latest policy version.
	Version   int             `json:"version"`
	Policy    json.RawMessage `json:"policy"`
	CreatedAt time.Time       `json:"created_at"`
	// CreatedBy says who put it, when known (a request id, "cli").
	CreatedBy string `json:"created_by,omitempty"`
}

// CheckStorable reports whether p can be stored: a model name and a JSON object.
func (p *PolicyDocument) CheckStorable() error {
	switch {
	case p == nil:
		return Errorf(EINVALID, "policy is missing")
	case p.Model == "":
		return FieldErrorf(EINVALID, "model", "model name is empty")
	case !json.Valid(p.Policy) || !bytes.HasPrefix(bytes.TrimSpace(p.Policy), []byte("{")):
		return FieldErrorf(EINVALID, "policy", "policy: want a JSON object")
	}
	return nil
}

// Decision is one entry of a model's audit trail: what a rule of its policy decided (an
// action taken, or none and the guard that stopped it), with the numbers it decided on, and
// what carrying the action out did.
type Decision struct {
	// ID is assigned by the store, increasing: newer entries have larger ids.
	ID    int64  `json:"id"`
	Model string `json:"model"`
	// Rule is the rule evaluated (rollback, retrain, promote), or "webhook" for the record of
	// a webhook that could not be delivered.
	Rule string `json:"rule"`
	// Action is the action taken (the rule's name), or "none".
	Action string `json:"action"`
	// Version is the version the action applies to (the version a rollback restores, the
	// challenger promoted, the champion retrained).
	Version int `json:"version,omitempty"`
	// Champion is the champion's version when the rule was evaluated.
	Champion int `json:"champion"`
	// PolicyVersion is the version of the policy that decided.
	PolicyVersion int `json:"policy_version"`
	// Guard is what stopped the rule, when something did ("too few labels: 37 < 200").
	Guard  string `json:"guard,omitempty"`
	Reason string `json:"reason"`
	// Numbers are the values the rule used, by name.
	Numbers map[string]float64 `json:"numbers"`
	// Result says what carrying the action out did ("champion moved from 3 to 2",
	// "job 17 enqueued"); Error, when set, why it failed.
	Result string `json:"result,omitempty"`
	Error  string `json:"error,omitempty"`
	// JobID is the retraining job an action started.
	JobID int64     `json:"job_id,omitempty"`
	At    time.Time `json:"at"`
}

// CheckStorable reports whether d can be stored: a model, a rule and an action.
func (d *Decision) CheckStorable() error {
	switch {
	case d == nil:
		return Errorf(EINVALID, "decision is missing")
	case d.Model == "":
		return FieldErrorf(EINVALID, "model", "model name is empty")
	case d.Rule == "":
		return FieldErrorf(EINVALID, "rule", "rule is empty")
	case d.Action == "":
		return FieldErrorf(EINVALID, "action", "action is empty")
	}
	return nil
}

// DecisionQuery selects entries of an audit trail; zero fields select everything.
type DecisionQuery struct {
	// Limit is the most entries returned (default 100, at most 1000).
	Limit int
	// BeforeID, when set, returns only entries older than it (ids below it): the next page.
	BeforeID int64
	// Action, when set, returns only entries with that action.
	Action string
}

// Normalize fills in the default limit and checks q.
func (q *DecisionQuery) Normalize() error {
	if q.Limit == 0 {
		q.Limit = 100
	}
	if q.Limit < 1 || q.Limit > 1000 {
		return FieldErrorf(EINVALID, "limit", "limit: got %d, want 1 to 1000", q.Limit)
	}
	if q.BeforeID < 0 {
		return FieldErrorf(EINVALID, "before", "before: got %d, want a positive id", q.BeforeID)
	}
	return nil
}

// AliasMove is one move of an alias, as the model store records it.
type AliasMove struct {
	Model string `json:"model"`
	Alias string `json:"alias"`
	// Version is the version the alias pointed at after the move, 0 when it was deleted;
	// Previous the one before, 0 when it was not set.
	Version  int       `json:"version"`
	Previous int       `json:"previous"`
	At       time.Time `json:"at"`
}
