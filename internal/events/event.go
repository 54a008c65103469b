package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// SpecVersion is the CloudEvents version of every event.
const SpecVersion = "1.0"

// ContentTypeJSON is the data content type of every Pulse event, and the Kafka
// content-type header of structured-mode messages.
const (
	ContentTypeJSON  = "application/json"
	ContentTypeCloud = "application/cloudevents+json; charset=UTF-8"
)

// Event is a CloudEvents 1.0 event in the JSON format (structured mode: the whole event is
// the Kafka record's value). Data is the event's JSON payload, validated against the JSON
// Schema of its Type.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time,omitzero"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	DataSchema      string          `json:"dataschema,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// New returns an event of a documented type with a fresh id (a UUIDv7, so ids sort by
// creation time), the current time and data marshalled to JSON and validated against the
// type's schema. source is a URI-reference naming the producer, e.g. "/pulse/api";
// subject, optional, names what the event is about (a model, a dataset).
func New(source, typ, subject string, data any) (Event, error) {
	raw, ok := data.(json.RawMessage)
	if !ok {
		b, err := json.Marshal(data)
		if err != nil {
			return Event{}, fmt.Errorf("events: marshal %s data: %w", typ, err)
		}
		raw = b
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Event{}, fmt.Errorf("events: new id: %w", err)
	}
	e := Event{
		SpecVersion:     SpecVersion,
		ID:              id.String(),
		Source:          source,
		Type:            typ,
		Subject:         subject,
		Time:            time.Now().UTC(),
		DataContentType: ContentTypeJSON,
		Data:            raw,
	}
	if s, ok := schemas[typ]; ok {
		e.DataSchema = s.id
	}
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// Marshal returns the event in the CloudEvents JSON format (without HTML escaping, so data
// such as "num > 0" stays readable).
func (e Event) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("events: marshal %s: %w", e.Type, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Validate checks the envelope's attributes and the data against the type's schema. Errors
// are *pulse.Error (EUNPROCESSABLE) naming the attribute, or "data/..." for the data.
func (e Event) Validate() error {
	if e.SpecVersion != SpecVersion {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "specversion", "attribute \"specversion\": got %q, want %q", e.SpecVersion, SpecVersion)
	}
	if e.ID == "" {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "id", "attribute \"id\" is required, want a non-empty string")
	}
	if e.Source == "" {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "source", "attribute \"source\" is required, want a URI-reference such as \"/pulse/api\"")
	}
	if e.Type == "" {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "type", "attribute \"type\" is required, want one of the documented types")
	}
	s, ok := schemas[e.Type]
	if !ok {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "type", "attribute \"type\": got %q, want one of %q", e.Type, Types())
	}
	if e.DataContentType != "" && e.DataContentType != ContentTypeJSON {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "datacontenttype", "attribute \"datacontenttype\": got %q, want %q", e.DataContentType, ContentTypeJSON)
	}
	if len(e.Data) == 0 || bytes.Equal(e.Data, []byte("null")) {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "data", "attribute \"data\" is required for %s, want a JSON object", e.Type)
	}
	return s.validate(e.Data)
}

// maxEventBytes bounds the size of one event; Kafka's default message limit is about 1 MB.
const maxEventBytes = 1 << 20

// wireEvent is the JSON shape Parse decodes; pointers tell absent from empty.
type wireEvent struct {
	SpecVersion     *string         `json:"specversion"`
	ID              *string         `json:"id"`
	Source          *string         `json:"source"`
	Type            *string         `json:"type"`
	Subject         *string         `json:"subject"`
	Time            *string         `json:"time"`
	DataContentType *string         `json:"datacontenttype"`
	DataSchema      *string         `json:"dataschema"`
	DataBase64      json.RawMessage `json:"data_base64"`
	Data            json.RawMessage `json:"data"`
}

