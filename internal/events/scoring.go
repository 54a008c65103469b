package events

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// ScoreResult is the answer to one ScoreRequest: Body is the REST predict response for its
// inputs, or Err says why it was not scored.
type ScoreResult struct {
	Body []byte
	Err  error
}

// ScoreFunc scores requests and returns one result per request, in order, once every scored
// record is durable (in the lake). A result's error is the request's answer, except that
// EUNAVAILABLE and EINTERNAL (and any error that is not a *pulse.Error) are retried first. An
// error of the call means nothing was answered: the whole call is retried.
type ScoreFunc func(ctx context.Context, reqs []ScoreRequest) ([]ScoreResult, error)

// ScoreConsumerConfig configures a ScoreConsumer.
type ScoreConsumerConfig struct {
	// ClientOpts connect to the cluster (kafka.Conn.Opts); the consumer adds its group options.
	ClientOpts []kgo.Opt
	// Group is the consumer group (pulse serve: "pulse-score"); Requests and Results are the
	// full names of the score.requests and score.results topics. All required.
	Group    string
	Requests string
	Results  string
	// Score scores a batch of requests. Required.
	Score ScoreFunc
	// Source is the source attribute of the results; "/pulse/serve" when empty.
	Source string
	// MaxBatch is the most records scored, answered and committed together; 2000 when zero.
	MaxBatch int
	// MaxAttempts at scoring a request whose error is retried; 5 when zero. Backoff before the
	// first retry, doubled per attempt up to MaxBackoff; 100 ms and 5 s when zero.
	MaxAttempts         int
	Backoff, MaxBackoff time.Duration
	// Logger and Registerer: nil discards logs and registers no metrics.
	Logger     *slog.Logger
	Registerer prometheus.Registerer

	// afterProduce, in tests, runs after the results were acknowledged and before the commit.
	afterProduce func()
}

func (c *ScoreConsumerConfig) defaults() error {
	if c.Source == "" {
		c.Source = "/pulse/serve"
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 2000
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.Backoff == 0 {
		c.Backoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case c.Group == "":
		return pulse.FieldErrorf(pulse.EINVALID, "group", "events: score consumer: group is required")
	case c.Requests == "" || c.Results == "":
		return pulse.FieldErrorf(pulse.EINVALID, "topic", "events: score consumer: requests and results topics are required")
	case c.Score == nil:
		return pulse.FieldErrorf(pulse.EINVALID, "score", "events: score consumer: a score function is required")
	case c.MaxBatch < 1:
		return pulse.FieldErrorf(pulse.EINVALID, "max_batch", "events: score consumer: got max batch %d, want at least 1", c.MaxBatch)
	case c.MaxAttempts < 1:
		return pulse.FieldErrorf(pulse.EINVALID, "max_attempts", "events: score consumer: got %d max attempts, want at least 1", c.MaxAttempts)
	case c.Backoff < 0 || c.MaxBackoff < c.Backoff:
		return pulse.FieldErrorf(pulse.EINVALID, "backoff", "events: score consumer: want 0 <= backoff <= max backoff")
	}
	return nil
}

// ScoreConsumer answers score.requested events as a member of a consumer group: each request
// gets one score.completed event on the results topic, with the request's Kafka key (so that
// results of one key keep their order and can be co-partitioned with the requests) and its
// correlation id in the HeaderCorrelationID header.
//
// It works in batches of what one poll returns (up to MaxBatch records): it decodes them (a
// malformed record goes to the requests' dead-letter topic), scores them with one Score call,
// which stores every scored record durably, produces the results and dead letters, and commits
// the batch's offsets only once the broker acknowledged all of them; meanwhile it scores the
// next batch. A crash at any point redelivers the uncommitted requests, which are scored and
// answered again (with new prediction ids): delivery is at least once, and clients drop
// repeated request_ids. No record is skipped silently.
type ScoreConsumer struct {
	lifecycle
	cfg     ScoreConsumerConfig
	m       *metrics
	sm      *scoreMetrics
	log     *slog.Logger
	commits sync.WaitGroup // commits in flight

	// Owned by the run goroutine: the decoded requests of the batch being handled, the
	// strings they repeat, the memory of answered batches for the next ones, and bytes of
	// crypto/rand for the results' ids, read in bulk.
	reqs     []ScoreRequest
	interned interned
	spare    []*answers
	random   *bufio.Reader
}

// answers holds the results of a batch on their way to the broker: their records, headers
// and bytes (values and correlation ids), in a few allocations reused batch after batch.
type answers struct {
	recs    []kgo.Record
	headers []kgo.RecordHeader
	buf     []byte
}

// maxSpare bounds the answers kept for reuse: the batch in flight and the one being handled.
const maxSpare = 2

// scoreMetrics are the score consumer's own Prometheus collectors.
type scoreMetrics struct {
	results   *prometheus.CounterVec // model, status
	batchSize prometheus.Histogram
	batchTime prometheus.Histogram
}

func newScoreMetrics(reg prometheus.Registerer) *scoreMetrics {
	return &scoreMetrics{
		results: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pulse", Subsystem: "events", Name: "score_results_total",
			Help: "Score results produced, by model and status (ok, or the error code); model is empty when it was not found."}, []string{"model", "status"})),
		batchSize: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "pulse", Subsystem: "events", Name: "score_batch_records",
			Help: "Score requests handled per batch (one poll, one lake append, one commit).", Buckets: []float64{1, 4, 16, 64, 256, 1024, 2048, 4096, 8192}})),
		batchTime: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "pulse", Subsystem: "events", Name: "score_batch_seconds",
			Help: "Time from the poll of a batch of score requests to the commit of its offsets.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})),
	}
}

