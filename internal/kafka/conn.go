package kafka

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Conn is Pulse's connection to Kafka: a cluster given by Config.Brokers, or the embedded
// broker when there are none. Opts are the client options for further clients (consumer
// groups); Client is a shared client for producing and administration.
type Conn struct {
	Config   Config // with defaults, and Brokers set to the embedded broker's address if used
	Opts     []kgo.Opt
	Client   *kgo.Client
	Embedded *Embedded // nil when connected to a cluster
}

// Open connects to the cluster of cfg or, when cfg.Brokers is empty, starts the embedded
// broker with emb (auto topic creation allowed on both sides) and connects to it. It then
// creates topics (with partitions each) unless they exist. Close releases everything.
func Open(ctx context.Context, cfg Config, emb EmbeddedConfig, topics []string, partitions int32) (*Conn, error) {
	c := &Conn{Config: cfg.WithDefaults()}
	if len(c.Config.Brokers) == 0 {
		e, err := StartEmbedded(ctx, emb)
		if err != nil {
			return nil, err
		}
		c.Embedded = e
		c.Config.Brokers = []string{e.Addr()}
	}
	opts, err := c.Config.Opts()
	if err != nil {
		c.Close()
		return nil, err
	}
	if c.Embedded != nil {
		opts = append(opts, kgo.AllowAutoTopicCreation())
	}
	c.Opts = opts
	c.Client, err = kgo.NewClient(slices.Clone(opts)...)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("kafka: client: %w", err)
	}
	if err := EnsureTopics(ctx, c.Client, topics, partitions); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close flushes and closes the shared client, then stops the embedded broker if any. Close
// consumers built from Opts first.
func (c *Conn) Close() {
	if c.Client != nil {
		c.Client.Close()
	}
	if c.Embedded != nil {
		c.Embedded.Close()
	}
}
