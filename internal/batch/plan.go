package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Split is a CSV file cut into byte ranges of whole records.
type Split struct {
	// Header is the header line, its line ending included.
	Header []byte
	// Ranges cover the rest of the file exactly, in order; each holds whole records. A file
	// with nothing after its header has none.
	Ranges []Range
}

// Range is the byte range [Start, End) of a file.
type Range struct {
	Start, End int64
}

// planBlock is the size of the reads of Plan.
const planBlock = 1 << 20

// Plan splits a CSV of size bytes into about size/shardBytes byte ranges aligned on record
// boundaries: a "\n" outside quotes, exactly under RFC 4180 (quoted fields may hold
// delimiters, "" escapes and line breaks). Score on Header followed by one range
// (io.MultiReader) scores that range's records.
//
// Under RFC 4180 a byte is inside quotes when an odd number of quotes precede it, so Plan
// counts the quotes of each of n equal raw segments in parallel (bytes.Count), takes the
// running parity at each segment's start, and moves each raw cut forward to just after the
// first "\n" outside quotes. The cost is one read of the whole file (the count), plus a
// short read at each cut; memory is a block per goroutine. Cuts that a long quoted field
// pushes onto the next are merged, so there may be fewer ranges than n.
func Plan(ctx context.Context, r io.ReaderAt, size, shardBytes int64) (Split, error) {
	if size < 0 || shardBytes <= 0 {
		return Split{}, pulse.Errorf(pulse.EINVALID, "plan: got size %d and shard bytes %d, want size >= 0 and shard bytes > 0", size, shardBytes)
	}
	if size == 0 {
		return Split{}, pulse.Errorf(pulse.EUNPROCESSABLE, "the input is empty: want a header line naming the columns")
	}
	limit := min(size, DefaultMaxRecordBytes)
	hdrEnd, found, err := nextRecordEnd(ctx, r, 0, limit, false)
	if err != nil {
		return Split{}, err
	}
	if !found {
		if size > limit {
			return Split{}, pulse.Errorf(pulse.EUNPROCESSABLE, "the header line is longer than %d bytes (an unbalanced quote?)", DefaultMaxRecordBytes)
		}
		hdrEnd = size
	}
	split := Split{Header: make([]byte, hdrEnd)}
	if _, err := r.ReadAt(split.Header, 0); err != nil && !(errors.Is(err, io.EOF) && hdrEnd == size) {
		return Split{}, fmt.Errorf("plan: read header: %w", err)
	}
	rest := size - hdrEnd
	if rest == 0 {
		return split, nil
	}
	n := (rest + shardBytes - 1) / shardBytes
	cut := func(k int64) int64 { return hdrEnd + k*rest/n }

	// Quotes per raw segment, counted in parallel.
	counts := make([]int64, n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int64
	)
	for range min(int64(runtime.GOMAXPROCS(0)), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, planBlock)
			for {
				mu.Lock()
				k := next
				next++
				stop := first != nil
				mu.Unlock()
				if k >= n || stop {
					return
				}
				c, err := countQuotes(ctx, r, cut(k), cut(k+1), buf)
				mu.Lock()
				counts[k] = c
				if err != nil && first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return Split{}, first
	}

	// Move each raw cut to the next record boundary.
	start := hdrEnd
	var quotes int64
	for k := int64(1); k < n; k++ {
		quotes += counts[k-1]
		raw := cut(k)
		if raw < start {
			continue // a long record swallowed this cut
		}
		end, found, err := nextRecordEnd(ctx, r, raw, size, quotes%2 == 1)
		if err != nil {
			return Split{}, err
		}
		if !found || end >= size {
			break
		}
		if end > start {
			split.Ranges = append(split.Ranges, Range{Start: start, End: end})
			start = end
		}
	}
	split.Ranges = append(split.Ranges, Range{Start: start, End: size})
	return split, nil
}

// countQuotes counts the quotes in [from, to) of r.
func countQuotes(ctx context.Context, r io.ReaderAt, from, to int64, buf []byte) (int64, error) {
	var n int64
	for off := from; off < to; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		b := buf[:min(int64(len(buf)), to-off)]
		m, err := r.ReadAt(b, off)
		if m < len(b) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("plan: read at %d: %w", off, err)
		}
		n += int64(bytes.Count(b, []byte{'"'}))
		off += int64(m)
	}
	return n, nil
}

// nextRecordEnd returns the offset just after the first "\n" outside quotes at or after from,
// given whether from is inside quotes; found is false when there is none before size.
func nextRecordEnd(ctx context.Context, r io.ReaderAt, from, size int64, inQuotes bool) (end int64, found bool, err error) {
	buf := make([]byte, 4<<10)
	for off := from; off < size; {
		if err := ctx.Err(); err != nil {
			return 0, false, err
		}
		b := buf[:min(int64(len(buf)), size-off)]
		m, err := r.ReadAt(b, off)
		if m < len(b) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, false, fmt.Errorf("plan: read at %d: %w", off, err)
		}
		for i, c := range b {
			switch c {
			case '"':
				inQuotes = !inQuotes
			case '\n':
				if !inQuotes {
					return off + int64(i) + 1, true, nil
				}
			}
		}
		off += int64(m)
		if len(buf) < planBlock {
			buf = make([]byte, 2*len(buf))
		}
	}
	return size, false, nil
}
