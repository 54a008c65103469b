package pulse

import (
	"context"
	"time"
)

// DatasetStore keeps dataset metadata. The stored bytes live in the lake.
type DatasetStore interface {
	// CreateDataset stores d, assigning d.Version (1 + the latest version of d.Name) and
	// d.CreatedAt if zero. d.ID must be set by the caller and be unique.
	CreateDataset(ctx context.Context, d *Dataset) error
	// FindDataset returns a dataset by id, by "name" (its latest version) or by "name@version".
	FindDataset(ctx context.Context, ref string) (*Dataset, error)
	// FindDatasetBySHA returns the version of name whose content has the hash, or ENOTFOUND.
	FindDatasetBySHA(ctx context.Context, name, sha256 string) (*Dataset, error)
	// ListDatasets returns every dataset version, by name then version.
	ListDatasets(ctx context.Context) ([]*Dataset, error)
}

// ModelStore keeps models, their versions and aliases.
type ModelStore interface {
	// CreateVersion stores v, creating the model if needed and assigning v.Version atomically
	// (1 + the model's latest version) and v.CreatedAt if zero.
	CreateVersion(ctx context.Context, v *ModelVersion) error
	// GetVersion returns one version with its current aliases, or ENOTFOUND.
	GetVersion(ctx context.Context, model string, version int) (*ModelVersion, error)
	// ListVersions returns every version of a model, oldest first, or ENOTFOUND for an
	// unknown model.
	ListVersions(ctx context.Context, model string) ([]*ModelVersion, error)
	// GetModel returns a model with its aliases, or ENOTFOUND.
	GetModel(ctx context.Context, name string) (*Model, error)
	// ListModels returns every model, by name.
	ListModels(ctx context.Context) ([]*Model, error)
	// SetAlias points alias at an existing version (ENOTFOUND if it does not exist) and
	// returns the version it pointed at before (0 if none).
	SetAlias(ctx context.Context, model, alias string, version int) (previous int, err error)
	// DeleteAlias removes an alias; ENOTFOUND if it was not set.
	DeleteAlias(ctx context.Context, model, alias string) error
}

// EventStore remembers which events a consumer has applied, so that an event delivered again
// (Kafka delivers at least once, and again after a crash before the offset commit) has its
// effect once, across restarts.
type EventStore interface {
	// SeenEvent reports whether consumer has marked the event id.
	SeenEvent(ctx context.Context, consumer, id string) (bool, error)
	// MarkEvent records that consumer applied the event id at the given time; marking twice is
	// not an error.
	MarkEvent(ctx context.Context, consumer, id string, at time.Time) error
	// SeenEvents is SeenEvent for many ids at once: the ids among them consumer has marked.
	SeenEvents(ctx context.Context, consumer string, ids []string) (map[string]bool, error)
	// MarkEvents is MarkEvent for many ids at once, in one transaction.
	MarkEvents(ctx context.Context, consumer string, ids []string, at time.Time) error
	// ForgetEventsBefore deletes the marks older than before (the retention of the topics bounds
	// how late a redelivery can come) and returns how many it deleted.
	ForgetEventsBefore(ctx context.Context, before time.Time) (int64, error)
}

// AliasHistoryStore is a ModelStore that remembers every alias move (SetAlias and
// DeleteAlias record one in the same transaction), so that the version an alias pointed at
// before is known across restarts: a rollback restores it.
type AliasHistoryStore interface {
	// AliasHistory returns the moves of a model's alias, newest first, at most limit (1 to
	// 1000); ENOTFOUND for an unknown model.
	AliasHistory(ctx context.Context, model, alias string, limit int) ([]AliasMove, error)
}

// PolicyStore keeps the versions of each model's policy: every put makes a new version and
// the history is kept.
type PolicyStore interface {
	// PutPolicy stores p as the next version of its model's policy, assigning p.Version
	// (1 + the latest) and p.CreatedAt if zero. ENOTFOUND for an unknown model.
	PutPolicy(ctx context.Context, p *PolicyDocument) error
	// GetPolicy returns one version of a model's policy, the latest for version 0; ENOTFOUND
	// when the model or the version does not exist (or the model has no policy).
	GetPolicy(ctx context.Context, model string, version int) (*PolicyDocument, error)
	// ListPolicies returns every version of a model's policy, newest first (empty when it has
	// none); ENOTFOUND for an unknown model.
	ListPolicies(ctx context.Context, model string) ([]*PolicyDocument, error)
	// CurrentPolicies returns the latest policy of every model that has one, by model name.
	CurrentPolicies(ctx context.Context) ([]*PolicyDocument, error)
}

// DecisionStore keeps each model's audit trail of policy decisions. Entries are never changed.
type DecisionStore interface {
	// AppendDecision stores d, assigning d.ID and d.At if zero. ENOTFOUND for an unknown model.
	AppendDecision(ctx context.Context, d *Decision) error
	// ListDecisions returns a model's entries, newest first, as q selects; ENOTFOUND for an
	// unknown model.
	ListDecisions(ctx context.Context, model string, q DecisionQuery) ([]*Decision, error)
}
