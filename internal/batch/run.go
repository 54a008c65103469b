package batch

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/parquet-go/parquet-go"
)

// chunk is a run of whole records and, once a worker has been through it, its results. A
// fixed set of chunks circulates between the reader, the workers and the writer: that bounds
// the memory.
type chunk struct {
	seq   int64
	buf   []byte // the chunk's buffer; data is its start
	data  []byte
	bytes int64 // input bytes the chunk stands for (blank lines included)

	rows, scored, positive int64
	unknown                []int64 // per input
	bad                    []badRow
	out                    []byte          // CSV output
	text                   []byte          // unquoted texts of quoted fields
	pvals                  []parquet.Value // Parquet: a batch of rows being made
	prowEnds               []int
	prows                  []parquet.Row
	rg                     *parquet.ConcurrentRowGroupWriter // Parquet: the chunk's row group
	err                    error                             // Parquet: writing the row group failed
}

func (c *chunk) reset(inputs int) {
	c.rows, c.scored, c.positive = 0, 0, 0
	if cap(c.unknown) < inputs {
		c.unknown = make([]int64, inputs)
	}
	c.unknown = c.unknown[:inputs]
	clear(c.unknown)
	clear(c.bad) // drop references to the old data
	c.bad = c.bad[:0]
	c.out = c.out[:0]
	c.text = c.text[:0]
	clear(c.pvals)
	c.pvals = c.pvals[:0]
	c.prowEnds = c.prowEnds[:0]
	c.err = nil
}

// parquetRows returns the batch of Parquet rows of the chunk.
func (c *chunk) parquetRows() []parquet.Row {
	c.prows = c.prows[:0]
	start := 0
	for _, end := range c.prowEnds {
		c.prows = append(c.prows, c.pvals[start:end:end])
		start = end
	}
	return c.prows
}

