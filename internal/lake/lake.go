// Package lake keeps Pulse's data lake tables: Parquet files in a blob bucket, fed from a
// local write-ahead log.
//
// A record is durable when AppendPredictions returns: it is in the WAL (package wal), written
// and fsynced together with the records of other concurrent callers. A background compactor
// turns every sealed WAL segment into Parquet objects, one per hive partition:
//
//	predictions/model=<model>/date=<YYYY-MM-DD of scored_at, UTC>/part-<segment seq, 20 digits>.parquet
//	ingest/dataset=<dataset>/date=<YYYY-MM-DD of received_at, UTC>/part-<segment seq>.parquet
//	outcomes/model=<model>/date=<YYYY-MM-DD of the prediction's scored_at, UTC>/part-<segment seq>.parquet
//
// The rows of predictions and outcomes files are sorted by prediction_id, in row groups of
// 8192 rows, so that FindPredictions and Labelled (join.go) read only the row groups that
// may hold the ids they look for.
//
// Exactly once: an object's key is derived from its partition and the sequence number of the
// segment it comes from, and a segment is deleted only after all of its objects are written
// and synced. A crash at any point leaves the segment in the WAL; compacting it again on the
// next start writes the same keys with the same rows, replacing rather than duplicating.
// Temp files of interrupted local writes are swept on Open.
//
// Files are readable as they are by pyarrow (pyarrow.dataset.dataset(root,
// partitioning="hive")) and DuckDB (read_parquet('root/predictions/*/*/*.parquet',
// hive_partitioning=true)). Model names are percent-encoded in the path where they have
// bytes outside [A-Za-z0-9._-].
package lake

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"gocloud.dev/blob"

	"github.com/cloudmedical/pulse/internal/blobstore"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/wal"
)

// Config configures a Lake.
type Config struct {
	// WALDir is the local directory of the write-ahead log (always a local disk).
	WALDir string
	// Store is the bucket where the tables live.
	Store *blobstore.Store
	// MaxSegmentBytes and MaxSegmentAge bound a WAL segment, and so how long a record waits
	// before it is in the tables. 0 means the wal package defaults (64 MiB, 5 s).
	MaxSegmentBytes int64
	MaxSegmentAge   time.Duration
	// JoinCacheBytes bounds the memory of the join's cache of decoded row groups (about 64
	// bytes per prediction). 0 means DefaultJoinCacheBytes.
	JoinCacheBytes int64
	Logger         *slog.Logger          // nil discards
	Registerer     prometheus.Registerer // nil registers nothing

	hooks testHooks
}

// testHooks let tests inject failures and observe the compactor.
type testHooks struct {
	afterObject func(key string) error // after each object is written and synced
	compacted   func(err error)        // after each background compaction pass
	minBackoff  time.Duration
}

