package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudmedical/pulse/internal/events"
	"github.com/cloudmedical/pulse/internal/feedback"
	"github.com/cloudmedical/pulse/internal/jobs"
	"github.com/cloudmedical/pulse/internal/kafka"
	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/serving"
)

// EventsConfig is the event backbone's part of the configuration.
type EventsConfig struct {
	// Brokers is a comma-separated list of a Kafka cluster's brokers; empty starts the embedded
	// broker; "off" runs without events.
	Brokers       string
	SASLMechanism string
	SASLUser      string
	SASLPassword  string
	TLS           bool
	TLSCAFile     string
	TopicPrefix   string
	// EmbeddedAddr is where the embedded broker listens ("127.0.0.1:0" picks a free port).
	EmbeddedAddr string
	Partitions   int
	// Retention bounds what the embedded broker keeps on disk: by age and by bytes per partition.
	Retention      time.Duration
	RetentionBytes int64
	// ScoreConsumers is how many members of the score consumer group this process runs (0:
	// no asynchronous scoring here); ScoreGroup names the group, shared by every process;
	// ScoreBatch bounds the requests scored and committed together.
	ScoreConsumers int
	ScoreGroup     string
	ScoreBatch     int
}

// addEventFlags registers the event flags. A worker never starts the embedded broker: without
// --kafka-brokers it runs without events (give it the broker pulse serve runs to have its
// versions and jobs announced).
func addEventFlags(fs *flag.FlagSet, c *EventsConfig, worker bool) {
	if worker {
		fs.StringVar(&c.Brokers, "kafka-brokers", envOr("PULSE_KAFKA_BROKERS", "off"), `Kafka brokers host:port,... where model and job events are published, e.g. the one pulse serve runs (127.0.0.1:9092); "off" publishes none (env PULSE_KAFKA_BROKERS)`)
	} else {
		fs.StringVar(&c.Brokers, "kafka-brokers", envOr("PULSE_KAFKA_BROKERS", ""), `Kafka brokers host:port,...; empty starts the embedded broker, "off" runs without events (env PULSE_KAFKA_BROKERS)`)
	}
	fs.StringVar(&c.SASLMechanism, "kafka-sasl-mechanism", envOr("PULSE_KAFKA_SASL_MECHANISM", ""), "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (env PULSE_KAFKA_SASL_MECHANISM)")
	fs.StringVar(&c.SASLUser, "kafka-sasl-user", envOr("PULSE_KAFKA_SASL_USER", ""), "SASL user (env PULSE_KAFKA_SASL_USER)")
	fs.StringVar(&c.SASLPassword, "kafka-sasl-password", envOr("PULSE_KAFKA_SASL_PASSWORD", ""), "SASL password (env PULSE_KAFKA_SASL_PASSWORD)")
	fs.BoolVar(&c.TLS, "kafka-tls", envOr("PULSE_KAFKA_TLS", "") == "true", "connect to the brokers over TLS (env PULSE_KAFKA_TLS=true)")
	fs.StringVar(&c.TLSCAFile, "kafka-tls-ca-file", envOr("PULSE_KAFKA_TLS_CA_FILE", ""), "CA certificate file for the brokers' TLS (env PULSE_KAFKA_TLS_CA_FILE)")
	fs.StringVar(&c.TopicPrefix, "kafka-topic-prefix", envOr("PULSE_KAFKA_TOPIC_PREFIX", kafka.DefaultTopicPrefix), "prefix of Pulse's topic names (env PULSE_KAFKA_TOPIC_PREFIX)")
	fs.StringVar(&c.EmbeddedAddr, "kafka-addr", envOr("PULSE_KAFKA_ADDR", kafka.DefaultEmbeddedAddr), "listen address of the embedded Kafka-compatible broker (env PULSE_KAFKA_ADDR)")
	fs.IntVar(&c.Partitions, "kafka-partitions", 3, "partitions of the topics Pulse creates")
	fs.DurationVar(&c.Retention, "kafka-retention", 7*24*time.Hour, "how long the embedded broker keeps records")
	fs.Int64Var(&c.RetentionBytes, "kafka-retention-bytes", 1<<30, "how many bytes the embedded broker keeps per partition")
	if !worker {
		fs.IntVar(&c.ScoreConsumers, "score-consumers", 1, "members of the score consumer group this process runs, answering score.requests on score.results; 0 turns asynchronous scoring off here")
		fs.StringVar(&c.ScoreGroup, "score-group", envOr("PULSE_SCORE_GROUP", "pulse-score"), "consumer group of asynchronous scoring: processes in one group share the partitions of score.requests (env PULSE_SCORE_GROUP)")
		fs.IntVar(&c.ScoreBatch, "score-batch", 2000, "most score requests scored, stored and committed together")
	}
}

