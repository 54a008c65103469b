package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloudmedical/pulse/internal/batch"
	"github.com/cloudmedical/pulse/internal/ml"
)

// runScore scores a CSV file locally with a model version fetched from the server or read
// from an artifact file (internal/batch): streaming, in bounded memory, on every core.
//
// The JSON summary goes to stdout, or to stderr when the scored rows go to stdout; --summary
// FILE writes it to a file too. A progress line is drawn on stderr when it is a terminal.
func runScore(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("score", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := &clientFlags{}
	fs.StringVar(&cf.server, "server", envOr("PULSE_SERVER", "http://127.0.0.1:8080"), "Pulse server URL (env PULSE_SERVER)")
	model := fs.String("model", "", "model name (with --server)")
	version := fs.Int("version", 0, "score with this version; with --artifact, the number written in model_version (default 0)")
	alias := fs.String("alias", "", "score with the version this alias points at (default champion)")
	artifact := fs.String("artifact", "", "read the model artifact from this file instead of the server")
	input := fs.String("input", "", "CSV file to score, header line first; - for stdin (required)")
	output := fs.String("output", "-", "where to write the scored rows; - for stdout")
	format := fs.String("format", "", "csv or parquet (default: parquet when --output ends in .parquet, else csv)")
	badRows := fs.String("bad-rows", "", "write bad rows to this file (CSV: row, column, reason, record) and score the rest; without it the first bad row fails the run")
	workers := fs.Int("workers", 0, "goroutines that parse and score (default: the number of CPUs)")
	summary := fs.String("summary", "", "also write the JSON summary to this file")
	missing := fs.String("missing", "", `comma-separated missing-value markers (default "", "?", "NA")`)
	delimiter := fs.String("delimiter", ",", "the character that separates cells (the output uses it too)")
	chunk := fs.Int("chunk-bytes", 0, "bytes handed to a worker at a time (default 4 MiB)")
	direct := fs.Bool("direct-io", true, "write an output file past the page cache (O_DIRECT, Linux) where the file system allows it; false writes through the page cache")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("score: unexpected argument %q", pos[0])
	}
	if *input == "" {
		return fmt.Errorf("score: --input FILE (or - for stdin) is required")
	}
	if *version != 0 && *alias != "" {
		return fmt.Errorf("score: give --version or --alias, not both")
	}
	if len(*delimiter) != 1 {
		return fmt.Errorf("score: --delimiter %q: want one character", *delimiter)
	}
	opts := batch.Options{Workers: *workers, ChunkBytes: *chunk, Delimiter: (*delimiter)[0]}
	if *missing != "" {
		opts.MissingMarkers = strings.Split(*missing, ",")
	}
	switch f := batch.Format(strings.ToLower(*format)); {
	case f == batch.CSV || f == batch.Parquet:
		opts.Format = f
	case f != "":
		return fmt.Errorf("score: --format %q: want csv or parquet", *format)
	case strings.HasSuffix(strings.ToLower(*output), ".parquet"):
		opts.Format = batch.Parquet
	default:
		opts.Format = batch.CSV
	}

	switch {
	case *artifact != "":
		b, err := readLimited(*artifact)
		if err != nil {
			return fmt.Errorf("score: %w", err)
		}
		if opts.Model, err = ml.Decode(b, ""); err != nil {
			return fmt.Errorf("score: %s: %w", *artifact, err)
		}
		opts.Version, opts.ModelName = *version, *model
		if opts.ModelName == "" {
			opts.ModelName = strings.TrimSuffix(filepath.Base(*artifact), filepath.Ext(*artifact))
		}
	case *model != "":
		if opts.Model, opts.Version, err = fetchModel(ctx, cf, *model, *version, *alias); err != nil {
			return fmt.Errorf("score: %w", err)
		}
		opts.ModelName = *model
	default:
		return fmt.Errorf("score: give --model (and --server) or --artifact")
	}

	in := stdin
	if *input != "-" {
		f, err := os.Open(*input)
		if err != nil {
			return fmt.Errorf("score: %w", err)
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			opts.TotalBytes = st.Size()
		}
		in = f
	}

	var bad *os.File
	if *badRows != "" {
		if bad, err = os.Create(*badRows); err != nil {
			return fmt.Errorf("score: %w", err)
		}
		defer bad.Close()
		opts.BadRows = bad
	}

	var bar *progressBar
	if isTerminal(stderr) {
		bar = &progressBar{w: stderr}
		opts.Progress = bar.draw
	}

	out, err := createOutput(*output, stdout, *direct)
	if err != nil {
		return fmt.Errorf("score: %w", err)
	}
	sum, err := batch.Score(ctx, in, out, opts)
	if bar != nil {
		bar.clear()
	}
	if err == nil {
		err = out.commit()
	}
	if err != nil {
		out.abort()
		return fmt.Errorf("score: %w", err)
	}
	if bad != nil {
		if err := bad.Close(); err != nil {
			return fmt.Errorf("score: %w", err)
		}
	}
	summaryTo := stdout
	if *output == "-" {
		summaryTo = stderr
	}
	if err := printJSON(summaryTo, sum); err != nil {
		return err
	}
	if *summary != "" {
		f, err := os.Create(*summary)
		if err != nil {
			return fmt.Errorf("score: %w", err)
		}
		err = printJSON(f, sum)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("score: %w", err)
		}
	}
	return nil
}