func (c *Config) setDefaults() error {
	if c.WALDir == "" {
		return pulse.FieldErrorf(pulse.EINVALID, "WALDir", "lake: config: WALDir is empty, want a local directory")
	}
	if c.Store == nil {
		return pulse.FieldErrorf(pulse.EINVALID, "Store", "lake: config: Store is nil, want an open blob store")
	}
	if c.MaxSegmentBytes < 0 {
		return pulse.FieldErrorf(pulse.EINVALID, "MaxSegmentBytes", "lake: config: MaxSegmentBytes is %d, want >= 0", c.MaxSegmentBytes)
	}
	if c.MaxSegmentAge < 0 {
		return pulse.FieldErrorf(pulse.EINVALID, "MaxSegmentAge", "lake: config: MaxSegmentAge is %v, want >= 0", c.MaxSegmentAge)
	}
	if c.JoinCacheBytes < 0 {
		return pulse.FieldErrorf(pulse.EINVALID, "JoinCacheBytes", "lake: config: JoinCacheBytes is %d, want >= 0", c.JoinCacheBytes)
	}
	if c.JoinCacheBytes == 0 {
		c.JoinCacheBytes = DefaultJoinCacheBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.hooks.minBackoff == 0 {
		c.hooks.minBackoff = 500 * time.Millisecond
	}
	return nil
}

// maxBackoff caps the delay between retries of a failing compaction.
const maxBackoff = time.Minute

// Lake is an open data lake. Its methods are safe for concurrent use.
type Lake struct {
	cfg   Config
	log   *slog.Logger
	store *blobstore.Store
	wal   *wal.WAL
	m     *metrics
	pool  sync.Pool // *encodeBuf
	idx   *joinIndex
	// codec compresses the Parquet pages; shared by the compactions so that its encoders
	// (and their buffers) are reused.
	codec *zstd.Codec

	// closeMu is held for reading by every append and for writing by Close, so that Close
	// waits for appends in flight and later ones see closed.
	closeMu sync.RWMutex
	closed  bool

	compactMu sync.Mutex // one compaction at a time
	// lastPredictions is the number of predictions in the last segment compacted: the room
	// the next one's rows start with. Guarded by compactMu.
	lastPredictions int

	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{} // closed when the compactor returns
}

// encodeBuf holds the WAL encoding of one AppendPredictions call.
type encodeBuf struct {
	buf   []byte
	ends  []int
	parts [][]byte
}

// Open opens the lake and recovers from a previous run: it sweeps temp files of interrupted
// writes, recovers the WAL and compacts every segment left in it before returning. Then it
// starts the background compactor.
func Open(ctx context.Context, cfg Config) (*Lake, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	l := &Lake{
		cfg:   cfg,
		log:   cfg.Logger,
		store: cfg.Store,
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		pool:  sync.Pool{New: func() any { return new(encodeBuf) }},
		// The fastest zstd level: on predictions (JSON features and responses) it compresses
		// as well as the default level, with about a fifth less CPU.
		codec: &zstd.Codec{Level: zstd.SpeedFastest},
	}
	for _, prefix := range []string{predictionsPrefix, ingestPrefix, outcomesPrefix} {
		n, err := l.store.SweepTemp(ctx, prefix)
		if err != nil {
			return nil, fmt.Errorf("lake: open: %w", err)
		}
		if n > 0 {
			l.log.Warn("lake: deleted temp files of interrupted writes", "files", n, "prefix", prefix)
		}
	}
	var err error
	if l.m, err = newMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	l.idx = newJoinIndex(l.store, l.m, cfg.JoinCacheBytes)
	l.wal, err = wal.Open(ctx, wal.Config{
		Dir:             cfg.WALDir,
		MaxSegmentBytes: cfg.MaxSegmentBytes,
		MaxSegmentAge:   cfg.MaxSegmentAge,
		OnSeal:          func(uint64) { l.wake() },
		Name:            "lake",
		Logger:          l.log,
		Registerer:      cfg.Registerer,
	})
	if err != nil {
		l.m.unregister()
		return nil, fmt.Errorf("lake: open: %w", err)
	}
	if pending := len(l.wal.Sealed()); pending > 0 {
		l.log.Info("lake: compacting segments left by the previous run", "segments", pending)
	}
	if err := l.compactAll(ctx); err != nil {
		l.wal.Close()
		l.m.unregister()
		return nil, fmt.Errorf("lake: open: recovering segments left by the previous run: %w", err)
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	go l.run(bg)
	return l, nil
}

// AppendPredictions stores records in the predictions table. When it returns nil they are
// durable; they appear in the Parquet files after the next compaction. Appending nothing is
// a no-op. If ctx ends first the records may still be stored.
func (l *Lake) AppendPredictions(ctx context.Context, recs ...Prediction) error {
	for i := range recs {
		if err := recs[i].validate(i); err != nil {
			return err
		}
	}
	// Indexed before the WAL append, so that the compaction of the segment that holds them,
	// which may run before this call returns, finds them in the tail index.
	l.idx.addTailPredictions(recs)
	size := 0
	for i := range recs {
		size += len(recs[i].Features) + len(recs[i].Response) + len(recs[i].PredictionID) + len(recs[i].Model) + len(recs[i].Alias) + len(recs[i].RequestID) + 64
	}
	err := l.append(ctx, "prediction", len(recs), size, func(b []byte, i int) []byte { return appendPrediction(b, &recs[i]) })
	if err != nil && ctx.Err() == nil {
		// Refused by the WAL. When ctx ended instead, the records may still be written
		// (group commit): their tail entries stay, since an orphan entry is harmless and a
		// missing one would hide a stored record from the join.
		l.idx.removeTailPredictions(recs)
	}
	return err
}

// AppendOutcomes stores records in the outcomes table, durably when it returns nil, like
// AppendPredictions; Labelled sees them at once.
func (l *Lake) AppendOutcomes(ctx context.Context, recs ...Outcome) error {
	for i := range recs {
		if err := recs[i].validate(i); err != nil {
			return err
		}
	}
	l.idx.addTailOutcomes(recs)
	err := l.append(ctx, "outcome", len(recs), 0, func(b []byte, i int) []byte { return appendOutcome(b, &recs[i]) })
	if err != nil && ctx.Err() == nil { // as in AppendPredictions
		l.idx.removeTailOutcomes(recs)
	}
	return err
}

// AppendIngest stores records in the ingest table, durably when it returns nil, like
// AppendPredictions.
func (l *Lake) AppendIngest(ctx context.Context, recs ...IngestRecord) error {
	for i := range recs {
		if err := recs[i].validate(i); err != nil {
			return err
		}
	}
	return l.append(ctx, "ingest record", len(recs), 0, func(b []byte, i int) []byte { return appendIngest(b, &recs[i]) })
}

// append encodes n records with encode and appends them to the WAL as one group commit. size,
// when not 0, is about the bytes of their encoding, to allocate them at once.
func (l *Lake) append(ctx context.Context, what string, n, size int, encode func(b []byte, i int) []byte) error {
	if n == 0 {
		return nil
	}
	e := l.pool.Get().(*encodeBuf)
	defer l.pool.Put(e)
	e.buf, e.ends, e.parts = slices.Grow(e.buf[:0], size), e.ends[:0], e.parts[:0]
	for i := range n {
		e.buf = encode(e.buf, i)
		if size := len(e.buf) - e.lastEnd(); size > wal.MaxPayloadBytes {
			return pulse.Errorf(pulse.ETOOLARGE, "lake: %s %d takes %d bytes, want at most %d", what, i, size, wal.MaxPayloadBytes)
		}
		e.ends = append(e.ends, len(e.buf))
	}
	start := 0
	for _, end := range e.ends {
		e.parts = append(e.parts, e.buf[start:end])
		start = end
	}

	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return pulse.Errorf(pulse.EUNAVAILABLE, "lake: closed")
	}
	if err := l.wal.Append(ctx, e.parts...); err != nil {
		return fmt.Errorf("lake: append %ss: %w", what, err)
	}
	l.m.appended.WithLabelValues(tableOf[what]).Add(float64(n))
	return nil
}

// tableOf names the table of each kind of record appended, for the metrics.
var tableOf = map[string]string{"prediction": "predictions", "outcome": "outcomes", "ingest record": "ingest"}

func (e *encodeBuf) lastEnd() int {
	if len(e.ends) == 0 {
		return 0
	}
	return e.ends[len(e.ends)-1]
}

// Flush seals the active WAL segment and compacts every sealed segment now. When it returns
// nil, every record appended before the call is in the Parquet files.
func (l *Lake) Flush(ctx context.Context) error {
	if err := l.wal.Rotate(ctx); err != nil {
		return fmt.Errorf("lake: flush: %w", err)
	}
	if err := l.compactAll(ctx); err != nil {
		return fmt.Errorf("lake: flush: %w", err)
	}
	return nil
}

// Close stops accepting records, waits for appends in flight, stops the background compactor,
// compacts everything in the WAL and closes it. Records that cannot be compacted now stay in
// the WAL for the next Open; Close reports the error.
func (l *Lake) Close(ctx context.Context) error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return nil
	}
	l.closed = true
	l.closeMu.Unlock()

	l.cancel()
	<-l.done
	var errs []error
	if err := l.wal.Rotate(ctx); err != nil {
		errs = append(errs, err)
	} else if err := l.compactAll(ctx); err != nil {
		errs = append(errs, fmt.Errorf("%w (the records stay in the WAL for the next start)", err))
	}
	if err := l.wal.Close(); err != nil {
		errs = append(errs, err)
	}
	l.m.unregister()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lake: close: %w", err)
	}
	return nil
}

