package batch

import (
	"bufio"
	"fmt"
	"io"
	"reflect"
	"strconv"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
	"github.com/parquet-go/parquet-go/encoding"
)

// output writes scored chunks in one format.
type output struct {
	w  *countingWriter
	pw *parquet.Writer // Parquet only
}

// countingWriter counts the bytes written through it and wraps its errors.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("batch: write output: %w", err)
	}
	return n, nil
}

// newOutput starts the output: the CSV header line, or a Parquet writer.
func newOutput(w io.Writer, o options, l *layout) (*output, error) {
	out := &output{w: &countingWriter{w: w}}
	if o.Format == Parquet {
		out.pw = parquet.NewWriter(out.w, parquet.NewSchema("scored", parquetSchema(l)),
			parquet.Compression(&parquet.Snappy),
			parquet.CreatedBy("pulse", "", ""))
		return out, nil
	}
	h := append([]byte(nil), l.header...)
	for _, name := range []string{ColumnProbability, ColumnLabel, ColumnModelVersion} {
		h = append(h, o.Delimiter)
		h = appendField(h, []byte(name), o.Delimiter)
	}
	h = append(h, '\n')
	if _, err := out.w.Write(h); err != nil {
		return nil, err
	}
	return out, nil
}

// write writes a chunk's scored rows: the CSV text, or the Parquet row group a worker made.
func (out *output) write(c *chunk) error {
	if out.pw == nil {
		_, err := out.w.Write(c.out)
		return err
	}
	if c.err != nil {
		return c.err
	}
	if _, err := c.rg.Commit(); err != nil {
		return fmt.Errorf("batch: write parquet: %w", err)
	}
	return nil
}

// close ends the output (the Parquet footer).
func (out *output) close() error {
	if out.pw == nil {
		return nil
	}
	if err := out.pw.Close(); err != nil {
		return fmt.Errorf("batch: write parquet: %w", err)
	}
	return nil
}

// parquetSchema is the output's Parquet schema: numeric inputs as optional DOUBLE, other
// columns as optional STRING, then probability DOUBLE, label INT32 and model_version INT64, in
// the input's column order.
func parquetSchema(l *layout) parquet.Node {
	g := orderedGroup{}
	for j, name := range l.names {
		var n parquet.Node
		if l.kinds[j] == kindNumeric {
			n = parquet.Optional(parquet.Leaf(parquet.DoubleType))
		} else {
			n = parquet.Optional(parquet.String())
		}
		g = append(g, field{Node: n, name: name})
	}
	g = append(g,
		field{Node: parquet.Leaf(parquet.DoubleType), name: ColumnProbability},
		field{Node: parquet.Int(32), name: ColumnLabel},
		field{Node: parquet.Int(64), name: ColumnModelVersion})
	return g
}

// orderedGroup is a Parquet group whose fields keep the order given (parquet.Group sorts them
// by name). Rows are written as parquet.Row values, never through reflection.
type orderedGroup []parquet.Field

func (g orderedGroup) ID() int                     { return 0 }
func (g orderedGroup) String() string              { return "group" }
func (g orderedGroup) Type() parquet.Type          { return parquet.Group{}.Type() }
func (g orderedGroup) Optional() bool              { return false }
func (g orderedGroup) Repeated() bool              { return false }
func (g orderedGroup) Required() bool              { return true }
func (g orderedGroup) Leaf() bool                  { return false }
func (g orderedGroup) Fields() []parquet.Field     { return g }
func (g orderedGroup) Encoding() encoding.Encoding { return nil }
func (g orderedGroup) Compression() compress.Codec { return nil }
func (g orderedGroup) GoType() reflect.Type        { return reflect.TypeFor[map[string]any]() }

// field is a named node of an orderedGroup.
type field struct {
	parquet.Node
	name string
}

func (f field) Name() string                           { return f.name }
func (f field) Value(base reflect.Value) reflect.Value { return reflect.Value{} }

// badWriter writes bad rows as CSV: row, column, reason, record.
type badWriter struct {
	w *bufio.Writer
}

func newBadWriter(w io.Writer) (*badWriter, error) {
	b := &badWriter{w: bufio.NewWriterSize(w, 64<<10)}
	if _, err := b.w.WriteString("row,column,reason,record\n"); err != nil {
		return nil, fmt.Errorf("batch: write bad rows: %w", err)
	}
	return b, nil
}

// write writes a chunk's bad rows, numbered from base.
func (b *badWriter) write(base int64, rows []badRow) error {
	var line []byte
	for _, r := range rows {
		line = strconv.AppendInt(line[:0], base+r.row, 10)
		line = append(line, ',')
		line = appendField(line, []byte(r.column), ',')
		line = append(line, ',')
		line = appendField(line, []byte(r.reason), ',')
		line = append(line, ',')
		line = appendField(line, r.raw, ',')
		line = append(line, '\n')
		if _, err := b.w.Write(line); err != nil {
			return fmt.Errorf("batch: write bad rows: %w", err)
		}
	}
	return nil
}

func (b *badWriter) flush() error {
	if err := b.w.Flush(); err != nil {
		return fmt.Errorf("batch: write bad rows: %w", err)
	}
	return nil
}