// NewScoreConsumer validates cfg and connects a group client; call Start to consume.
func NewScoreConsumer(cfg ScoreConsumerConfig) (*ScoreConsumer, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	client, err := groupClient(cfg.ClientOpts, cfg.Group, cfg.Requests)
	if err != nil {
		return nil, fmt.Errorf("events: score consumer %s on %s: %w", cfg.Group, cfg.Requests, err)
	}
	return &ScoreConsumer{
		lifecycle: newLifecycle("score consumer "+cfg.Group, client),
		cfg:       cfg, m: newMetrics(cfg.Registerer), sm: newScoreMetrics(cfg.Registerer),
		log:    cfg.Logger.With("group", cfg.Group, "topic", cfg.Requests),
		random: bufio.NewReaderSize(rand.Reader, 4096),
	}, nil
}

// Start begins consuming in a goroutine. ctx bounds the whole run: canceling it stops the
// consumer without waiting for the batch in flight.
func (c *ScoreConsumer) Start(ctx context.Context) error {
	return c.start(ctx, func() error { c.run(); return nil })
}

// Stop stops gracefully: no new batch is fetched, the batch in flight is scored, answered and
// committed (unless its scoring is being retried: it is left for redelivery), and the consumer
// leaves the group. When ctx expires first, the batch in flight is abandoned uncommitted.
func (c *ScoreConsumer) Stop(ctx context.Context) error { return c.stop(ctx) }

// allowRebalanceEvery bounds how long a busy consumer keeps rebalances waiting: a batch in
// flight is finished and rebalances are let through at least this often.
const allowRebalanceEvery = time.Second

