// Package wal is a generic, segmented write-ahead log with group commit.
//
// Append returns only after its payloads are written and fsynced. A single writer goroutine
// takes everything appended since its last write, writes it with one write call and makes it
// durable with one fsync (group commit): while one fsync runs, new appends gather for the next,
// so the batch size grows with the load and the latency stays about two fsyncs.
//
// The log is a directory of segment files (see the format in segment.go). The active segment
// is sealed when it grows past Config.MaxSegmentBytes, when its first record is older than
// Config.MaxSegmentAge, on Rotate and on Close. Sealed segments wait for a consumer, which reads
// them with Payloads and deletes them with Remove once their contents are safe elsewhere.
//
// Sequence numbers of segments increase monotonically, even across restarts and even when the
// directory was emptied: a new segment gets max(previous+1, current Unix time in nanoseconds).
// A consumer may therefore name what it derives from a segment after its sequence number.
//
// A failed write or fsync is returned to every appender of that batch and stops the log for
// good (fail-stop): after an fsync error the state of the file is unknown, and going on could
// acknowledge records that are lost. Open recovers on the next start.
package wal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Defaults of Config.
const (
	DefaultMaxSegmentBytes = 64 << 20
	DefaultMaxSegmentAge   = 5 * time.Second
)

// ErrClosed is returned by the methods of a closed WAL.
var ErrClosed = pulse.Errorf(pulse.EUNAVAILABLE, "wal: closed")

// Config configures a WAL.
type Config struct {
	// Dir is the directory of the segment files; it is created if needed. Only one WAL may
	// use a directory at a time (Open takes an exclusive lock on it).
	Dir string
	// MaxSegmentBytes seals the active segment once it holds at least this many bytes.
	// 0 means DefaultMaxSegmentBytes.
	MaxSegmentBytes int64
	// MaxSegmentAge seals the active segment this long after its first record was written.
	// 0 means DefaultMaxSegmentAge.
	MaxSegmentAge time.Duration
	// OnSeal, if set, is called with the sequence number of each segment sealed while the WAL
	// runs. It is called from the writer goroutine and must not block: signal a consumer and
	// let it list Sealed. Segments that Open finds are not announced: list Sealed after Open.
	OnSeal func(seq uint64)
	// Name labels the metrics of this WAL (label "wal"), so that several WALs can share a
	// Registerer. Empty means "default".
	Name       string
	Logger     *slog.Logger          // nil discards
	Registerer prometheus.Registerer // nil registers nothing

	// syncFile replaces (*os.File).Sync in tests, to inject fsync failures.
	syncFile func(*os.File) error
}

func (c *Config) setDefaults() error {
	if c.Dir == "" {
		return pulse.FieldErrorf(pulse.EINVALID, "Dir", "wal: config: Dir is empty, want a directory")
	}
	if c.MaxSegmentBytes < 0 {
		return pulse.FieldErrorf(pulse.EINVALID, "MaxSegmentBytes", "wal: config: MaxSegmentBytes is %d, want >= 0", c.MaxSegmentBytes)
	}
	if c.MaxSegmentAge < 0 {
		return pulse.FieldErrorf(pulse.EINVALID, "MaxSegmentAge", "wal: config: MaxSegmentAge is %v, want >= 0", c.MaxSegmentAge)
	}
	if c.MaxSegmentBytes == 0 {
		c.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if c.MaxSegmentAge == 0 {
		c.MaxSegmentAge = DefaultMaxSegmentAge
	}
	if c.Name == "" {
		c.Name = "default"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.syncFile == nil {
		c.syncFile = (*os.File).Sync
	}
	return nil
}

// WAL is an open write-ahead log. Its methods are safe for concurrent use.
type WAL struct {
	cfg  Config
	log  *slog.Logger
	m    *metrics
	lock *os.File // holds the directory lock

	mu      sync.Mutex
	pending []byte // framed records waiting for the writer
	batch   *batch // completion of the records in pending
	err     error  // set once a write or fsync failed
	closed  bool
	sealed  []uint64 // sealed segments not yet removed, ascending

	kick chan struct{} // wakes the writer; capacity 1
	ctl  chan ctlReq
	done chan struct{} // closed when the writer goroutine returns

	// Owned by the writer goroutine.
	active      *os.File
	activeSeq   uint64
	activeSize  int64
	lastSeq     uint64
	spare       []byte
	rotateTimer *time.Timer
}

// batch is the completion of one group commit, shared by all its appenders.
type batch struct {
	done    chan struct{}
	err     error
	records int
}

func newBatch() *batch {
	return &batch{done: make(chan struct{})}
}

type ctlOp int

const (
	opRotate ctlOp = iota
	opClose
)

type ctlReq struct {
	op    ctlOp
	reply chan error
}

// Open opens the WAL in cfg.Dir and recovers it: every existing segment is checked and
// sealed. A torn tail of the newest segment (left by a crash during a write) is cut off; any
// other damage is an error naming the segment and offset. An emptied newest segment is removed.
func Open(ctx context.Context, cfg Config) (*WAL, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer, cfg.Name)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		m.unregister()
		return nil, err
	}
	w := &WAL{
		cfg:   cfg,
		log:   cfg.Logger,
		m:     m,
		lock:  lock,
		batch: newBatch(),
		kick:  make(chan struct{}, 1),
		ctl:   make(chan ctlReq),
		done:  make(chan struct{}),
	}
	if err := w.recover(ctx); err != nil {
		lock.Close()
		m.unregister()
		return nil, err
	}
	m.sealed.Set(float64(len(w.sealed)))
	w.rotateTimer = time.NewTimer(time.Hour)
	w.rotateTimer.Stop()
	go w.run()
	return w, nil
}