// Parse decodes one event in the CloudEvents JSON format and validates it strictly: the
// required attributes (specversion "1.0", id, source, type), attribute types, a documented
// type, JSON data (data_base64 is refused) and the data against the type's schema.
// Extension attributes with valid names are accepted and dropped; other unknown names
// (including differently cased attribute names) are refused. Errors are *pulse.Error naming
// the attribute.
func Parse(b []byte) (Event, error) {
	if len(b) > maxEventBytes {
		return Event{}, pulse.Errorf(pulse.ETOOLARGE, "event is %d bytes, want at most %d", len(b), maxEventBytes)
	}
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Event{}, pulse.FieldErrorf(pulse.EUNPROCESSABLE, te.Field, "attribute %q: got a JSON %s, want a string", te.Field, te.Value)
		}
		return Event{}, pulse.Errorf(pulse.EINVALID, "event is not a JSON object: %v", err)
	}
	if len(b) > 0 && bytes.TrimSpace(b)[0] != '{' {
		return Event{}, pulse.Errorf(pulse.EINVALID, "event is not a JSON object, want {\"specversion\": \"1.0\", ...}")
	}
	if err := checkAttributeNames(b); err != nil {
		return Event{}, err
	}
	required := func(name string, v *string) (string, error) {
		if v == nil {
			return "", pulse.FieldErrorf(pulse.EUNPROCESSABLE, name, "attribute %q is required", name)
		}
		if *v == "" {
			return "", pulse.FieldErrorf(pulse.EUNPROCESSABLE, name, "attribute %q: got \"\", want a non-empty string", name)
		}
		return *v, nil
	}
	var e Event
	var err error
	if e.SpecVersion, err = required("specversion", w.SpecVersion); err != nil {
		return Event{}, err
	}
	if e.SpecVersion != SpecVersion {
		return Event{}, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "specversion", "attribute \"specversion\": got %q, want %q", e.SpecVersion, SpecVersion)
	}
	if e.ID, err = required("id", w.ID); err != nil {
		return Event{}, err
	}
	if e.Source, err = required("source", w.Source); err != nil {
		return Event{}, err
	}
	if e.Type, err = required("type", w.Type); err != nil {
		return Event{}, err
	}
	for _, a := range []struct {
		v   *string
		dst *string
	}{{w.Subject, &e.Subject}, {w.DataContentType, &e.DataContentType}, {w.DataSchema, &e.DataSchema}} {
		if a.v != nil {
			*a.dst = *a.v
		}
	}
	if w.Time != nil {
		t, err := time.Parse(time.RFC3339Nano, *w.Time)
		if err != nil {
			return Event{}, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "time", "attribute \"time\": got %q, want an RFC 3339 timestamp", *w.Time)
		}
		e.Time = t
	}
	if w.DataBase64 != nil {
		return Event{}, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "data_base64", "attribute \"data_base64\": binary data is not accepted, want JSON \"data\"")
	}
	e.Data = w.Data
	if err := e.Validate(); err != nil {
		return Event{}, err
	}
	return e, nil
}

// checkAttributeNames refuses top-level names that are neither CloudEvents attributes nor
// valid extension names. b is a valid JSON object (json.Unmarshal accepted it); the scan
// allocates only for a refused name.
func checkAttributeNames(b []byte) error {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case '"':
			start := i + 1
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if depth != 1 {
				continue
			}
			name := b[start:i]
			j := i + 1
			for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r') {
				j++
			}
			if j >= len(b) || b[j] != ':' {
				continue // a string value, not a name
			}
			if !knownAttribute(name) && !validExtension(name) {
				return pulse.FieldErrorf(pulse.EUNPROCESSABLE, string(name), "attribute %q: want a CloudEvents attribute or an extension name of 1-20 characters a-z, 0-9", name)
			}
		}
	}
	return nil
}

func knownAttribute(name []byte) bool {
	switch string(name) { // no allocation: the compiler compares in place
	case "specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data", "data_base64":
		return true
	}
	return false
}

func validExtension(name []byte) bool {
	if len(name) == 0 || len(name) > 20 {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func abbreviate(raw json.RawMessage) string {
	const n = 40
	if len(raw) > n {
		return string(raw[:n]) + "..."
	}
	return string(raw)
}
