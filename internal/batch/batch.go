// Package batch scores CSV files with a model version, streaming, in bounded memory: a reader
// cuts the input into chunks at record boundaries, workers parse and score the chunks in
// parallel, and a writer emits the scored rows (CSV or Parquet) in input order. It also plans
// the sharding of a big file into byte ranges aligned on records (Plan), so that several
// processes can score one file, each a range, with Score.
//
// The input rules are those of training (internal/tabular) and of REST scoring
// (internal/features): cells and header names are trimmed of spaces, the missing markers are
// pulse.DefaultMissingMarkers unless given, numbers are read as strconv.ParseFloat reads them,
// categories are compared in canonical form (pulse.CanonicalCategory), a category not seen in
// training is scored as unknown (and counted), a binary value that is neither of the two
// categories, a numeric cell that is not a finite number and a record with the wrong number of
// fields are bad rows.
package batch

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Format is an output format.
type Format string

// Output formats.
const (
	CSV     Format = "csv"
	Parquet Format = "parquet"
)

// Defaults of Options.
const (
	// DefaultChunkBytes is the size of the byte ranges handed to workers; with Parquet
	// output, DefaultParquetChunkBytes: each chunk is a row group.
	DefaultChunkBytes        = 4 << 20
	DefaultParquetChunkBytes = 8 << 20
	// DefaultMaxRecordBytes bounds one record (a line, or several when a quoted field holds
	// line breaks): a longer one, usually an unbalanced quote, fails the run.
	DefaultMaxRecordBytes = 64 << 20
)

// Output columns appended to the input's.
const (
	ColumnProbability  = "probability"
	ColumnLabel        = "label"
	ColumnModelVersion = "model_version"
)

// Options say how to score.
type Options struct {
	// Model scores the rows (required).
	Model *ml.Model
	// Version is written in the model_version column.
	Version int
	// ModelName is reported in the Summary.
	ModelName string
	// Format is the output format, CSV (the default when "") or Parquet.
	Format Format
	// BadRows, when nil, makes the first bad row fail the run with a *RowError. Otherwise bad
	// rows are left out of the output and written here as CSV (row, column, reason, record),
	// and the other rows are scored.
	BadRows io.Writer
	// Workers is the number of goroutines that parse and score; 0 means runtime.GOMAXPROCS(0).
	Workers int
	// ChunkBytes is the size of the byte ranges handed to workers; 0 means DefaultChunkBytes
	// (DefaultParquetChunkBytes for Parquet, where each chunk is one row group, encoded and
	// compressed by the worker). Memory is about (2×Workers+2) × ChunkBytes × 2.5.
	ChunkBytes int
	// MaxRecordBytes bounds one record; 0 means DefaultMaxRecordBytes.
	MaxRecordBytes int
	// MissingMarkers are the cell values (compared after trimming spaces) that mean missing;
	// nil or empty means pulse.DefaultMissingMarkers. An empty cell is always missing.
	MissingMarkers []string
	// Delimiter separates the cells; 0 means ','. It must be an ASCII character other than a
	// quote or a line break.
	Delimiter byte
	// TotalBytes is the input's size when known (0: unknown), passed on to Progress.
	TotalBytes int64
	// Progress, when set, is called from Score's goroutine every so often while it runs and
	// once at the end.
	Progress func(Progress)
}

// Progress is how far a run is.
type Progress struct {
	Rows       int64         // data rows read and scored (or found bad)
	Bad        int64         // bad rows among them
	BytesRead  int64         // input bytes processed, header included
	TotalBytes int64         // Options.TotalBytes
	Elapsed    time.Duration // since Score started
}

// Summary is the outcome of a run.
type Summary struct {
	Model     string `json:"model,omitempty"`
	Version   int    `json:"version"`
	Algorithm string `json:"algorithm"`
	Format    Format `json:"format"`
	Workers   int    `json:"workers"`
	// Rows is the number of data rows read (header and blank lines not counted); Scored of
	// them were written, Bad were not (see Options.BadRows).
	Rows   int64 `json:"rows"`
	Scored int64 `json:"scored"`
	Bad    int64 `json:"bad"`
	// Positive is the number of scored rows with label 1.
	Positive int64 `json:"positive"`
	// Unknown counts the categorical values not seen in training (scored as unknown), in all
	// and by input.
	Unknown        int64            `json:"unknown_categories"`
	UnknownByInput map[string]int64 `json:"unknown_categories_by_input,omitempty"`
	BytesIn        int64            `json:"bytes_in"`
	BytesOut       int64            `json:"bytes_out"`
	Seconds        float64          `json:"seconds"`
	RowsPerSecond  float64          `json:"rows_per_second"`
	// MBPerSecond is input megabytes (10^6 bytes) per second.
	MBPerSecond float64 `json:"mb_per_second"`
}