// run polls and answers batches, one batch deep in a pipeline: while the results of a batch
// are on their way to the broker, the next batch is decoded and scored; a batch is committed
// once its results are acknowledged, and always after the batch before it. Rebalances wait
// while a batch is in flight (BlockRebalanceOnPoll), so that it is committed by this member.
func (c *ScoreConsumer) run() {
	defer func() {
		if !c.isAborted() {
			c.commits.Wait()
		}
		c.client.CloseAllowingRebalance()
	}()
	consumed := c.m.consumed.WithLabelValues(c.cfg.Requests, c.cfg.Group)
	var prev *batch
	allowed := time.Now()
	for {
		if prev != nil && (c.client.BufferedFetchRecords() == 0 || time.Since(allowed) > allowRebalanceEvery || c.pollCtx.Err() != nil) {
			if !c.finish(prev) {
				return
			}
			prev = nil
		}
		if prev == nil {
			c.commits.Wait()
			c.client.AllowRebalance()
			allowed = time.Now()
		}
		fetches := c.client.PollRecords(c.pollCtx, c.cfg.MaxBatch)
		if fetches.IsClientClosed() || c.pollCtx.Err() != nil && fetches.NumRecords() == 0 {
			if prev != nil && !fetches.IsClientClosed() {
				c.finish(prev)
			}
			return
		}
		failed := false
		fetches.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				failed = true
				c.log.Warn("fetch failed", "partition", p, "err", err)
			}
		})
		if failed && fetches.NumRecords() == 0 {
			if prev == nil && !c.sleep(c.cfg.MaxBackoff) {
				return
			}
			continue
		}
		b := &batch{start: time.Now()}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			last := p.Records[len(p.Records)-1].Offset
			c.m.lag.WithLabelValues(c.cfg.Requests, c.cfg.Group, strconv.Itoa(int(p.Partition))).Set(float64(max(0, p.HighWatermark-last-1)))
			b.records = append(b.records, p.Records...)
		})
		if len(b.records) == 0 {
			continue
		}
		consumed.Add(float64(len(b.records)))
		if err := c.handle(b); err != nil || c.isAborted() {
			// Stopping while the batch's scoring is retried, or crashed: it is redelivered.
			if err != nil && !errors.Is(err, errStopping) {
				c.log.Error("score consumer stopped; its requests will be answered after a restart", "err", err)
			}
			if prev != nil && !c.isAborted() {
				c.finish(prev)
			}
			return
		}
		if prev != nil && !c.finish(prev) {
			return
		}
		prev = b
	}
}

// batch is one poll's requests on their way: answered when every record of out is
// acknowledged, then committed.
type batch struct {
	start   time.Time
	records []*kgo.Record // the requests
	out     []*kgo.Record // their results and dead letters
	dead    int           // dead letters in out
	ans     *answers      // the memory of the results in out
	counts  map[[2]string]int

	acks     sync.WaitGroup
	mu       sync.Mutex
	failed   []*kgo.Record
	firstErr error
}

// handle decodes and scores a batch and starts producing its answers; errStopping when the
// consumer stops while the scoring is being retried.
func (c *ScoreConsumer) handle(b *batch) error {
	reqs := slices.Grow(c.reqs[:0], len(b.records))
	defer func() { clear(reqs); c.reqs = reqs[:0] }() // keep no request alive
	from := make([]*kgo.Record, 0, len(b.records))
	for _, r := range b.records {
		reqs = append(reqs, ScoreRequest{})
		if err := decodeScore(r.Value, &reqs[len(reqs)-1], &c.interned); err != nil {
			reqs = reqs[:len(reqs)-1]
			dl, derr := deadLetterRecord(r, c.cfg.Group, ReasonMalformed, "", 0, err)
			if derr != nil {
				return derr
			}
			b.out = append(b.out, dl)
			c.log.Warn("malformed score request dead-lettered", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		from = append(from, r)
	}
	b.dead = len(b.out)
	results, err := c.score(reqs)
	if err != nil {
		return err
	}
	var stamp [64]byte
	at := time.Now().UTC().AppendFormat(stamp[:0], time.RFC3339Nano)
	a := c.answers(reqs, results)
	b.ans = a
	b.counts = map[[2]string]int{}
	for i := range reqs {
		req, res := &reqs[i], results[i]
		id, err := uuid.NewV7FromReader(c.random)
		if err != nil {
			id = uuid.New()
		}
		start := len(a.buf)
		a.buf = appendScoreResult(a.buf, id, c.cfg.Source, req, res.Body, res.Err, at)
		value := a.buf[start:len(a.buf):len(a.buf)]
		headers := a.headers[2*i : 2*i+1 : 2*i+2]
		headers[0] = kgo.RecordHeader{Key: "content-type", Value: contentTypeCloud}
		if req.CorrelationID != "" {
			start := len(a.buf)
			a.buf = append(a.buf, req.CorrelationID...)
			headers = append(headers, kgo.RecordHeader{Key: HeaderCorrelationID, Value: a.buf[start:len(a.buf):len(a.buf)]})
		}
		a.recs[i] = kgo.Record{Topic: c.cfg.Results, Key: from[i].Key, Value: value, Headers: headers}
		b.out = append(b.out, &a.recs[i])
		status, model := "ok", req.Model
		if res.Err != nil {
			status = pulse.ErrorCode(res.Err)
			if status == pulse.ENOTFOUND || status == pulse.EINTERNAL || status == pulse.EUNAVAILABLE {
				model = "" // maybe not a model: clients must not create series at will
			}
		}
		b.counts[[2]string{model, status}]++
	}
	b.acks.Add(len(b.out))
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			b.mu.Lock()
			b.failed = append(b.failed, r)
			if b.firstErr == nil {
				b.firstErr = err
			}
			b.mu.Unlock()
		}
		b.acks.Done()
	}
	for _, r := range b.out {
		c.client.Produce(c.workCtx, r, promise)
	}
	return nil
}