// eventBus is the running event backbone of pulse serve: the connection (and the embedded
// broker), the publisher of model events, and the consumers of ingest and train requests.
type eventBus struct {
	conn      *kafka.Conn
	topics    events.Topics
	pub       *events.Publisher
	log       *slog.Logger
	metrics   prometheus.Registerer
	consumers []*events.Consumer
	scorers   []*events.ScoreConsumer
	// stopForget ends the loop that deletes old event ids.
	stopForget context.CancelFunc
}

// openEvents connects to Kafka (or starts the embedded broker) and creates the topics. It
// returns nil with no error when events are off.
func openEvents(ctx context.Context, c EventsConfig, dataDir string, log *slog.Logger, metrics prometheus.Registerer) (*eventBus, error) {
	if c.Brokers == "off" {
		log.Info("events are off (--kafka-brokers off)")
		return nil, nil
	}
	cfg := kafka.Config{
		SASLMechanism: c.SASLMechanism, SASLUser: c.SASLUser, SASLPassword: c.SASLPassword,
		TLS: c.TLS, TLSCAFile: c.TLSCAFile, TopicPrefix: c.TopicPrefix, ClientID: "pulse",
	}
	for _, b := range strings.Split(c.Brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.Brokers = append(cfg.Brokers, b)
		}
	}
	if len(cfg.Brokers) > 0 {
		if err := cfg.WithDefaults().Validate(); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
	topics := events.Topics{Prefix: cfg.WithDefaults().TopicPrefix}
	conn, err := kafka.Open(ctx, cfg, kafka.EmbeddedConfig{
		Addr:           c.EmbeddedAddr,
		DataDir:        filepath.Join(dataDir, "kafka"),
		RetentionMs:    c.Retention.Milliseconds(),
		RetentionBytes: c.RetentionBytes,
		Logger:         log.With("component", "kafka"),
	}, topics.All(), int32(c.Partitions))
	if err != nil {
		if len(cfg.Brokers) == 0 {
			return nil, fmt.Errorf("serve: %w (to run beside another broker: --kafka-addr 127.0.0.1:0 for a free port, --kafka-brokers HOST:PORT to use it, or --kafka-brokers off)", err)
		}
		return nil, fmt.Errorf("serve: %w", err)
	}
	b := &eventBus{conn: conn, topics: topics, log: log, metrics: metrics}
	b.pub = events.NewPublisher(conn.Client, events.PublisherConfig{Logger: log.With("component", "events"), Registerer: metrics})
	where := "cluster"
	if conn.Embedded != nil {
		where = "embedded broker"
	}
	log.Info("events ready", "brokers", strings.Join(conn.Config.Brokers, ","), "kind", where, "topic_prefix", topics.Prefix)
	return b, nil
}

// Brokers is where clients reach the backbone.
func (b *eventBus) Brokers() string { return strings.Join(b.conn.Config.Brokers, ",") }

// AsyncAPI describes the topics and their messages.
func (b *eventBus) AsyncAPI() []byte { return events.AsyncAPI(b.topics, b.conn.Config.Brokers[0]) }

// publish sends an event of Pulse's own (fire and forget: failures are logged and counted).
func (b *eventBus) publish(ctx context.Context, typ, subject string, data any) {
	e, err := events.New("/pulse/serve", typ, subject, data)
	if err != nil {
		b.log.Error("event not built", "type", typ, "err", err)
		return
	}
	b.pub.PublishAsync(context.WithoutCancel(ctx), b.topics.For(typ), e)
}

