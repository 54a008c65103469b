package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Handler applies one event. It returns nil only when the event's effect is durable (stored,
// or a job enqueued); only then may the consumer commit past it. A *pulse.Error with code
// EINVALID or EUNPROCESSABLE is permanent: the event goes to the dead-letter topic at once.
// Any other error is retried with backoff.
type Handler func(ctx context.Context, e Event) error

// BatchHandler applies the events of one partition's poll at once, in order, and returns one
// error per event, with Handler's meaning: nil when its effect is durable; an EINVALID or
// EUNPROCESSABLE error sends it to the dead-letter topic; any other error has it handled
// again alone, through Handler, with retries. A store that appends durably in groups (one
// fsync per call) thus takes a whole poll in one write. An event handled again alone has its
// effect after the later events of its poll: use a batch handler where events are
// independent (labels, records), not where their order matters.
type BatchHandler func(ctx context.Context, events []Event) []error

// Dead-letter reasons, in the DeadLetter envelope and the HeaderDLQReason header.
const (
	ReasonMalformed = "malformed" // not a valid event: JSON, envelope, unknown type, data schema
	ReasonRejected  = "rejected"  // the handler refused it permanently (EINVALID, EUNPROCESSABLE)
	ReasonHandler   = "handler"   // the handler failed MaxAttempts times
)

// Headers of dead-letter records, besides the original record's headers.
const (
	HeaderDLQReason = "pulse-dlq-reason"
	HeaderDLQError  = "pulse-dlq-error"
)