// scoredOutput is where the scored rows go: stdout; a device or pipe such as /dev/null,
// written directly; or a temporary file beside the output file that replaces it only when the
// run succeeds.
type scoredOutput struct {
	flushWriter
	file *os.File // nil for stdout
	path string   // the final name of a temporary file; "" when written directly
}

// flushWriter is a buffered writer.
type flushWriter interface {
	io.Writer
	Flush() error
}

// createOutput opens the output; direct asks for a regular file's writes to bypass the page
// cache (directWriter).
func createOutput(path string, stdout io.Writer, direct bool) (*scoredOutput, error) {
	if path == "-" {
		return &scoredOutput{flushWriter: bufio.NewWriterSize(stdout, 1<<20)}, nil
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return &scoredOutput{flushWriter: bufio.NewWriterSize(f, 1<<20), file: f}, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, err
	}
	return &scoredOutput{flushWriter: newDirectWriter(f, direct), file: f, path: path}, nil
}

// commit flushes the rows and, for a temporary file, moves it into place.
func (o *scoredOutput) commit() error {
	if err := o.Flush(); err != nil {
		return err
	}
	if o.file == nil {
		return nil
	}
	if o.path != "" {
		if err := o.file.Chmod(0o644); err != nil {
			return err
		}
	}
	if err := o.file.Close(); err != nil {
		return err
	}
	if o.path == "" {
		return nil
	}
	return os.Rename(o.file.Name(), o.path)
}

// abort closes the output of a failed run and removes its temporary file.
func (o *scoredOutput) abort() {
	if d, ok := o.flushWriter.(*directWriter); ok {
		d.stop()
	}
	if o.file != nil {
		o.file.Close()
		if o.path != "" {
			os.Remove(o.file.Name())
		}
	}
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar draws a one-line progress report: bytes (and percent and ETA when the size is
// known), rows, rows/s and MB/s.
type progressBar struct {
	w io.Writer
}

func (b *progressBar) draw(p batch.Progress) {
	secs := p.Elapsed.Seconds()
	if secs <= 0 {
		return
	}
	mbps := float64(p.BytesRead) / 1e6 / secs
	line := formatBytes(p.BytesRead)
	if p.TotalBytes > 0 {
		frac := float64(p.BytesRead) / float64(p.TotalBytes)
		line += fmt.Sprintf(" / %s %3.0f%% %s", formatBytes(p.TotalBytes), 100*frac, bar(frac, 20))
	}
	line += fmt.Sprintf("  %d rows (%d bad)  %.0f rows/s  %.0f MB/s", p.Rows, p.Bad, float64(p.Rows)/secs, mbps)
	if p.TotalBytes > 0 && p.BytesRead > 0 && p.BytesRead < p.TotalBytes {
		eta := time.Duration(float64(p.TotalBytes-p.BytesRead) / float64(p.BytesRead) * float64(p.Elapsed))
		line += "  ETA " + eta.Round(time.Second).String()
	}
	fmt.Fprintf(b.w, "\r\033[K%s", line)
}

func (b *progressBar) clear() { fmt.Fprint(b.w, "\r\033[K") }

// bar draws a fraction as a bar of n cells.
func bar(frac float64, n int) string {
	full := min(n, max(0, int(frac*float64(n)+0.5)))
	return "[" + strings.Repeat("#", full) + strings.Repeat(".", n-full) + "]"
}

// formatBytes writes a size in decimal units.
func formatBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
