package lake

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Outcome is a stored prediction joined to its ground truth: a row of the outcomes table.
// One feedback label gives one Outcome per stored prediction row of its id (the champion's,
// and each shadow challenger's).
type Outcome struct {
	PredictionID string
	Model        string // partition column, not stored inside the file
	Version      int
	Alias        string // the alias the prediction was served through ("" if by version)
	Shadow       bool   // a challenger's prediction scored in shadow
	Probability  float64
	Predicted    int // the predicted label, 0 or 1
	Threshold    float64
	Label        int // the ground truth, 0 or 1
	// ScoredAt is the prediction's time; its UTC date is the partition, as in the predictions
	// table, so that an outcome lies in the same dates as its prediction.
	ScoredAt   time.Time
	ObservedAt time.Time // when the truth was observed, as the client says
	ReceivedAt time.Time // when Pulse received the feedback
	Source     string    // "api" or "kafka"
	FeedbackID string    // the REST request id or the CloudEvent id that carried the label
}

func (o *Outcome) validate(i int) error {
	switch {
	case o.PredictionID == "":
		return pulse.FieldErrorf(pulse.EINVALID, "PredictionID", "lake: outcome %d: PredictionID is empty, want a UUID", i)
	case o.Model == "":
		return pulse.FieldErrorf(pulse.EINVALID, "Model", "lake: outcome %d: Model is empty, want a model name", i)
	case o.ScoredAt.IsZero() || o.ObservedAt.IsZero() || o.ReceivedAt.IsZero():
		return pulse.FieldErrorf(pulse.EINVALID, "ScoredAt", "lake: outcome %d: ScoredAt, ObservedAt and ReceivedAt are required", i)
	case o.Label != 0 && o.Label != 1:
		return pulse.FieldErrorf(pulse.EINVALID, "Label", "lake: outcome %d: Label is %d, want 0 or 1", i, o.Label)
	case o.Predicted != 0 && o.Predicted != 1:
		return pulse.FieldErrorf(pulse.EINVALID, "Predicted", "lake: outcome %d: Predicted is %d, want 0 or 1", i, o.Predicted)
	case o.Version < 0 || o.Version > math.MaxInt32:
		return pulse.FieldErrorf(pulse.EINVALID, "Version", "lake: outcome %d: Version is %d, want a positive 32-bit integer", i, o.Version)
	}
	return nil
}

// An outcome record (tagOutcome, version 1) is, in order: PredictionID, ScoredAt, ObservedAt
// and ReceivedAt as Unix microseconds, Model, Version, Alias, Shadow, Probability, Predicted,
// Threshold, Label, Source, FeedbackID.
const (
	tagOutcome     = 3
	outcomeVersion = 1
)

// outcomesPrefix is the key prefix of the outcomes table.
const outcomesPrefix = "outcomes/"

func appendOutcome(b []byte, o *Outcome) []byte {
	b = append(b, tagOutcome, outcomeVersion)
	b = appendString(b, o.PredictionID)
	b = binary.AppendVarint(b, o.ScoredAt.UnixMicro())
	b = binary.AppendVarint(b, o.ObservedAt.UnixMicro())
	b = binary.AppendVarint(b, o.ReceivedAt.UnixMicro())
	b = appendString(b, o.Model)
	b = binary.AppendVarint(b, int64(o.Version))
	b = appendString(b, o.Alias)
	b = appendBool(b, o.Shadow)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(o.Probability))
	b = binary.AppendVarint(b, int64(o.Predicted))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(o.Threshold))
	b = binary.AppendVarint(b, int64(o.Label))
	b = appendString(b, o.Source)
	b = appendString(b, o.FeedbackID)
	return b
}

// outcomeRow is a row of an outcomes Parquet file; the model and the date (of scored_at) are
// hive partition directories.
type outcomeRow struct {
	PredictionID   string    `parquet:"prediction_id"`
	ModelVersion   int64     `parquet:"model_version"`
	Alias          string    `parquet:"alias,dict"`
	Shadow         bool      `parquet:"shadow"`
	Probability    float64   `parquet:"probability"`
	PredictedLabel int32     `parquet:"predicted_label"`
	Threshold      float64   `parquet:"threshold"`
	Label          int32     `parquet:"label"`
	ScoredAt       time.Time `parquet:"scored_at,timestamp(microsecond:utc)"`
	ObservedAt     time.Time `parquet:"observed_at,timestamp(microsecond:utc)"`
	ReceivedAt     time.Time `parquet:"received_at,timestamp(microsecond:utc)"`
	Source         string    `parquet:"source,dict"`
	FeedbackID     string    `parquet:"feedback_id"`
}

func decodeOutcome(p []byte, dates *dateCache) (partition, outcomeRow, error) {
	if len(p) < 2 || p[0] != tagOutcome {
		return partition{}, outcomeRow{}, fmt.Errorf("not an outcome record")
	}
	if p[1] != outcomeVersion {
		return partition{}, outcomeRow{}, fmt.Errorf("outcome encoding version %d, want %d", p[1], outcomeVersion)
	}
	d := newDecoder(p[2:])
	var r outcomeRow
	part := partition{table: tagOutcome}
	r.PredictionID = d.string()
	r.ScoredAt = time.UnixMicro(d.varint()).UTC()
	r.ObservedAt = time.UnixMicro(d.varint()).UTC()
	r.ReceivedAt = time.UnixMicro(d.varint()).UTC()
	part.name = d.string()
	r.ModelVersion = d.varint()
	r.Alias = d.string()
	r.Shadow = d.bool()
	r.Probability = d.float()
	r.PredictedLabel = int32(d.varint())
	r.Threshold = d.float()
	r.Label = int32(d.varint())
	r.Source = d.string()
	r.FeedbackID = d.string()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the last field", len(d.b))
	}
	if d.err != nil {
		return partition{}, outcomeRow{}, fmt.Errorf("bad outcome record: %w", d.err)
	}
	part.date = dates.of(r.ScoredAt)
	return part, r, nil
}
