package lake

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Prediction is one scored record: a row of the predictions table.
type Prediction struct {
	PredictionID string    // UUID
	ScoredAt     time.Time // stored in UTC with microsecond precision
	Model        string    // partition column, not stored inside the file
	Version      int
	Alias        string // alias through which it was served ("" if by version)
	// Shadow marks a challenger's prediction scored in shadow on a live request: it has the
	// prediction id of the answer the client got (the champion's), was not returned, and is
	// joined to the same feedback.
	Shadow        bool
	Label         int
	Probability   float64
	Threshold     float64
	LatencyMicros int64
	RequestID     string
	Features      []byte // the input JSON object as received (JSON text)
	Response      []byte // the full JSON response sent to the client (JSON text)
}

// validate checks the fields that the lake relies on; i is the record's index in its call.
func (p *Prediction) validate(i int) error {
	switch {
	case p.PredictionID == "":
		return pulse.FieldErrorf(pulse.EINVALID, "PredictionID", "lake: prediction %d: PredictionID is empty, want a UUID", i)
	case p.Model == "":
		return pulse.FieldErrorf(pulse.EINVALID, "Model", "lake: prediction %d: Model is empty, want a model name", i)
	case p.ScoredAt.IsZero():
		return pulse.FieldErrorf(pulse.EINVALID, "ScoredAt", "lake: prediction %d: ScoredAt is zero, want the scoring time", i)
	case p.Label < math.MinInt32 || p.Label > math.MaxInt32:
		return pulse.FieldErrorf(pulse.EINVALID, "Label", "lake: prediction %d: Label is %d, want a 32-bit integer", i, p.Label)
	}
	return nil
}

// WAL record encoding.
//
// All tables of a Lake share its one WAL. Every WAL payload is one record, tagged with its
// table so that compaction routes it:
//
//	byte 0   table tag (tagPrediction = 1, tagIngest = 2, tagOutcome = 3; future tables take the next numbers)
//	byte 1   encoding version of that table's records
//	...      the fields, in a fixed order per table and version
//
// Field encodings: integers are varints (encoding/binary, zig-zag for signed), float64 are 8
// bytes little-endian IEEE 754, strings and byte slices are a uvarint length and the bytes.
// A prediction (version 2) is, in order: PredictionID, ScoredAt as Unix microseconds, Model,
// Version, Alias, Shadow (one byte, 0 or 1), Label, Probability, Threshold, LatencyMicros,
// RequestID, Features, Response. Version 1, written before shadow scoring, has no Shadow byte;
// it is still decoded (a WAL left by an older Pulse). A decoder rejects an unknown tag or
// version rather than skip the record.
const (
	tagPrediction       = 1
	predictionVersion   = 2
	predictionVersionV1 = 1
)

// appendPrediction appends the WAL encoding of p to b.
func appendPrediction(b []byte, p *Prediction) []byte {
	b = append(b, tagPrediction, predictionVersion)
	b = appendString(b, p.PredictionID)
	b = binary.AppendVarint(b, p.ScoredAt.UnixMicro())
	b = appendString(b, p.Model)
	b = binary.AppendVarint(b, int64(p.Version))
	b = appendString(b, p.Alias)
	b = appendBool(b, p.Shadow)
	b = binary.AppendVarint(b, int64(p.Label))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.Probability))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(p.Threshold))
	b = binary.AppendVarint(b, p.LatencyMicros)
	b = appendString(b, p.RequestID)
	b = appendBytes(b, p.Features)
	b = appendBytes(b, p.Response)
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// predictionRow is a row of a predictions Parquet file. Model and the date are hive
// partition directories, not columns.
type predictionRow struct {
	PredictionID string    `parquet:"prediction_id"`
	ScoredAt     time.Time `parquet:"scored_at,timestamp(microsecond:utc)"`
	ModelVersion int64     `parquet:"model_version"`
	Alias        string    `parquet:"alias,dict"`
	Shadow       bool      `parquet:"shadow"`
	Label        int32     `parquet:"label"`
	Probability  float64   `parquet:"probability"`
	Threshold    float64   `parquet:"threshold"`
	LatencyUS    int64     `parquet:"latency_us"`
	RequestID    string    `parquet:"request_id"`
	Features     string    `parquet:"features"`
	Response     string    `parquet:"response"`
}

