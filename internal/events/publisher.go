package events

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Logger receives fire-and-forget failures; nil discards.
	Logger *slog.Logger
	// Registerer receives the publish metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Publisher produces events through a franz-go client, which batches concurrent and
// asynchronous produces (linger, one request per partition and broker). The record key is
// the event's subject (so events about one model stay in order on one partition), or its id
// when there is no subject; the value is the event in structured CloudEvents JSON.
//
// The client is the caller's: build it from kafka.Config.Opts (plus kgo.AllowAutoTopicCreation
// for the embedded broker) and close it after the Publisher's Flush.
type Publisher struct {
	client *kgo.Client
	log    *slog.Logger
	m      *metrics
}

// NewPublisher returns a Publisher producing through client.
func NewPublisher(client *kgo.Client, cfg PublisherConfig) *Publisher {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Publisher{client: client, log: log, m: newMetrics(cfg.Registerer)}
}

// record builds the Kafka record of e for topic (a full topic name).
func record(topic string, e Event) (*kgo.Record, error) {
	if topic == "" {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "topic", "events: publish %s: topic is empty", e.Type)
	}
	if e.ID == "" || e.Type == "" {
		return nil, pulse.Errorf(pulse.EINVALID, "events: publish: event has no id or type; build it with New")
	}
	v, err := e.Marshal()
	if err != nil {
		return nil, err
	}
	key := e.Subject
	if key == "" {
		key = e.ID
	}
	return &kgo.Record{
		Topic:   topic,
		Key:     []byte(key),
		Value:   v,
		Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte(ContentTypeCloud)}},
	}, nil
}

// Publish produces e to topic and waits until the broker acknowledged it (with acks=all on a
// real cluster, the franz-go default). Concurrent calls are batched together.
func (p *Publisher) Publish(ctx context.Context, topic string, e Event) error {
	r, err := record(topic, e)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	p.client.Produce(ctx, r, func(_ *kgo.Record, err error) { done <- err })
	select {
	case err = <-done:
	case <-ctx.Done():
		// The record may still be delivered; the caller only stops waiting.
		return fmt.Errorf("events: publish %s to %s: %w", e.Type, topic, ctx.Err())
	}
	if err != nil {
		p.m.publishErrors.WithLabelValues(topic).Inc()
		return fmt.Errorf("events: publish %s to %s: %w", e.Type, topic, err)
	}
	p.m.published.WithLabelValues(topic).Inc()
	return nil
}

// PublishAsync produces e to topic without waiting; a failure is logged and counted. Use it
// for notifications (model.events) whose loss must not fail the caller's operation. Call
// Flush before closing the client to deliver what is buffered.
func (p *Publisher) PublishAsync(ctx context.Context, topic string, e Event) {
	r, err := record(topic, e)
	if err != nil {
		p.m.publishErrors.WithLabelValues(topic).Inc()
		p.log.Error("event not published", "topic", topic, "type", e.Type, "id", e.ID, "err", err)
		return
	}
	// The produce outlives the caller's request: do not let its cancellation drop the event.
	p.client.Produce(context.WithoutCancel(ctx), r, func(r *kgo.Record, err error) {
		if err != nil {
			p.m.publishErrors.WithLabelValues(r.Topic).Inc()
			p.log.Error("event not published", "topic", r.Topic, "type", e.Type, "id", e.ID, "err", err)
			return
		}
		p.m.published.WithLabelValues(r.Topic).Inc()
	})
}

// Flush waits until every buffered event was acknowledged or failed.
func (p *Publisher) Flush(ctx context.Context) error {
	if err := p.client.Flush(ctx); err != nil {
		return fmt.Errorf("events: flush: %w", err)
	}
	return nil
}