// wake asks the background compactor to run.
func (l *Lake) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// run is the background compactor: it compacts after every sealed segment and retries a
// failed compaction with exponential backoff.
func (l *Lake) run(ctx context.Context) {
	defer close(l.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	var backoff time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
		case <-retry.C:
		}
		err := l.compactAll(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			l.m.compactionErrors.Inc()
			backoff = min(max(2*backoff, l.cfg.hooks.minBackoff), maxBackoff)
			l.log.Error("lake: compaction failed; the records are safe in the WAL, retrying", "err", err, "retry_in", backoff)
			retry.Reset(backoff)
		} else {
			backoff = 0
		}
		if l.cfg.hooks.compacted != nil {
			l.cfg.hooks.compacted(err)
		}
	}
}

// compactAll compacts every sealed segment, oldest first, and stops at the first error.
func (l *Lake) compactAll(ctx context.Context) error {
	l.compactMu.Lock()
	defer l.compactMu.Unlock()
	for _, seq := range l.wal.Sealed() {
		if err := ctx.Err(); err != nil {
			return err
		}
		start := time.Now()
		if err := l.compactSegment(ctx, seq); err != nil {
			return err
		}
		l.m.compactionSeconds.Observe(time.Since(start).Seconds())
	}
	return nil
}

// compactSegment writes the records of one sealed segment to their Parquet objects, syncs
// them and then removes the segment.
func (l *Lake) compactSegment(ctx context.Context, seq uint64) error {
	predictions := map[partition][]predictionRow{}
	ingest := map[partition][]ingestRow{}
	outcomes := map[partition][]outcomeRow{}
	records := 0
	var dates dateCache
	// The rows of the partition of the last prediction, out of the map while it lasts: a
	// segment's predictions are mostly of one partition. The first slice has the room of the
	// last segment's predictions.
	var part partition
	var rows []predictionRow
	roomFor := l.lastPredictions
	for p, err := range l.wal.Payloads(seq) {
		if err != nil {
			return fmt.Errorf("lake: compact segment %d: %w", seq, err)
		}
		switch p[0] {
		case tagPrediction:
			next, row, err := decodePrediction(p, &dates)
			if err != nil {
				return fmt.Errorf("lake: compact segment %d, record %d: %w", seq, records, err)
			}
			if rows == nil || next != part {
				if rows != nil {
					predictions[part] = rows
				}
				part, rows = next, predictions[next]
				if rows == nil {
					rows = make([]predictionRow, 0, max(roomFor, 1))
					roomFor = 0
				}
			}
			rows = append(rows, row)
		case tagIngest:
			part, row, err := decodeIngest(p, &dates)
			if err != nil {
				return fmt.Errorf("lake: compact segment %d, record %d: %w", seq, records, err)
			}
			ingest[part] = append(ingest[part], row)
		case tagOutcome:
			part, row, err := decodeOutcome(p, &dates)
			if err != nil {
				return fmt.Errorf("lake: compact segment %d, record %d: %w", seq, records, err)
			}
			outcomes[part] = append(outcomes[part], row)
		default:
			return fmt.Errorf("lake: compact segment %d, record %d: unknown table tag %d (written by a newer Pulse?)", seq, records, p[0])
		}
		records++
	}
	if rows != nil {
		predictions[part] = rows
	}
	l.lastPredictions = 0
	for _, rows := range predictions {
		l.lastPredictions += len(rows)
	}
	// Sorted by id for the join (deterministically: compacting the segment again writes the
	// same objects).
	for _, rows := range predictions {
		slices.SortFunc(rows, func(a, b predictionRow) int { return cmp.Compare(a.PredictionID, b.PredictionID) })
	}
	for _, rows := range outcomes {
		slices.SortFunc(rows, func(a, b outcomeRow) int { return cmp.Compare(a.PredictionID, b.PredictionID) })
	}
	objects := 0
	for _, write := range []func() (int, error){
		func() (int, error) { return writeParts(ctx, l, seq, predictions) },
		func() (int, error) { return writeParts(ctx, l, seq, ingest) },
		func() (int, error) { return writeParts(ctx, l, seq, outcomes) },
	} {
		n, err := write()
		objects += n
		if err != nil {
			return fmt.Errorf("lake: compact segment %d: %w", seq, err)
		}
	}
	l.idx.compacted(seq, predictions, outcomes)
	if err := l.wal.Remove(seq); err != nil {
		return fmt.Errorf("lake: compact segment %d: %w", seq, err)
	}
	l.m.compacted.Add(float64(records))
	l.log.Debug("lake: compacted segment", "segment", seq, "records", records, "objects", objects)
	return nil
}