// DeadLetter is the value of a record on a dead-letter topic: the original record and why it
// could not be processed.
type DeadLetter struct {
	Reason    string    `json:"reason"`          // ReasonMalformed, ReasonRejected or ReasonHandler
	Error     string    `json:"error"`           // what was wrong, naming the attribute or field
	Field     string    `json:"field,omitempty"` // the attribute or data field at fault, when known
	Attempts  int       `json:"attempts"`        // handler attempts made (0 when malformed)
	Group     string    `json:"group"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Key       string    `json:"key,omitempty"`
	EventID   string    `json:"event_id,omitempty"`
	Value     string    `json:"value,omitempty"`        // the original value when it is UTF-8
	ValueB64  []byte    `json:"value_base64,omitempty"` // otherwise, base64
	FailedAt  time.Time `json:"failed_at"`
}

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	// ClientOpts connect to the cluster: kafka.Config.Opts, plus kgo.AllowAutoTopicCreation
	// for the embedded broker. The consumer adds its group options.
	ClientOpts []kgo.Opt
	// Group is the consumer group; Topic the full topic name. Both required.
	Group string
	Topic string
	// Types, when not empty, are the event types accepted on Topic; others are malformed.
	Types []string
	// Handler applies each event. Required.
	Handler Handler
	// Batch, when set, applies the events of each poll first (see BatchHandler), those Seen
	// does not know; Handler then only retries those it failed.
	Batch BatchHandler
	// Seen filters events whose id had its effect already; nil handles every delivery.
	Seen Seen
	// MaxAttempts of the handler per event before it goes to the dead-letter topic; 5 when zero.
	MaxAttempts int
	// Backoff before the first retry, doubled per attempt up to MaxBackoff; 100 ms and 5 s
	// when zero.
	Backoff, MaxBackoff time.Duration
	// MaxBatch is the most records handled between two commits; 500 when zero.
	MaxBatch int
	// Logger and Registerer: nil discards logs and registers no metrics.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *ConsumerConfig) defaults() error {
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.Backoff == 0 {
		c.Backoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 500
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case c.Group == "":
		return pulse.FieldErrorf(pulse.EINVALID, "group", "events: consumer: group is required")
	case c.Topic == "":
		return pulse.FieldErrorf(pulse.EINVALID, "topic", "events: consumer: topic is required")
	case c.Handler == nil:
		return pulse.FieldErrorf(pulse.EINVALID, "handler", "events: consumer: handler is required")
	case c.MaxAttempts < 1:
		return pulse.FieldErrorf(pulse.EINVALID, "max_attempts", "events: consumer: got %d max attempts, want at least 1", c.MaxAttempts)
	case c.Backoff < 0 || c.MaxBackoff < c.Backoff:
		return pulse.FieldErrorf(pulse.EINVALID, "backoff", "events: consumer: want 0 <= backoff <= max backoff")
	case c.MaxBatch < 1:
		return pulse.FieldErrorf(pulse.EINVALID, "max_batch", "events: consumer: got max batch %d, want at least 1", c.MaxBatch)
	}
	for _, t := range c.Types {
		if TopicOf(t) == "" {
			return pulse.FieldErrorf(pulse.EINVALID, "types", "events: consumer: unknown event type %q", t)
		}
	}
	return nil
}

// Consumer runs a Handler for every event on one topic as a member of a consumer group.
//
// Records are processed in order per partition (with a BatchHandler, an event retried alone
// has its effect after the later ones of its poll). Offsets are committed explicitly after each
// batch, and only past records whose handler returned nil, that were duplicates, or that
// went to the dead-letter topic (acknowledged by the broker): a crash redelivers the rest.
// Malformed records go to the topic's dead-letter topic (DLQTopic) with a DeadLetter value;
// failing handlers are retried with backoff, then dead-lettered. Nothing is skipped silently.
type Consumer struct {
	lifecycle
	cfg ConsumerConfig
	m   *metrics
	// per-record counters, bound to this consumer's labels once
	consumed, handled, duplicates prometheus.Counter
}

// NewConsumer validates cfg and connects a group client; call Start to consume.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	client, err := groupClient(cfg.ClientOpts, cfg.Group, cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("events: consumer %s on %s: %w", cfg.Group, cfg.Topic, err)
	}
	m := newMetrics(cfg.Registerer)
	return &Consumer{
		lifecycle: newLifecycle("consumer "+cfg.Group, client), cfg: cfg, m: m,
		consumed:   m.consumed.WithLabelValues(cfg.Topic, cfg.Group),
		handled:    m.handled.WithLabelValues(cfg.Topic, cfg.Group),
		duplicates: m.duplicates.WithLabelValues(cfg.Topic, cfg.Group),
	}, nil
}

// Start begins consuming in a goroutine. ctx bounds the whole run: canceling it stops the
// consumer without waiting for the in-flight handler.
func (c *Consumer) Start(ctx context.Context) error { return c.start(ctx, c.run) }

// Stop stops gracefully: no new batch is fetched, the in-flight batch is finished (a record
// still being retried is left for redelivery), its offsets are committed and the consumer
// leaves the group. When ctx expires first, the in-flight handler's context is canceled.
func (c *Consumer) Stop(ctx context.Context) error { return c.stop(ctx) }

// errStopping means the record was not finished because the consumer is stopping.
var errStopping = errors.New("events: consumer stopping")

// errRepeat marks an event whose id came earlier in the same batch.
var errRepeat = errors.New("events: repeated in the batch")

func (c *Consumer) run() error {
	defer c.client.CloseAllowingRebalance()
	log := c.cfg.Logger.With("group", c.cfg.Group, "topic", c.cfg.Topic)
	done := make([]*kgo.Record, 0, c.cfg.MaxBatch)
	for {
		fetches := c.client.PollRecords(c.pollCtx, c.cfg.MaxBatch)
		if fetches.IsClientClosed() || c.pollCtx.Err() != nil && fetches.NumRecords() == 0 {
			return nil
		}
		failed := false
		fetches.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				failed = true
				log.Warn("fetch failed", "partition", p, "err", err)
			}
		})
		if failed && fetches.NumRecords() == 0 {
			// e.g. the broker is unreachable or refuses us: do not spin.
			c.client.AllowRebalance()
			if !c.sleep(c.cfg.MaxBackoff) {
				return nil
			}
			continue
		}
		done = done[:0]
		var stopErr error
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				last := p.Records[len(p.Records)-1].Offset
				c.m.lag.WithLabelValues(c.cfg.Topic, c.cfg.Group, strconv.Itoa(int(p.Partition))).Set(float64(max(0, p.HighWatermark-last-1)))
			}
			if stopErr != nil {
				return
			}
			if c.cfg.Batch != nil {
				done, stopErr = c.processBatch(p.Records, done, log)
				return
			}
			for _, r := range p.Records {
				c.consumed.Inc()
				if err := c.process(r, log); err != nil {
					stopErr = err
					return
				}
				done = append(done, r)
			}
		})
		if c.isAborted() {
			return nil
		}
		if len(done) > 0 {
			// Commit even while stopping, with a context of its own: the effects are durable.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(c.workCtx), 10*time.Second)
			err := c.client.CommitRecords(cctx, done...)
			cancel()
			if err != nil {
				// The records will be redelivered; the Seen filter makes that harmless.
				log.Warn("commit failed", "records", len(done), "err", err)
			}
		}
		c.client.AllowRebalance()
		if stopErr != nil {
			return nil
		}
	}
}

// process handles one record to the end: handled, duplicate, or dead-lettered. It returns
// errStopping when the consumer stops first; the record is then not committed.
func (c *Consumer) process(r *kgo.Record, log *slog.Logger) error {
	e, err := c.parse(r)
	if err != nil {
		return c.deadLetter(r, ReasonMalformed, "", 0, err, log)
	}
	return c.retry(r, e, 1, log)
}

// parse reads a record as an event of one of the consumer's types.
func (c *Consumer) parse(r *kgo.Record) (Event, error) {
	e, err := Parse(r.Value)
	if err == nil && len(c.cfg.Types) > 0 && !slices.Contains(c.cfg.Types, e.Type) {
		err = pulse.FieldErrorf(pulse.EUNPROCESSABLE, "type", "attribute \"type\": got %q, want one of %q on topic %s", e.Type, c.cfg.Types, c.cfg.Topic)
	}
	return e, err
}

// processBatch handles the records of one partition's poll as process does, the valid events
// through one call of the batch handler first. It appends the records finished, a prefix of
// records, to done; errStopping when the consumer stops before the end.
func (c *Consumer) processBatch(records []*kgo.Record, done []*kgo.Record, log *slog.Logger) ([]*kgo.Record, error) {
	ctx := c.workCtx
	evs := make([]Event, 0, len(records))
	perr := make([]error, len(records))
	// What became of each record before the batch: malformed (perr), a duplicate, or left to
	// be handled alone (alone: Seen failed, or its id came earlier in the batch); the others
	// are in evs, in order.
	dup := make([]bool, len(records))
	alone := make([]error, len(records))
	all := make([]Event, len(records))
	inBatch := map[string]bool{}
	for i, r := range records {
		c.consumed.Inc()
		e, err := c.parse(r)
		if perr[i] = err; err != nil {
			continue
		}
		all[i] = e
		if c.cfg.Seen != nil {
			if inBatch[e.ID] { // a repeat within the poll: handled alone after the first
				alone[i] = errRepeat
				continue
			}
			inBatch[e.ID] = true
		}
	}
	known, kerr := c.seenMany(ctx, all, perr, alone)
	for i, e := range all {
		if perr[i] != nil || alone[i] != nil {
			continue
		}
		if c.cfg.Seen != nil {
			seen, err := known[e.ID], kerr
			if known == nil && kerr == nil { // no SeenMany: one at a time
				seen, err = c.cfg.Seen.Seen(ctx, e.ID)
			}
			switch {
			case err != nil:
				alone[i] = fmt.Errorf("events: seen %s: %w", e.ID, err)
				continue
			case seen:
				dup[i] = true
				continue
			}
		}
		evs = append(evs, e)
	}
	var herrs []error
	if len(evs) > 0 {
		herrs = c.callBatch(ctx, evs)
	}
	// The events applied are durable now: marked at once, whatever happens to the records
	// before them (a stop leaves those uncommitted, and a redelivery must not apply these
	// again).
	var applied []string
	for k, herr := range herrs {
		if herr == nil {
			c.handled.Inc()
			applied = append(applied, evs[k].ID)
		}
	}
	c.markMany(ctx, applied)
	j, slept := 0, false
	for i, r := range records {
		if perr[i] != nil {
			if err := c.deadLetter(r, ReasonMalformed, "", 0, perr[i], log); err != nil {
				return done, err
			}
			done = append(done, r)
			continue
		}
		if dup[i] {
			c.duplicates.Inc()
			done = append(done, r)
			continue
		}
		var e Event
		var herr error
		if alone[i] != nil {
			e, herr = all[i], alone[i]
		} else {
			e, herr = evs[j], herrs[j]
			j++
		}
		if herr == errRepeat { // Seen knows the first by now if it had its effect
			if err := c.retry(r, e, 1, log); err != nil {
				return done, err
			}
			done = append(done, r)
			continue
		}
		switch code := pulse.ErrorCode(herr); {
		case herr == nil: // handled and marked above
		case code == pulse.EINVALID || code == pulse.EUNPROCESSABLE:
			c.m.handlerErrors.WithLabelValues(c.cfg.Topic, c.cfg.Group).Inc()
			if err := c.deadLetter(r, ReasonRejected, e.ID, 1, herr, log); err != nil {
				return done, err
			}
		default:
			if c.workCtx.Err() != nil {
				return done, errStopping
			}
			c.m.handlerErrors.WithLabelValues(c.cfg.Topic, c.cfg.Group).Inc()
			if c.cfg.MaxAttempts == 1 {
				if err := c.deadLetter(r, ReasonHandler, e.ID, 1, herr, log); err != nil {
					return done, err
				}
				break
			}
			log.Warn("batch handler failed on an event; handling it alone", "id", e.ID, "type", e.Type, "err", herr)
			if !slept { // once per batch: the failure was most likely the whole call's
				if slept = true; !c.sleep(c.backoff(1)) {
					return done, errStopping
				}
			}
			if err := c.retry(r, e, 2, log); err != nil {
				return done, err
			}
		}
		done = append(done, r)
	}
	return done, nil
}

// seenMany asks Seen at once which events of a poll (those not malformed or left alone) were
// seen, when it offers SeenMany; nil, nil otherwise.
func (c *Consumer) seenMany(ctx context.Context, all []Event, perr, alone []error) (map[string]bool, error) {
	sm, ok := c.cfg.Seen.(SeenMany)
	if !ok {
		return nil, nil
	}
	var ids []string
	for i, e := range all {
		if perr[i] == nil && alone[i] == nil {
			ids = append(ids, e.ID)
		}
	}
	if len(ids) == 0 {
		return map[string]bool{}, nil
	}
	seen, err := sm.SeenMany(ctx, ids)
	if err == nil && seen == nil {
		seen = map[string]bool{}
	}
	return seen, err
}

// markMany marks the events a batch applied as seen, at once when Seen offers MarkMany.
func (c *Consumer) markMany(ctx context.Context, ids []string) {
	if c.cfg.Seen == nil || len(ids) == 0 {
		return
	}
	sm, ok := c.cfg.Seen.(SeenMany)
	if !ok {
		for _, id := range ids {
			c.markSeen(ctx, id)
		}
		return
	}
	if err := sm.MarkMany(ctx, ids); err != nil {
		// As in markSeen: the effects are durable; retrying the handler would repeat them.
		c.cfg.Logger.Warn("marking events seen failed", "events", len(ids), "err", err)
	}
}

// callBatch runs the batch handler, turning a panic or a wrong number of results into an
// error for every event (handled again alone).
func (c *Consumer) callBatch(ctx context.Context, evs []Event) (errs []error) {
	defer func() {
		if p := recover(); p != nil {
			errs = nil
			c.cfg.Logger.Error("batch handler panicked", "events", len(evs), "panic", p)
		}
		if len(errs) != len(evs) {
			err := fmt.Errorf("events: batch handler gave %d results for %d events", len(errs), len(evs))
			errs = make([]error, len(evs))
			for i := range errs {
				errs[i] = err
			}
		}
	}()
	return c.cfg.Batch(ctx, evs)
}

// retry runs the handler on e from attempt on, with backoff, until it succeeds or the event
// is dead-lettered; errStopping when the consumer stops first.
func (c *Consumer) retry(r *kgo.Record, e Event, attempt int, log *slog.Logger) error {
	ctx := c.workCtx
	var herr error
	for ; ; attempt++ {
		if c.pollCtx.Err() != nil && attempt > 1 {
			return errStopping // stopping: leave a failing record for redelivery
		}
		herr = c.handleOnce(ctx, e)
		if herr == nil {
			return nil
		}
		if ctx.Err() != nil {
			return errStopping
		}
		c.m.handlerErrors.WithLabelValues(c.cfg.Topic, c.cfg.Group).Inc()
		code := pulse.ErrorCode(herr)
		if code == pulse.EINVALID || code == pulse.EUNPROCESSABLE {
			return c.deadLetter(r, ReasonRejected, e.ID, attempt, herr, log)
		}
		if attempt >= c.cfg.MaxAttempts {
			return c.deadLetter(r, ReasonHandler, e.ID, attempt, herr, log)
		}
		log.Warn("handler failed; retrying", "id", e.ID, "type", e.Type, "attempt", attempt, "err", herr)
		if !c.sleep(c.backoff(attempt)) {
			return errStopping
		}
	}
}

// handleOnce runs the handler unless the event was seen, and marks it after success.
func (c *Consumer) handleOnce(ctx context.Context, e Event) error {
	if c.cfg.Seen != nil {
		seen, err := c.cfg.Seen.Seen(ctx, e.ID)
		if err != nil {
			return fmt.Errorf("events: seen %s: %w", e.ID, err)
		}
		if seen {
			c.duplicates.Inc()
			return nil
		}
	}
	if err := c.callHandler(ctx, e); err != nil {
		return err
	}
	c.handled.Inc()
	c.markSeen(ctx, e.ID)
	return nil
}

// markSeen marks an event whose effect is durable as seen.
func (c *Consumer) markSeen(ctx context.Context, id string) {
	if c.cfg.Seen == nil {
		return
	}
	if err := c.cfg.Seen.Mark(ctx, id); err != nil {
		// The effect is durable; a redelivery would repeat it unless the store's handler is
		// idempotent itself. Retrying the handler here would repeat it now.
		c.cfg.Logger.Warn("marking event seen failed", "id", id, "err", err)
	}
}

// callHandler runs the handler, turning a panic into an error (retried, then dead-lettered)
// so that one bad event cannot kill the process.
func (c *Consumer) callHandler(ctx context.Context, e Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("events: handler panicked on %s: %v", e.ID, p)
		}
	}()
	return c.cfg.Handler(ctx, e)
}

// backoff is the wait before attempt+1.
func (c *Consumer) backoff(attempt int) time.Duration {
	return backoff(c.cfg.Backoff, c.cfg.MaxBackoff, attempt)
}

// deadLetter produces r to the dead-letter topic with the reason and waits for the ack,
// retrying with backoff: a record is committed only after its dead letter is durable.
func (c *Consumer) deadLetter(r *kgo.Record, reason, eventID string, attempts int, cause error, log *slog.Logger) error {
	out, err := deadLetterRecord(r, c.cfg.Group, reason, eventID, attempts, cause)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := c.client.ProduceSync(c.workCtx, out).FirstErr()
		if err == nil {
			break
		}
		if c.workCtx.Err() != nil {
			return errStopping
		}
		log.Error("dead-letter produce failed; retrying", "offset", r.Offset, "partition", r.Partition, "attempt", attempt, "err", err)
		if !c.sleep(c.backoff(attempt)) {
			return errStopping
		}
	}
	c.m.deadLettered.WithLabelValues(c.cfg.Topic, c.cfg.Group, reason).Inc()
	log.Warn("record dead-lettered", "reason", reason, "partition", r.Partition, "offset", r.Offset, "err", cause)
	return nil
}

// deadLetterRecord returns the record for r's dead-letter topic: a DeadLetter value with the
// reason, and r's headers plus the reason's.
func deadLetterRecord(r *kgo.Record, group, reason, eventID string, attempts int, cause error) (*kgo.Record, error) {
	dl := DeadLetter{
		Reason:    reason,
		Error:     cause.Error(),
		Attempts:  attempts,
		Group:     group,
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Key:       string(r.Key),
		EventID:   eventID,
		FailedAt:  time.Now().UTC(),
	}
	var pe *pulse.Error
	if errors.As(cause, &pe) {
		dl.Field = pe.Field
	}
	if utf8.Valid(r.Value) {
		dl.Value = string(r.Value)
	} else {
		dl.ValueB64 = r.Value
	}
	v, err := json.Marshal(dl)
	if err != nil {
		return nil, fmt.Errorf("events: dead letter: %w", err)
	}
	errText := dl.Error
	if len(errText) > 1000 {
		errText = errText[:1000]
	}
	return &kgo.Record{
		Topic: DLQTopic(r.Topic),
		Key:   r.Key,
		Value: v,
		Headers: append(slices.Clone(r.Headers),
			kgo.RecordHeader{Key: HeaderDLQReason, Value: []byte(reason)},
			kgo.RecordHeader{Key: HeaderDLQError, Value: []byte(errText)}),
	}, nil
}