// partition is a hive partition of one table: predictions and outcomes by model and date,
// ingest by dataset and date.
type partition struct {
	table byte   // tagPrediction, tagIngest or tagOutcome
	name  string // the model or the dataset
	date  string // YYYY-MM-DD of the record's time in UTC
}

// key returns the object key of the part of this partition that comes from WAL segment seq.
func (p partition) key(seq uint64) string {
	column := "model"
	if p.table == tagIngest {
		column = "dataset"
	}
	return fmt.Sprintf("%s%s=%s/date=%s/part-%020d.parquet", tablePrefix(p.table), column, escapePartitionValue(p.name), p.date, seq)
}

// tablePrefix returns the key prefix of a table.
func tablePrefix(table byte) string {
	switch table {
	case tagIngest:
		return ingestPrefix
	case tagOutcome:
		return outcomesPrefix
	}
	return predictionsPrefix
}

// predictionsPrefix is the key prefix of the predictions table.
const predictionsPrefix = "predictions/"

// escapePartitionValue percent-encodes every byte of v outside [A-Za-z0-9._-], so that any
// model name makes one safe path segment; pyarrow and DuckDB decode it back.
func escapePartitionValue(v string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// decoder reads the fields of one WAL record. The strings it returns share one copy of the
// record (s), so that decoding a record allocates once, not once per field.
type decoder struct {
	b   []byte // the fields not read yet
	s   string // the same bytes as b
	err error
}

// newDecoder returns a decoder of the fields in p.
func newDecoder(p []byte) decoder {
	return decoder{b: p, s: string(p)}
}

func (d *decoder) skip(n int) {
	d.b, d.s = d.b[n:], d.s[n:]
}

var errShort = errors.New("record ends early")

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.skip(n)
	return v
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) < 1 || d.b[0] > 1 {
		d.err = errShort
		return false
	}
	v := d.b[0] == 1
	d.skip(1)
	return v
}

func (d *decoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.skip(8)
	return v
}

func (d *decoder) string() string {
	if d.err != nil {
		return ""
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || n > uint64(len(d.b)-k) {
		d.err = errShort
		return ""
	}
	s := d.s[k : k+int(n)]
	d.skip(k + int(n))
	return s
}

// dateCache formats the dates of partitions, reusing the last one: the records of a
// segment mostly share their date. A nil *dateCache formats every time.
type dateCache struct {
	day  int64
	date string
}

// of returns the YYYY-MM-DD of t in UTC.
func (c *dateCache) of(t time.Time) string {
	if c == nil {
		return t.UTC().Format(time.DateOnly)
	}
	if day := floorDiv(t.Unix(), 24*60*60); day != c.day || c.date == "" {
		c.day, c.date = day, t.UTC().Format(time.DateOnly)
	}
	return c.date
}

// decodePrediction decodes a prediction record (tag byte included) into its partition and row;
// dates may be nil.
func decodePrediction(p []byte, dates *dateCache) (partition, predictionRow, error) {
	if len(p) < 2 || p[0] != tagPrediction {
		return partition{}, predictionRow{}, fmt.Errorf("not a prediction record")
	}
	if p[1] != predictionVersion && p[1] != predictionVersionV1 {
		return partition{}, predictionRow{}, fmt.Errorf("prediction encoding version %d, want %d or %d", p[1], predictionVersionV1, predictionVersion)
	}
	d := newDecoder(p[2:])
	var r predictionRow
	part := partition{table: tagPrediction}
	r.PredictionID = d.string()
	r.ScoredAt = time.UnixMicro(d.varint()).UTC()
	part.name = d.string()
	r.ModelVersion = d.varint()
	r.Alias = d.string()
	if p[1] >= 2 {
		r.Shadow = d.bool()
	}
	r.Label = int32(d.varint())
	r.Probability = d.float()
	r.Threshold = d.float()
	r.LatencyUS = d.varint()
	r.RequestID = d.string()
	r.Features = d.string()
	r.Response = d.string()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the last field", len(d.b))
	}
	if d.err != nil {
		return partition{}, predictionRow{}, fmt.Errorf("bad prediction record: %w", d.err)
	}
	part.date = dates.of(r.ScoredAt)
	return part, r, nil
}