// RowError is a bad row: Row is its 1-based data row number (the header not counted) within
// the stream given to Score, Column the column at fault ("" when it is the whole record, such
// as a wrong number of fields), Reason what is wrong.
type RowError struct {
	Row    int64
	Column string
	Reason string
}

func (e *RowError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("row %d: %s", e.Row, e.Reason)
	}
	return fmt.Sprintf("row %d, column %q: %s", e.Row, e.Column, e.Reason)
}

// Unwrap returns the error as a *pulse.Error with code EUNPROCESSABLE, so that
// pulse.ErrorCode and errors.As see a domain error.
func (e *RowError) Unwrap() error {
	return &pulse.Error{Code: pulse.EUNPROCESSABLE, Message: e.Error(), Field: e.Column, Row: int(e.Row)}
}

// options are Options after defaults and validation.
type options struct {
	Options
	markers []string
}

func (o Options) normalize() (options, error) {
	n := options{Options: o}
	if o.Model == nil {
		return n, pulse.Errorf(pulse.EINVALID, "batch: no model")
	}
	switch o.Format {
	case "":
		n.Format = CSV
	case CSV, Parquet:
	default:
		return n, pulse.FieldErrorf(pulse.EINVALID, "format", "format: got %q, want csv or parquet", o.Format)
	}
	if o.Workers < 0 || o.ChunkBytes < 0 || o.MaxRecordBytes < 0 {
		return n, pulse.Errorf(pulse.EINVALID, "batch: workers, chunk bytes and max record bytes must not be negative")
	}
	if n.Workers == 0 {
		n.Workers = runtime.GOMAXPROCS(0)
	}
	if n.ChunkBytes == 0 {
		n.ChunkBytes = DefaultChunkBytes
		if n.Format == Parquet {
			n.ChunkBytes = DefaultParquetChunkBytes
		}
	}
	n.ChunkBytes = max(n.ChunkBytes, 64)
	if n.MaxRecordBytes == 0 {
		n.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if n.Delimiter == 0 {
		n.Delimiter = ','
	}
	if d := n.Delimiter; d >= 0x80 || d == '"' || d == '\r' || d == '\n' {
		return n, pulse.FieldErrorf(pulse.EINVALID, "delimiter", "delimiter: got %q, want an ASCII character other than a quote or line break", d)
	}
	markers := o.MissingMarkers
	if len(markers) == 0 {
		markers = pulse.DefaultMissingMarkers
	}
	n.markers = []string{""}
	for _, m := range markers {
		if m = strings.TrimSpace(m); !slices.Contains(n.markers, m) {
			n.markers = append(n.markers, m)
		}
	}
	return n, nil
}

// Score reads a CSV (header line first) from r and writes the scored output to w, in input
// order: the input columns (CSV: each field's original text, quoted only when needed; lines
// end in "\n"), then probability (the shortest text that reads back as the same float64),
// label (1 when probability >= the model's threshold, else 0) and model_version. Blank lines
// are skipped. A header-only input gives a header-only output.
//
// The header must name every input of the model (else an EUNPROCESSABLE *pulse.Error naming
// the column, before any row is read) and no column probability, label or model_version.
// Columns the model does not use pass through.
//
// Bad rows fail the run with a *RowError, or are written to Options.BadRows. Errors of r and
// w are returned wrapped; the Summary is valid only when the error is nil. Memory is bounded
// by O(Workers × ChunkBytes) whatever the input's size; r may be any reader (stdin, a pipe,
// the header and one range of a file).
func Score(ctx context.Context, r io.Reader, w io.Writer, opts Options) (Summary, error) {
	o, err := opts.normalize()
	if err != nil {
		return Summary{}, err
	}
	if r == nil || w == nil {
		return Summary{}, pulse.Errorf(pulse.EINVALID, "batch: score needs a reader and a writer")
	}
	return run(ctx, r, w, o)
}