// recover checks every segment in the directory, cuts a torn tail off the newest one and
// records them all as sealed.
func (w *WAL) recover(ctx context.Context) error {
	entries, err := os.ReadDir(w.cfg.Dir)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		if seq, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	for i, seq := range seqs {
		if err := ctx.Err(); err != nil {
			return err
		}
		records, err := w.recoverSegment(seq, i == len(seqs)-1)
		if err != nil {
			return err
		}
		if records > 0 {
			w.sealed = append(w.sealed, seq)
		}
		w.lastSeq = seq
	}
	return nil
}

// recoverSegment checks one segment and returns its number of records. A torn tail of the
// newest segment is truncated; a segment left without records is removed.
func (w *WAL) recoverSegment(seq uint64, newest bool) (int, error) {
	path := filepath.Join(w.cfg.Dir, segmentName(seq))
	records, end, scanErr := scanSegment(path)
	var cerr *CorruptError
	switch {
	case scanErr == nil:
	case errors.As(scanErr, &cerr) && cerr.Torn && newest:
		size, _ := fileSize(path)
		w.log.Warn("wal: cutting off the torn tail of the newest segment, left by a crash during a write",
			"segment", cerr.Segment, "offset", cerr.Offset, "bytes", size-end, "reason", cerr.Reason, "records_kept", records)
		if records > 0 {
			if err := truncateFile(path, end); err != nil {
				return 0, fmt.Errorf("wal: truncate torn tail of %s: %w", cerr.Segment, err)
			}
		}
	case cerr != nil && cerr.Torn:
		return 0, fmt.Errorf("%w (a torn tail is only possible in the newest segment; records are missing)", scanErr)
	default:
		return 0, scanErr
	}
	if records == 0 {
		if err := os.Remove(path); err != nil {
			return 0, fmt.Errorf("wal: remove empty segment: %w", err)
		}
		if err := syncDir(w.cfg.Dir); err != nil {
			return 0, fmt.Errorf("wal: %w", err)
		}
	}
	return records, nil
}

// scanSegment reads a whole segment and returns its number of good records and the offset
// where they end.
func scanSegment(path string) (records int, end int64, err error) {
	r, err := openSegment(path)
	if err != nil {
		return 0, 0, err
	}
	defer r.close()
	for {
		_, err := r.next()
		if errors.Is(err, io.EOF) {
			return records, r.off, nil
		}
		if err != nil {
			return records, r.off, err
		}
		records++
	}
}

