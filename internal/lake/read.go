package lake

import (
	"bytes"
	"context"
	"fmt"
	"io"
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