// run is Score after validation.
func run(ctx context.Context, r io.Reader, w io.Writer, o options) (Summary, error) {
	start := time.Now()
	sum := Summary{Model: o.ModelName, Version: o.Version, Algorithm: o.Model.Algorithm(), Format: o.Format, Workers: o.Workers}
	rd := &reader{r: r, max: o.MaxRecordBytes}
	header, err := rd.header(o.ChunkBytes)
	if err != nil {
		return sum, err
	}
	if len(header) == 0 {
		return sum, pulse.Errorf(pulse.EUNPROCESSABLE, "the input is empty: want a header line naming the columns")
	}
	l, err := newLayout(header, o.Model, o.Delimiter)
	if err != nil {
		return sum, err
	}
	out, err := newOutput(w, o, l)
	if err != nil {
		return sum, err
	}
	var bad *badWriter
	if o.BadRows != nil {
		if bad, err = newBadWriter(o.BadRows); err != nil {
			return sum, err
		}
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	nchunks := 2*o.Workers + 2
	free := make(chan *chunk, nchunks)
	for range nchunks {
		free <- &chunk{}
	}
	work := make(chan *chunk, nchunks)
	done := make(chan *chunk, nchunks)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(work)
		if err := rd.chunks(ctx, o.ChunkBytes, free, work); err != nil {
			cancel(err)
		}
	}()
	var workers sync.WaitGroup
	for range o.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			wk := newWorker(&o, l, out.pw)
			for c := range work {
				if ctx.Err() != nil {
					return
				}
				wk.process(c)
				select {
				case done <- c:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	workersDone := make(chan struct{})
	go func() {
		workers.Wait()
		close(done)
		close(workersDone)
	}()

	// The writer: chunks in sequence order, through a reorder buffer no bigger than the set
	// of chunks.
	sum.BytesIn = int64(len(header))
	unknown := make([]int64, len(l.inputs))
	pending := make(map[int64]*chunk, nchunks)
	var next int64
	lastProgress := start
	progress := func(final bool) {
		if o.Progress == nil || (!final && time.Since(lastProgress) < 200*time.Millisecond) {
			return
		}
		lastProgress = time.Now()
		o.Progress(Progress{Rows: sum.Rows, Bad: sum.Bad, BytesRead: sum.BytesIn, TotalBytes: o.TotalBytes, Elapsed: time.Since(start)})
	}
	werr := func() error {
		for {
			var c *chunk
			select {
			case c = <-done:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			if c == nil {
				return context.Cause(ctx) // the workers are done: nil unless the reader failed
			}
			pending[c.seq] = c
			for c := pending[next]; c != nil; c = pending[next] {
				delete(pending, next)
				next++
				if len(c.bad) > 0 {
					if bad == nil {
						b := c.bad[0]
						return &RowError{Row: sum.Rows + b.row, Column: b.column, Reason: b.reason}
					}
					if err := bad.write(sum.Rows, c.bad); err != nil {
						return err
					}
				}
				if err := out.write(c); err != nil {
					return err
				}
				sum.Rows += c.rows
				sum.Scored += c.scored
				sum.Bad += int64(len(c.bad))
				sum.Positive += c.positive
				sum.BytesIn += c.bytes
				for i, n := range c.unknown {
					unknown[i] += n
				}
				free <- c
				progress(false)
			}
		}
	}()
	if werr != nil {
		cancel(werr)
	}
	wg.Wait()
	<-workersDone
	if werr != nil {
		return sum, werr
	}
	if err := ctx.Err(); err != nil {
		return sum, context.Cause(ctx)
	}
	if err := out.close(); err != nil {
		return sum, err
	}
	if bad != nil {
		if err := bad.flush(); err != nil {
			return sum, err
		}
	}
	for i, n := range unknown {
		if n > 0 {
			if sum.UnknownByInput == nil {
				sum.UnknownByInput = make(map[string]int64)
			}
			sum.UnknownByInput[l.inputs[i].Name] += n
			sum.Unknown += n
		}
	}
	sum.BytesOut = out.w.n
	sum.Seconds = time.Since(start).Seconds()
	if sum.Seconds > 0 {
		sum.RowsPerSecond = float64(sum.Rows) / sum.Seconds
		sum.MBPerSecond = float64(sum.BytesIn) / 1e6 / sum.Seconds
	}
	progress(true)
	return sum, nil
}

// reader cuts the input into chunks of whole records.
type reader struct {
	r       io.Reader
	max     int
	pending []byte // read but not yet handed out: the start of the next record
	eof     bool
	offset  int64 // input offset of pending's start
}

// fill reads into b[len(b):cap(b)] until it is full or the input ends.
func (rd *reader) fill(b []byte) ([]byte, error) {
	for len(b) < cap(b) && !rd.eof {
		n, err := rd.r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			rd.eof = true
		} else if err != nil {
			return b, fmt.Errorf("batch: read input: %w", err)
		}
	}
	return b, nil
}

// header reads the first record, its line ending included (all of the input if it has no
// line ending outside quotes).
func (rd *reader) header(size int) ([]byte, error) {
	b := make([]byte, 0, min(size, 64<<10))
	for {
		var err error
		if b, err = rd.fill(b); err != nil {
			return nil, err
		}
		if end := recordEnd(b, 0); end < len(b) {
			rd.pending = append([]byte(nil), b[end+1:]...)
			rd.offset = int64(end + 1)
			return b[:end+1], nil
		}
		if rd.eof {
			return b, nil
		}
		if len(b) >= rd.max {
			return nil, pulse.Errorf(pulse.EUNPROCESSABLE, "the header line is longer than %d bytes (an unbalanced quote?)", rd.max)
		}
		b = append(b, make([]byte, len(b))...)[:len(b)]
	}
}

// chunks reads the rest of the input into chunks taken from free and sends them to work.
func (rd *reader) chunks(ctx context.Context, size int, free <-chan *chunk, work chan<- *chunk) error {
	for seq := int64(0); ; seq++ {
		if rd.eof && len(rd.pending) == 0 {
			return nil
		}
		var c *chunk
		select {
		case c = <-free:
		case <-ctx.Done():
			return nil
		}
		if cap(c.buf) < size {
			c.buf = make([]byte, 0, size)
		}
		b := append(c.buf[:0], rd.pending...)
		for {
			var err error
			if b, err = rd.fill(b); err != nil {
				return err
			}
			end := lastRecordEnd(b)
			if rd.eof {
				end = len(b)
			}
			if end > 0 {
				rd.pending = append(rd.pending[:0], b[end:]...)
				break
			}
			if len(b) >= rd.max {
				return pulse.Errorf(pulse.EUNPROCESSABLE, "the record at input byte %d is longer than %d bytes (an unbalanced quote?)", rd.offset, rd.max)
			}
			b = append(b, make([]byte, len(b))...)[:len(b)] // a record longer than the chunk
		}
		c.buf = b
		c.data = b[:len(b)-len(rd.pending)]
		c.seq = seq
		c.bytes = int64(len(c.data))
		rd.offset += c.bytes
		select {
		case work <- c:
		case <-ctx.Done():
			return nil
		}
	}
}

// lastRecordEnd returns the length of the longest prefix of b made of whole records (ending
// in a "\n" outside quotes), given that b starts at a record boundary; 0 if there is none. A
// "\n" is outside quotes when an even number of quotes precede it.
func lastRecordEnd(b []byte) int {
	quotes := bytes.Count(b, []byte{'"'})
	end := len(b)
	for {
		nl := bytes.LastIndexByte(b[:end], '\n')
		if nl < 0 {
			return 0
		}
		if quotes > 0 {
			quotes -= bytes.Count(b[nl:end], []byte{'"'})
		}
		if quotes%2 == 0 {
			return nl + 1
		}
		end = nl
	}
}