// VersionRegistered implements registry.Notifier.
func (b *eventBus) VersionRegistered(ctx context.Context, v *pulse.ModelVersion) {
	b.publish(ctx, events.TypeModelVersionRegistered, v.Model, map[string]any{
		"model": v.Model, "version": v.Version, "algorithm": v.Algorithm, "dataset": v.Lineage.DatasetName,
		"trigger": v.Lineage.Trigger, "metrics": v.Metrics, "created_at": v.CreatedAt.UTC().Format(time.RFC3339Nano),
	})
}

// AliasMoved implements registry.Notifier.
func (b *eventBus) AliasMoved(ctx context.Context, model, alias string, version, previous int) {
	data := map[string]any{"model": model, "alias": alias, "version": version}
	if previous > 0 {
		data["previous_version"] = previous
	}
	b.publish(ctx, events.TypeModelAliasMoved, model, data)
}

// seenRetention is how long applied event ids are remembered: longer than any redelivery
// (the topics' retention, a consumer down for days).
const seenRetention = 30 * 24 * time.Hour

// storeSeen is the consumers' idempotency filter: recent ids in memory in front of the
// metadata store, which remembers them across restarts.
type storeSeen struct {
	consumer string
	mem      *events.MemorySeen
	store    pulse.EventStore
}

func (s *storeSeen) Seen(ctx context.Context, id string) (bool, error) {
	if seen, _ := s.mem.Seen(ctx, id); seen {
		return true, nil
	}
	return s.store.SeenEvent(ctx, s.consumer, id)
}

func (s *storeSeen) Mark(ctx context.Context, id string) error {
	if err := s.store.MarkEvent(ctx, s.consumer, id, time.Now()); err != nil {
		return err
	}
	return s.mem.Mark(ctx, id)
}

// SeenMany implements events.SeenMany: the ids remembered in memory, the others asked of the
// store in one query.
func (s *storeSeen) SeenMany(ctx context.Context, ids []string) (map[string]bool, error) {
	seen := map[string]bool{}
	var ask []string
	for _, id := range ids {
		if ok, _ := s.mem.Seen(ctx, id); ok {
			seen[id] = true
		} else {
			ask = append(ask, id)
		}
	}
	if len(ask) == 0 {
		return seen, nil
	}
	stored, err := s.store.SeenEvents(ctx, s.consumer, ask)
	if err != nil {
		return nil, err
	}
	for id := range stored {
		seen[id] = true
	}
	return seen, nil
}

// MarkMany implements events.SeenMany: one transaction in the store.
func (s *storeSeen) MarkMany(ctx context.Context, ids []string) error {
	if err := s.store.MarkEvents(ctx, s.consumer, ids, time.Now()); err != nil {
		return err
	}
	for _, id := range ids {
		s.mem.Mark(ctx, id)
	}
	return nil
}