// Append appends payloads as records and returns once they are durable: written and fsynced
// together with whatever other appenders added meanwhile. Payloads must hold 1 to
// MaxPayloadBytes bytes each; Append copies them before it returns.
//
// If ctx ends first, Append returns its error, but the records may still be written.
func (w *WAL) Append(ctx context.Context, payloads ...[]byte) error {
	if len(payloads) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	for i, p := range payloads {
		if len(p) == 0 {
			return pulse.Errorf(pulse.EINVALID, "wal: payload %d is empty, want at least 1 byte", i)
		}
		if len(p) > MaxPayloadBytes {
			return pulse.Errorf(pulse.ETOOLARGE, "wal: payload %d has %d bytes, want at most %d", i, len(p), MaxPayloadBytes)
		}
	}
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		return w.err
	}
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	for _, p := range payloads {
		w.pending = appendFrame(w.pending, p)
	}
	b := w.batch
	b.records += len(payloads)
	w.mu.Unlock()

	select {
	case w.kick <- struct{}{}:
	default: // the writer is already due to run
	}
	select {
	case <-b.done:
	case <-ctx.Done():
		return fmt.Errorf("wal: append: %w (the records may still be written)", ctx.Err())
	}
	if b.err != nil {
		return b.err
	}
	w.m.appendSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// Rotate seals the active segment now if it holds any record, after writing everything
// appended before the call.
func (w *WAL) Rotate(ctx context.Context) error {
	return w.control(ctx, opRotate)
}

func (w *WAL) control(ctx context.Context, op ctlOp) error {
	req := ctlReq{op: op, reply: make(chan error, 1)}
	select {
	case w.ctl <- req:
	case <-w.done:
		return w.failure()
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// failure returns the error that stopped the writer.
func (w *WAL) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	return ErrClosed
}

// Sealed returns the sequence numbers of the sealed segments that are not removed yet, oldest
// first.
func (w *WAL) Sealed() []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.sealed)
}

// Payloads returns an iterator over the payloads of sealed segment seq, in append order. A
// payload is valid only until the iteration continues. An error (ENOTFOUND for a segment that
// is not sealed, a *CorruptError for damage) is yielded last.
func (w *WAL) Payloads(seq uint64) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		w.mu.Lock()
		_, ok := slices.BinarySearch(w.sealed, seq)
		w.mu.Unlock()
		if !ok {
			yield(nil, pulse.Errorf(pulse.ENOTFOUND, "wal: segment %d is not a sealed segment", seq))
			return
		}
		r, err := openSegment(filepath.Join(w.cfg.Dir, segmentName(seq)))
		if err != nil {
			yield(nil, err)
			return
		}
		defer r.close()
		for {
			p, err := r.next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(p, nil) {
				return
			}
		}
	}
}

// Remove deletes sealed segment seq, once its records are safe elsewhere. The deletion is
// durable when Remove returns.
func (w *WAL) Remove(seq uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, ok := slices.BinarySearch(w.sealed, seq)
	if !ok {
		return pulse.Errorf(pulse.ENOTFOUND, "wal: segment %d is not a sealed segment", seq)
	}
	if err := os.Remove(filepath.Join(w.cfg.Dir, segmentName(seq))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("wal: remove segment: %w", err)
	}
	w.sealed = slices.Delete(w.sealed, i, i+1)
	w.m.sealed.Set(float64(len(w.sealed)))
	if err := syncDir(w.cfg.Dir); err != nil {
		return fmt.Errorf("wal: remove segment %d: %w", seq, err)
	}
	return nil
}

// Close stops accepting appends, writes what was appended before, seals the active segment
// and releases the directory. It returns the error that stopped the WAL, if any.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()

	err := w.control(context.Background(), opClose)
	<-w.done
	if w.active != nil { // the writer stopped on a failure
		w.active.Close()
		w.active = nil
	}
	w.lock.Close()
	w.m.unregister()
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	return err
}

// run is the writer goroutine.
func (w *WAL) run() {
	defer close(w.done)
	for {
		var req ctlReq
		var ageExpired bool
		select {
		case <-w.kick:
		case <-w.rotateTimer.C:
			ageExpired = true
		case req = <-w.ctl:
		}
		err := w.writePending()
		if err == nil && w.active != nil && (ageExpired || req.reply != nil || w.activeSize >= w.cfg.MaxSegmentBytes) {
			err = w.seal()
		}
		if req.reply != nil {
			req.reply <- err
		}
		if err != nil || req.reply != nil && req.op == opClose {
			return
		}
	}
}