// writeParts writes one Parquet object per partition, in partition order, and syncs each.
func writeParts[T any](ctx context.Context, l *Lake, seq uint64, parts map[partition][]T) (int, error) {
	keys := slices.SortedFunc(maps.Keys(parts), func(a, b partition) int {
		return cmp.Or(cmp.Compare(a.table, b.table), cmp.Compare(a.name, b.name), cmp.Compare(a.date, b.date))
	})
	for i, part := range keys {
		key := part.key(seq)
		if err := writeParquet(ctx, l, key, parts[part]); err != nil {
			return i, err
		}
		if err := l.store.Sync(ctx, key); err != nil {
			return i, err
		}
		l.m.objects.Inc()
		if l.cfg.hooks.afterObject != nil {
			if err := l.cfg.hooks.afterObject(key); err != nil {
				return i, err
			}
		}
	}
	return len(keys), nil
}

// writeParquet writes rows as the Parquet object key. On error nothing is published under key
// (a local write leaves at most a temp file, which Open sweeps).
func writeParquet[T any](ctx context.Context, l *Lake, key string, rows []T) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bw, err := l.store.Bucket.NewWriter(wctx, key, &blob.WriterOptions{ContentType: "application/vnd.apache.parquet"})
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	pw := parquet.NewGenericWriter[T](bw,
		parquet.Compression(l.codec),
		parquet.DataPageVersion(1),
		parquet.MaxRowsPerRowGroup(joinRowGroupRows),
	)
	_, err = pw.Write(rows)
	if err == nil {
		err = pw.Close()
	}
	if err != nil {
		cancel() // abort the upload: Close must not publish a partial object
		bw.Close()
		return fmt.Errorf("write %s: %w", key, err)
	}
	if err := bw.Close(); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}