// forgetSeen deletes event ids older than the retention, now and every hour until ctx ends.
func forgetSeen(ctx context.Context, store pulse.EventStore, log *slog.Logger) {
	for {
		if n, err := store.ForgetEventsBefore(ctx, time.Now().Add(-seenRetention)); err != nil && ctx.Err() == nil {
			log.Warn("forgetting old event ids failed", "err", err)
		} else if n > 0 {
			log.Info("forgot old event ids", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
}

// startConsumers starts the consumers of the ingest and train.requests topics.
func (b *eventBus) startConsumers(ctx context.Context, reg *registry.Service, lk *lake.Lake, js *jobs.Service, seen pulse.EventStore) error {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.stopForget = cancel
	go forgetSeen(fctx, seen, b.log)
	known := &knownDatasets{reg: reg}
	// record reads an ingest event into the lake's record.
	record := func(ctx context.Context, e events.Event) (lake.IngestRecord, error) {
		var d struct {
			Dataset string          `json:"dataset"`
			Record  json.RawMessage `json:"record"`
			Label   json.RawMessage `json:"label"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return lake.IngestRecord{}, pulse.Errorf(pulse.EUNPROCESSABLE, "ingest data: %v", err)
		}
		name, err := known.check(ctx, d.Dataset)
		if err != nil {
			return lake.IngestRecord{}, err
		}
		if len(d.Record) == 0 || d.Record[0] != '{' {
			return lake.IngestRecord{}, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "record", "record: want a JSON object of column values")
		}
		label := d.Label
		if string(label) == "null" {
			label = nil
		}
		// An id or name@version names the dataset; the lake partitions by name.
		return lake.IngestRecord{EventID: e.ID, Dataset: name, ReceivedAt: time.Now().UTC(), Source: e.Source,
			Record: d.Record, Label: label, Partition: -1, Offset: -1}, nil
	}
	ingest := func(ctx context.Context, e events.Event) error {
		r, err := record(ctx, e)
		if err != nil {
			return err
		}
		return lk.AppendIngest(ctx, r)
	}
	// ingestBatch appends the records of a poll in one durable write.
	ingestBatch := func(ctx context.Context, es []events.Event) []error {
		errs := make([]error, len(es))
		recs := make([]lake.IngestRecord, 0, len(es))
		at := make([]int, 0, len(es))
		for i, e := range es {
			r, err := record(ctx, e)
			if err != nil {
				errs[i] = err
				continue
			}
			recs, at = append(recs, r), append(at, i)
		}
		if len(recs) > 0 {
			// Not cancelled with the poll: a write that may still land must be known to have
			// landed, else a redelivery would append it again.
			if err := lk.AppendIngest(context.WithoutCancel(ctx), recs...); err != nil {
				for _, i := range at {
					errs[i] = err // handled again, one by one
				}
			}
		}
		return errs
	}
	train := func(ctx context.Context, e events.Event) error {
		var d struct {
			Model string `json:"model"`
			registry.TrainRequest
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return pulse.Errorf(pulse.EUNPROCESSABLE, "train request data: %v", err)
		}
		job, created, err := js.Enqueue(ctx, d.Model, d.TrainRequest, jobs.EnqueueOptions{Trigger: "event", RequestedBy: e.Source, EventID: e.ID})
		if err != nil {
			return err
		}
		b.log.Info("train request received as an event", "event", e.ID, "model", d.Model, "job", job.ID, "new", created)
		return nil
	}
	for _, c := range []struct {
		topic, typ, group string
		handler           events.Handler
		batch             events.BatchHandler
	}{
		{events.TopicIngest, events.TypeIngestRecord, "pulse-ingest", ingest, ingestBatch},
		{events.TopicTrainRequests, events.TypeTrainRequested, "pulse-train", train, nil},
	} {
		cons, err := events.NewConsumer(events.ConsumerConfig{
			ClientOpts: b.conn.Opts, Group: c.group, Topic: b.topics.Name(c.topic), Types: []string{c.typ},
			Handler: c.handler, Batch: c.batch, Seen: &storeSeen{consumer: c.group, mem: events.NewMemorySeen(100_000), store: seen},
			Logger: b.log.With("component", "events", "topic", c.topic), Registerer: b.metrics,
		})
		if err != nil {
			return fmt.Errorf("serve: %s consumer: %w", c.topic, err)
		}
		// Stopped by stopConsumers (finish the batch, commit), not by the end of ctx.
		if err := cons.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("serve: %s consumer: %w", c.topic, err)
		}
		b.consumers = append(b.consumers, cons)
	}
	return nil
}

// feedbackErrors turns the results of one Submit into the consumer's errors: an unknown
// prediction or an invalid value is refused (dead-lettered), anything else is done. A label
// that Submit calls a duplicate of an earlier item of the same call has that item's fate when
// it was an unknown prediction, as it would have alone: refused, not silently committed.
func feedbackErrors(items []feedback.Feedback, rs []feedback.Result) []error {
	errs := make([]error, len(items))
	first := map[string]int{} // prediction id -> the first item of it that was not invalid
	for j, r := range rs {
		id := strings.ToLower(items[j].PredictionID) // as Submit compares them
		if r.Status == feedback.Duplicate {
			if f, ok := first[id]; ok && rs[f].Status == feedback.Unknown {
				r = rs[f]
			}
		} else if _, ok := first[id]; !ok && r.Status != feedback.Invalid {
			first[id] = j
		}
		switch r.Status {
		case feedback.Unknown:
			errs[j] = pulse.FieldErrorf(pulse.EUNPROCESSABLE, "prediction_id", "unknown prediction: %s", r.Reason)
		case feedback.Invalid:
			errs[j] = pulse.FieldErrorf(pulse.EUNPROCESSABLE, r.Field, "%s", r.Reason)
		}
	}
	return errs
}

// startFeedback starts the consumer of the feedback topic (group pulse-feedback): each event
// is one label, joined by svc as POST /v1/feedback joins it, the events of a poll in one
// Submit (one durable append). An unknown prediction or an invalid value is refused, so the
// consumer dead-letters the event with the reason; a duplicate (labelled before, or a
// redelivery) is counted by svc and committed. No seen-event filter: the outcomes table itself
// makes a repeat harmless.
func (b *eventBus) startFeedback(ctx context.Context, svc *feedback.Service) error {
	batch := func(ctx context.Context, es []events.Event) []error {
		errs := make([]error, len(es))
		items := make([]feedback.Feedback, 0, len(es))
		at := make([]int, 0, len(es)) // the event of each item
		for i, e := range es {
			var d struct {
				PredictionID string          `json:"prediction_id"`
				Label        json.RawMessage `json:"label"`
				ObservedAt   string          `json:"observed_at"`
			}
			if err := json.Unmarshal(e.Data, &d); err != nil {
				errs[i] = pulse.Errorf(pulse.EUNPROCESSABLE, "feedback data: %v", err)
				continue
			}
			items = append(items, feedback.Feedback{PredictionID: d.PredictionID, Label: d.Label, ObservedAt: d.ObservedAt,
				Source: feedback.SourceKafka, ID: e.ID})
			at = append(at, i)
		}
		if len(items) == 0 {
			return errs
		}
		rs, err := svc.Submit(ctx, items)
		if err != nil {
			for _, i := range at {
				errs[i] = err // the lake could not store the outcomes: handled again, one by one
			}
			return errs
		}
		for j, err := range feedbackErrors(items, rs) {
			errs[at[j]] = err
		}
		return errs
	}
	handle := func(ctx context.Context, e events.Event) error { return batch(ctx, []events.Event{e})[0] }
	cons, err := events.NewConsumer(events.ConsumerConfig{
		ClientOpts: b.conn.Opts, Group: "pulse-feedback", Topic: b.topics.Name(events.TopicFeedback), Types: []string{events.TypeFeedback},
		Handler: handle, Batch: batch, Logger: b.log.With("component", "events", "topic", events.TopicFeedback), Registerer: b.metrics,
	})
	if err != nil {
		return fmt.Errorf("serve: feedback consumer: %w", err)
	}
	// Stopped by stopConsumers (finish the batch, commit), not by the end of ctx.
	if err := cons.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("serve: feedback consumer: %w", err)
	}
	b.consumers = append(b.consumers, cons)
	return nil
}

// startScoring starts the members of the score consumer group: they answer score.requests
// on score.results with the REST answers of scorer (see docs/API.md, "Asynchronous scoring").
func (b *eventBus) startScoring(ctx context.Context, c EventsConfig, scorer *serving.Scorer) error {
	if c.ScoreConsumers < 0 || c.ScoreBatch < 0 {
		return fmt.Errorf("serve: --score-consumers %d, --score-batch %d: want 0 or more", c.ScoreConsumers, c.ScoreBatch)
	}
	score := scoreWith(scorer)
	for i := range c.ScoreConsumers {
		cons, err := events.NewScoreConsumer(events.ScoreConsumerConfig{
			ClientOpts: b.conn.Opts, Group: c.ScoreGroup,
			Requests: b.topics.Name(events.TopicScoreRequests), Results: b.topics.Name(events.TopicScoreResults),
			Score: score, MaxBatch: c.ScoreBatch,
			Logger: b.log.With("component", "events", "topic", events.TopicScoreRequests, "member", i), Registerer: b.metrics,
		})
		if err != nil {
			return fmt.Errorf("serve: score consumer: %w", err)
		}
		// Stopped by stopConsumers (finish the batch, answer, commit), not by the end of ctx.
		if err := cons.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("serve: score consumer: %w", err)
		}
		b.scorers = append(b.scorers, cons)
	}
	if c.ScoreConsumers > 0 {
		b.log.Info("asynchronous scoring ready", "requests", b.topics.Name(events.TopicScoreRequests),
			"results", b.topics.Name(events.TopicScoreResults), "group", c.ScoreGroup, "members", c.ScoreConsumers)
	}
	return nil
}

// scoreWith adapts the scorer to the score consumer: the requests' inputs are REST predict
// bodies, scored together by PredictEach (one lake append), refusing the fields the results add.
func scoreWith(scorer *serving.Scorer) events.ScoreFunc {
	return func(ctx context.Context, reqs []events.ScoreRequest) ([]events.ScoreResult, error) {
		in := make([]serving.Request, len(reqs))
		for i, r := range reqs {
			in[i] = serving.Request{
				Model: r.Model, Version: r.Version, Alias: r.Alias, Strict: r.Strict,
				RequestID: r.ID, Body: r.Inputs, Reserved: events.ScoreReserved,
				ValidJSON: true, // DecodeScoreRequest checked the event's JSON
			}
		}
		res, err := scorer.PredictEach(ctx, in)
		if err != nil {
			return nil, err
		}
		out := make([]events.ScoreResult, len(res))
		for i, r := range res {
			out[i] = events.ScoreResult{Body: r.Body, Err: r.Err}
		}
		return out, nil
	}
}

// stopConsumers finishes the batches in flight and commits them.
func (b *eventBus) stopConsumers(ctx context.Context) error {
	if b.stopForget != nil {
		b.stopForget()
	}
	var errs []error
	for _, c := range b.consumers {
		if err := c.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	b.consumers = nil
	for _, c := range b.scorers {
		if err := c.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	b.scorers = nil
	return errors.Join(errs...)
}

// Close flushes the publisher and closes the connection (and the embedded broker).
func (b *eventBus) Close(ctx context.Context) error {
	err := errors.Join(b.stopConsumers(ctx), b.pub.Flush(ctx))
	b.conn.Close()
	return err
}

// knownDatasets remembers which dataset names exist, so that an ingest record for a dataset
// that was never registered is refused (dead-lettered) without a store lookup per record.
type knownDatasets struct {
	reg  *registry.Service
	seen sync.Map
}

func (k *knownDatasets) check(ctx context.Context, ref string) (string, error) {
	if name, ok := k.seen.Load(ref); ok {
		return name.(string), nil
	}
	d, err := k.reg.Dataset(ctx, ref)
	if err != nil {
		if pulse.ErrorCode(err) == pulse.ENOTFOUND {
			return "", pulse.FieldErrorf(pulse.EUNPROCESSABLE, "dataset", "dataset %q is not registered", ref)
		}
		return "", err
	}
	k.seen.Store(ref, d.Name)
	return d.Name, nil
}

// JobStarted implements jobs.Notifier.
func (b *eventBus) JobStarted(ctx context.Context, id int64, kind string, attempt int, model string) {
	b.publish(ctx, events.TypeJobStarted, model, map[string]any{"job_id": id, "kind": kind, "attempt": attempt, "model": model})
}

// JobSucceeded implements jobs.Notifier.
func (b *eventBus) JobSucceeded(ctx context.Context, id int64, kind string, attempt int, model string, result any) {
	b.publish(ctx, events.TypeJobSucceeded, model, map[string]any{"job_id": id, "kind": kind, "attempt": attempt, "model": model, "result": result})
}

// JobFailed implements jobs.Notifier.
func (b *eventBus) JobFailed(ctx context.Context, id int64, kind string, attempt int, model string, final bool, problem string) {
	b.publish(ctx, events.TypeJobFailed, model, map[string]any{"job_id": id, "kind": kind, "attempt": attempt, "model": model,
		"error": problem, "final": final})
}