// writePending writes and fsyncs everything appended since the last call, and completes its
// batch.
func (w *WAL) writePending() error {
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		return w.err
	}
	buf, b := w.pending, w.batch
	if len(buf) == 0 {
		w.mu.Unlock()
		return nil
	}
	w.pending = w.spare[:0]
	w.batch = newBatch()
	w.mu.Unlock()

	start := time.Now()
	err := w.write(buf)
	if cap(buf) <= 4<<20 { // keep a normal-sized buffer for the next batch
		w.spare = buf
	} else {
		w.spare = nil
	}
	if err != nil {
		err = w.fail(err)
		b.err = err
		close(b.done)
		return err
	}
	close(b.done)
	w.m.fsyncSeconds.Observe(time.Since(start).Seconds())
	w.m.batches.Inc()
	w.m.records.Add(float64(b.records))
	w.m.batchRecords.Observe(float64(b.records))
	return nil
}

// write appends buf to the active segment, creating one if there is none, and fsyncs it.
func (w *WAL) write(buf []byte) error {
	if w.active == nil {
		return w.create(buf)
	}
	if _, err := w.active.Write(buf); err != nil {
		return fmt.Errorf("write segment %s: %w", segmentName(w.activeSeq), err)
	}
	w.activeSize += int64(len(buf))
	if err := w.cfg.syncFile(w.active); err != nil {
		return fmt.Errorf("fsync segment %s: %w", segmentName(w.activeSeq), err)
	}
	return nil
}

// create starts a new active segment holding buf and makes it and its directory entry durable.
func (w *WAL) create(buf []byte) error {
	seq := max(w.lastSeq+1, uint64(time.Now().UnixNano()))
	name := segmentName(seq)
	f, err := os.OpenFile(filepath.Join(w.cfg.Dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	w.active, w.activeSeq, w.activeSize, w.lastSeq = f, seq, 0, seq
	var header [headerSize]byte
	if _, err := f.Write(appendHeader(header[:0])); err != nil {
		return fmt.Errorf("write segment %s: %w", name, err)
	}
	if _, err := f.Write(buf); err != nil {
		return fmt.Errorf("write segment %s: %w", name, err)
	}
	w.activeSize = int64(headerSize + len(buf))
	if err := w.cfg.syncFile(f); err != nil {
		return fmt.Errorf("fsync segment %s: %w", name, err)
	}
	if err := syncDir(w.cfg.Dir); err != nil {
		return fmt.Errorf("create segment %s: %w", name, err)
	}
	w.rotateTimer.Reset(w.cfg.MaxSegmentAge)
	return nil
}

// seal closes the active segment, whose records are all fsynced, and hands it to the consumer.
func (w *WAL) seal() error {
	w.rotateTimer.Stop()
	seq := w.activeSeq
	err := w.active.Close()
	w.active = nil
	if err != nil {
		return w.fail(fmt.Errorf("close segment %s: %w", segmentName(seq), err))
	}
	w.mu.Lock()
	w.sealed = append(w.sealed, seq)
	n := len(w.sealed)
	w.mu.Unlock()
	w.m.sealed.Set(float64(n))
	w.m.segments.Inc()
	if w.cfg.OnSeal != nil {
		w.cfg.OnSeal(seq)
	}
	return nil
}

// fail stops the WAL for good after a write error: it records the error and fails the batch
// that was gathering meanwhile. It returns the recorded error.
func (w *WAL) fail(cause error) error {
	w.mu.Lock()
	if w.err == nil {
		w.err = fmt.Errorf("wal: stopped after a failed write, restart to recover: %w", cause)
	}
	err := w.err
	b := w.batch
	w.batch = newBatch()
	w.pending = nil
	w.mu.Unlock()
	w.log.Error("wal: write failed; the log is stopped", "err", cause)
	w.m.failures.Inc()
	if b.records > 0 {
		b.err = err
		close(b.done)
	}
	return err
}

// syncDir fsyncs a directory, making the creation or removal of its entries durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func fileSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
