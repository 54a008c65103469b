package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnsureTopics creates the named topics with the given number of partitions (and the
// broker's default replication factor) unless they exist already. Existing topics are left
// as they are, whatever their partition count.
func EnsureTopics(ctx context.Context, client *kgo.Client, names []string, partitions int32) error {
	if len(names) == 0 {
		return nil
	}
	if partitions < 1 {
		return fmt.Errorf("kafka: ensure topics: got %d partitions, want at least 1", partitions)
	}
	adm := kadm.NewClient(client)
	resps, err := adm.CreateTopics(ctx, partitions, -1, nil, names...)
	if err != nil {
		return fmt.Errorf("kafka: ensure topics: %w", err)
	}
	for _, r := range resps.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %q: %w", r.Topic, r.Err)
		}
	}
	return nil
}
