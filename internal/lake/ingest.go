package lake

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// IngestRecord is one record ingested for a dataset (from a device, a pipeline or the ingest
// topic): a row of the ingest table. Together with the dataset's registered file, the ingest
// table is "the latest data" that scheduled retraining reads.
type IngestRecord struct {
	EventID    string    // the CloudEvent id; readers drop repeats of an id (at-least-once delivery)
	Dataset    string    // partition column, not stored inside the file
	ReceivedAt time.Time // stored in UTC with microsecond precision; its date is the partition
	Source     string    // the CloudEvent source, e.g. a device
	Record     []byte    // the record: a JSON object of column values
	Label      []byte    // the observed outcome as a JSON value, when known; empty when not
	// Partition and Offset locate the record in the ingest topic (-1 when it came another way),
	// so that a consumer of the lake can tell how far the stream has been stored.
	Partition int32
	Offset    int64
}

func (r *IngestRecord) validate(i int) error {
	switch {
	case r.EventID == "":
		return pulse.FieldErrorf(pulse.EINVALID, "EventID", "lake: ingest record %d: EventID is empty", i)
	case r.Dataset == "":
		return pulse.FieldErrorf(pulse.EINVALID, "Dataset", "lake: ingest record %d: Dataset is empty, want a dataset name", i)
	case r.ReceivedAt.IsZero():
		return pulse.FieldErrorf(pulse.EINVALID, "ReceivedAt", "lake: ingest record %d: ReceivedAt is zero", i)
	case len(r.Record) == 0:
		return pulse.FieldErrorf(pulse.EINVALID, "Record", "lake: ingest record %d: Record is empty, want a JSON object", i)
	}
	return nil
}

// An ingest record (tagIngest, version 1) is, in order: EventID, ReceivedAt as Unix
// microseconds, Dataset, Source, Record, Label, Partition, Offset.
const (
	tagIngest     = 2
	ingestVersion = 1
)

func appendIngest(b []byte, r *IngestRecord) []byte {
	b = append(b, tagIngest, ingestVersion)
	b = appendString(b, r.EventID)
	b = binary.AppendVarint(b, r.ReceivedAt.UnixMicro())
	b = appendString(b, r.Dataset)
	b = appendString(b, r.Source)
	b = appendBytes(b, r.Record)
	b = appendBytes(b, r.Label)
	b = binary.AppendVarint(b, int64(r.Partition))
	b = binary.AppendVarint(b, r.Offset)
	return b
}

// ingestRow is a row of an ingest Parquet file; the dataset and the date are hive partition
// directories.
type ingestRow struct {
	EventID    string    `parquet:"event_id"`
	ReceivedAt time.Time `parquet:"received_at,timestamp(microsecond:utc)"`
	Source     string    `parquet:"source,dict"`
	Record     string    `parquet:"record"`
	Label      string    `parquet:"label"` // JSON text of the outcome; "" when not known
	Partition  int32     `parquet:"kafka_partition"`
	Offset     int64     `parquet:"kafka_offset"`
}

// ingestPrefix is the key prefix of the ingest table.
const ingestPrefix = "ingest/"

func decodeIngest(p []byte, dates *dateCache) (partition, ingestRow, error) {
	if len(p) < 2 || p[0] != tagIngest {
		return partition{}, ingestRow{}, fmt.Errorf("not an ingest record")
	}
	if p[1] != ingestVersion {
		return partition{}, ingestRow{}, fmt.Errorf("ingest encoding version %d, want %d", p[1], ingestVersion)
	}
	d := newDecoder(p[2:])
	var r ingestRow
	part := partition{table: tagIngest}
	r.EventID = d.string()
	r.ReceivedAt = time.UnixMicro(d.varint()).UTC()
	part.name = d.string()
	r.Source = d.string()
	r.Record = d.string()
	r.Label = d.string()
	r.Partition = int32(d.varint())
	r.Offset = d.varint()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the last field", len(d.b))
	}
	if d.err != nil {
		return partition{}, ingestRow{}, fmt.Errorf("bad ingest record: %w", d.err)
	}
	part.date = dates.of(r.ReceivedAt)
	return part, r, nil
}