// answers returns memory for the results of reqs: a spare one when there is, grown to hold
// them.
func (c *ScoreConsumer) answers(reqs []ScoreRequest, results []ScoreResult) *answers {
	var a *answers
	if n := len(c.spare); n > 0 {
		a, c.spare = c.spare[n-1], c.spare[:n-1]
	} else {
		a = new(answers)
	}
	if cap(a.recs) < len(reqs) {
		a.recs = make([]kgo.Record, len(reqs))
		a.headers = make([]kgo.RecordHeader, 2*len(reqs))
	}
	a.recs, a.headers = a.recs[:len(reqs)], a.headers[:2*len(reqs)]
	// About the bytes of the results and correlation ids, so that the buffer grows once: the
	// envelope takes about 300 bytes besides the strings, whose escapes take at most 6 bytes
	// per byte, and a problem about 200 besides its message. (Slices of a buffer that grows
	// after all stay valid.)
	size := 0
	for i := range reqs {
		size += 512 + len(results[i].Body) + 6*(len(c.cfg.Source)+len(reqs[i].Subject)+len(reqs[i].ID)) + 7*len(reqs[i].CorrelationID)
		if err := results[i].Err; err != nil {
			size += 6 * len(err.Error())
		}
	}
	a.buf = slices.Grow(a.buf[:0], size)
	return a
}

// reuse keeps the answers of an answered batch for later batches: the broker acknowledged
// them, and the client holds them no more.
func (c *ScoreConsumer) reuse(b *batch) {
	if b.ans == nil || len(c.spare) >= maxSpare {
		return
	}
	clear(b.ans.recs) // keep no request key alive
	clear(b.ans.headers)
	c.spare = append(c.spare, b.ans)
	b.ans, b.out = nil, nil
}

// finish waits until every answer of b is acknowledged (producing failed ones again), then
// commits b. It returns false when the consumer stops or crashed first: b is not committed.
func (c *ScoreConsumer) finish(b *batch) bool {
	b.acks.Wait()
	if len(b.failed) > 0 {
		c.log.Error("producing score results failed; retrying", "records", len(b.failed), "err", b.firstErr)
		if !c.sleep(c.backoff(1)) || c.produce(b.failed) != nil {
			return false
		}
	}
	if c.isAborted() {
		return false
	}
	if c.cfg.afterProduce != nil {
		c.cfg.afterProduce()
		if c.isAborted() {
			return false
		}
	}
	c.commit(b)
	c.reuse(b)
	for k, n := range b.counts {
		c.sm.results.WithLabelValues(k[0], k[1]).Add(float64(n))
	}
	if b.dead > 0 {
		c.m.deadLettered.WithLabelValues(c.cfg.Requests, c.cfg.Group, ReasonMalformed).Add(float64(b.dead))
	}
	c.sm.batchSize.Observe(float64(len(b.records)))
	return true
}

