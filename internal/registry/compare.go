package registry

import (
	"context"
	"fmt"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Comparison is two versions evaluated on the same rows: the holdout of the challenger, the
// rows of its training dataset that it never saw.
type Comparison struct {
	Dataset    string            `json:"dataset"` // id of the challenger's dataset
	Rows       int               `json:"rows"`
	Champion   pulse.EvalMetrics `json:"champion"`
	Challenger pulse.EvalMetrics `json:"challenger"`
}

// CompareOnHoldout evaluates champion and challenger (versions of model) on the challenger's
// holdout, split again from its lineage (dataset, target, holdout fraction, seed). The
// champion may have seen some of those rows if it was trained on overlapping data, which
// favours it: a challenger that wins anyway wins fairly.
func (s *Service) CompareOnHoldout(ctx context.Context, model string, champion, challenger int) (*Comparison, error) {
	ch, err := s.Load(ctx, model, challenger)
	if err != nil {
		return nil, err
	}
	lin := ch.Version.Lineage
	if lin.Holdout <= 0 {
		return nil, pulse.Errorf(pulse.EUNPROCESSABLE, "model %s version %d was trained without a holdout", model, challenger)
	}
	if lin.IngestedRows > 0 {
		// Its split was drawn over the dataset plus ingested records; the split of the dataset
		// alone would be other rows, some of which it trained on.
		return nil, pulse.Errorf(pulse.EUNPROCESSABLE, "model %s version %d was trained with ingested records: its holdout cannot be rebuilt", model, challenger)
	}
	d, err := s.cfg.Store.FindDataset(ctx, lin.DatasetID)
	if err != nil {
		return nil, fmt.Errorf("registry: compare: dataset of version %d: %w", challenger, err)
	}
	t, err := s.LoadTable(ctx, d)
	if err != nil {
		return nil, err
	}
	rows, y, err := ml.HoldoutSplit(t, lin.Target, lin.Holdout, lin.Seed)
	if err != nil {
		return nil, fmt.Errorf("registry: compare: holdout of version %d: %w", challenger, err)
	}
	cmp := &Comparison{Dataset: d.ID, Rows: len(rows)}
	if cmp.Challenger, err = ch.Model.EvaluateRows(t, rows, y); err != nil {
		return nil, err
	}
	champ, err := s.Load(ctx, model, champion)
	if err != nil {
		return nil, err
	}
	if cmp.Champion, err = champ.Model.EvaluateRows(t, rows, y); err != nil {
		return nil, fmt.Errorf("registry: compare: the champion (version %d) cannot score the challenger's data: %w", champion, err)
	}
	return cmp, nil
}
