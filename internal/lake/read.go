package lake

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"gocloud.dev/blob"

	"github.com/cloudmedical/pulse/internal/blobstore"
)

// Ingested is a record of the ingest table as read back.
type Ingested struct {
	EventID    string
	ReceivedAt time.Time
	Source     string
	Record     []byte // JSON object
	Label      []byte // JSON value; empty when the outcome is not known
}

// ReadIngest returns the records ingested for dataset that were received at or after since
// (compacted to Parquet; records still in the write-ahead log are not included), oldest first,
// each event id once (at-least-once delivery can store an event twice).
func ReadIngest(ctx context.Context, store *blobstore.Store, dataset string, since time.Time) ([]Ingested, error) {
	prefix := fmt.Sprintf("%sdataset=%s/", ingestPrefix, escapePartitionValue(dataset))
	sinceDate := since.UTC().Format(time.DateOnly)
	it := store.Bucket.List(&blob.ListOptions{Prefix: prefix})
	var out []Ingested
	seen := map[string]bool{}
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("lake: read ingest %s: %w", dataset, err)
		}
		rest := strings.TrimPrefix(obj.Key, prefix) // date=YYYY-MM-DD/part-....parquet
		date, _, ok := strings.Cut(strings.TrimPrefix(rest, "date="), "/")
		if !ok || !strings.HasSuffix(obj.Key, ".parquet") || date < sinceDate {
			continue
		}
		data, err := store.Bucket.ReadAll(ctx, obj.Key)
		if err != nil {
			return nil, fmt.Errorf("lake: read %s: %w", obj.Key, err)
		}
		rows, err := parquet.Read[ingestRow](bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, fmt.Errorf("lake: read %s: %w", obj.Key, err)
		}
		for _, r := range rows {
			if r.ReceivedAt.Before(since) || seen[r.EventID] {
				continue
			}
			seen[r.EventID] = true
			out = append(out, Ingested{EventID: r.EventID, ReceivedAt: r.ReceivedAt, Source: r.Source, Record: []byte(r.Record), Label: []byte(r.Label)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ReceivedAt.Before(out[j].ReceivedAt) })
	return out, nil
}

// ReadOutcomes returns the outcomes of model (every model when model is "") whose prediction
// was scored at or after since (compacted to Parquet; outcomes still in the write-ahead log are
// not included: Open compacts what a previous run left), ordered by observed_at, then
// prediction id and version.
func ReadOutcomes(ctx context.Context, store *blobstore.Store, model string, since time.Time) ([]Outcome, error) {
	prefix := outcomesPrefix
	if model != "" {
		prefix = fmt.Sprintf("%smodel=%s/", outcomesPrefix, escapePartitionValue(model))
	}
	sinceDate := since.UTC().Format(time.DateOnly)
	it := store.Bucket.List(&blob.ListOptions{Prefix: prefix})
	var out []Outcome
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("lake: read outcomes: %w", err)
		}
		// outcomes/model=M/date=D/part-....parquet
		parts := strings.Split(strings.TrimPrefix(obj.Key, outcomesPrefix), "/")
		if len(parts) != 3 || !strings.HasSuffix(obj.Key, ".parquet") || !strings.HasPrefix(parts[0], "model=") || !strings.HasPrefix(parts[1], "date=") {
			continue
		}
		name, err := url.PathUnescape(strings.TrimPrefix(parts[0], "model="))
		if err != nil || strings.TrimPrefix(parts[1], "date=") < sinceDate {
			continue
		}
		data, err := store.Bucket.ReadAll(ctx, obj.Key)
		if err != nil {
			return nil, fmt.Errorf("lake: read %s: %w", obj.Key, err)
		}
		rows, err := parquet.Read[outcomeRow](bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, fmt.Errorf("lake: read %s: %w", obj.Key, err)
		}
		for _, r := range rows {
			if r.ScoredAt.Before(since) {
				continue
			}
			out = append(out, Outcome{
				PredictionID: r.PredictionID, Model: name, Version: int(r.ModelVersion), Alias: r.Alias, Shadow: r.Shadow,
				Probability: r.Probability, Predicted: int(r.PredictedLabel), Threshold: r.Threshold, Label: int(r.Label),
				ScoredAt: r.ScoredAt, ObservedAt: r.ObservedAt, ReceivedAt: r.ReceivedAt, Source: r.Source, FeedbackID: r.FeedbackID,
			})
		}
	}
	slices.SortStableFunc(out, func(a, b Outcome) int {
		return cmp.Or(a.ObservedAt.Compare(b.ObservedAt), cmp.Compare(a.PredictionID, b.PredictionID), cmp.Compare(a.Model, b.Model),
			cmp.Compare(a.Version, b.Version))
	})
	return out, nil
}

// ReadOutcomes is the package's ReadOutcomes on this lake's store.
func (l *Lake) ReadOutcomes(ctx context.Context, model string, since time.Time) ([]Outcome, error) {
	return ReadOutcomes(ctx, l.store, model, since)
}