// commit commits the offsets after b's records without waiting: commits are sent in order, and
// run waits for those in flight before it lets a rebalance through or leaves the group. It
// commits even while stopping, with a context of its own: the answers are out.
func (c *ScoreConsumer) commit(b *batch) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	for _, r := range b.records {
		ps := offsets[r.Topic]
		if ps == nil {
			ps = map[int32]kgo.EpochOffset{}
			offsets[r.Topic] = ps
		}
		if o, ok := ps[r.Partition]; !ok || r.Offset+1 > o.Offset {
			ps[r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.workCtx), 10*time.Second)
	c.commits.Add(1)
	records, start := len(b.records), b.start
	c.client.CommitOffsets(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		defer c.commits.Done()
		defer cancel()
		if err == nil && resp != nil {
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil && err == nil {
						err = perr
					}
				}
			}
		}
		if err != nil {
			c.log.Warn("commit failed; the batch will be answered again after a rebalance or restart", "records", records, "err", err)
			return
		}
		c.sm.batchTime.Observe(time.Since(start).Seconds())
	})
}

var contentTypeCloud = []byte(ContentTypeCloud)

// retryable reports whether a request's error is worth another attempt.
func retryable(err error) bool {
	code := pulse.ErrorCode(err)
	return code == pulse.EUNAVAILABLE || code == pulse.EINTERNAL
}

// score calls Score for reqs, retrying the requests whose error is retryable (or all of them
// when the call fails) with backoff, up to MaxAttempts; then their last error is their answer.
func (c *ScoreConsumer) score(reqs []ScoreRequest) ([]ScoreResult, error) {
	results := make([]ScoreResult, len(reqs))
	if len(reqs) == 0 {
		return results, nil
	}
	pending := make([]int, len(reqs))
	for i := range pending {
		pending[i] = i
	}
	batch := reqs
	for attempt := 1; ; attempt++ {
		res, err := c.callScore(batch)
		if err == nil && len(res) != len(batch) {
			err = fmt.Errorf("events: score returned %d results for %d requests", len(res), len(batch))
		}
		var next []int
		cause := err
		for j, i := range pending {
			r := ScoreResult{Err: err}
			if err == nil {
				r = res[j]
			}
			if r.Err != nil && retryable(r.Err) && attempt < c.cfg.MaxAttempts {
				next = append(next, i)
				cause = r.Err
				continue
			}
			results[i] = r
		}
		if len(next) == 0 {
			return results, nil
		}
		if c.workCtx.Err() != nil || c.pollCtx.Err() != nil {
			return nil, errStopping // stopping: leave the batch for redelivery
		}
		c.log.Warn("scoring failed; retrying", "requests", len(next), "attempt", attempt, "err", cause)
		if !c.sleep(c.backoff(attempt)) {
			return nil, errStopping
		}
		pending = next
		batch = make([]ScoreRequest, len(pending))
		for j, i := range pending {
			batch[j] = reqs[i]
		}
	}
}

// callScore runs Score, turning a panic into an error (retried) so that one bad request cannot
// kill the process.
func (c *ScoreConsumer) callScore(reqs []ScoreRequest) (res []ScoreResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("events: score panicked: %v", p)
		}
	}()
	return c.cfg.Score(c.workCtx, reqs)
}

// produce produces rs and waits until the broker acknowledged every one, producing the
// failed ones again with backoff; errStopping when the consumer stops first.
func (c *ScoreConsumer) produce(rs []*kgo.Record) error {
	for attempt := 1; ; attempt++ {
		var failed []*kgo.Record
		var firstErr error
		for _, pr := range c.client.ProduceSync(c.workCtx, rs...) {
			if pr.Err != nil {
				failed = append(failed, pr.Record)
				if firstErr == nil {
					firstErr = pr.Err
				}
			}
		}
		if len(failed) == 0 {
			return nil
		}
		if c.workCtx.Err() != nil {
			return errStopping
		}
		c.log.Error("producing score results failed; retrying", "records", len(failed), "attempt", attempt, "err", firstErr)
		if !c.sleep(c.backoff(attempt)) {
			return errStopping
		}
		rs = failed
	}
}

// backoff is the wait before attempt+1.
func (c *ScoreConsumer) backoff(attempt int) time.Duration {
	return backoff(c.cfg.Backoff, c.cfg.MaxBackoff, attempt)
}
