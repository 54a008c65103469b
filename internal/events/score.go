package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/cloudmedical/pulse/internal/jsonscan"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// ScoreRequest is a decoded score.requested event: what to score, with which model, and what
// to echo in the answer.
type ScoreRequest struct {
	// ID is the event's id: the result's request_id. Source and Subject are the event's.
	ID      string
	Source  string
	Subject string
	Model   string
	// Version, when non-zero, selects a version; otherwise Alias (the champion when empty).
	Version int
	Alias   string
	Strict  bool
	// CorrelationID is the client's own id, echoed in the result ("" when not given).
	CorrelationID string
	// Inputs is the body of a REST predict request: one JSON object of features, or
	// {"instances": [...]}, valid JSON (the event is). It shares memory with the decoded event.
	Inputs json.RawMessage
}

// ScoreReserved are the fields a score result adds to the REST answer: score requests may not
// use them as input fields (serving.Request.Reserved).
var ScoreReserved = []string{"request_id", "correlation_id", "error"}

// HeaderCorrelationID is the Kafka header of a score result that carries the request's
// correlation_id, so that a client can match results without parsing them.
const HeaderCorrelationID = "pulse-correlation-id"

// DecodeScoreRequest decodes a score.requested event into r. It accepts exactly what Parse
// accepts with that type (the envelope's rules and the data's JSON Schema), and refuses the
// rest with Parse's error; other event types are refused naming the attribute "type".
//
// Common events take a fast path that checks the JSON and the schema's rules by hand in one
// pass, without copying the inputs; anything unusual (escaped strings, null attributes, a
// version written 1.0) and every refusal take the general path through Parse, whose errors
// are the answer.
func DecodeScoreRequest(b []byte, r *ScoreRequest) error {
	return decodeScore(b, r, nil)
}

// decodeScore is DecodeScoreRequest, taking the model and source from the last request of a
// stream when they are the same, without a new string (in may be nil).
func decodeScore(b []byte, r *ScoreRequest, in *interned) error {
	if decodeScoreFast(b, r, in) {
		return nil
	}
	return decodeScoreSlow(b, r)
}

// interned are the strings a stream of score requests mostly repeats.
type interned struct {
	model, source string
}

// intern returns s as a string: *last when it has the same bytes, otherwise a new string,
// which becomes *last.
func intern(s []byte, last *string) string {
	if string(s) == *last {
		return *last
	}
	*last = string(s)
	return *last
}

func decodeScoreSlow(b []byte, r *ScoreRequest) error {
	e, err := Parse(b)
	if err != nil {
		return err
	}
	if e.Type != TypeScoreRequested {
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "type", "attribute \"type\": got %q, want %q", e.Type, TypeScoreRequested)
	}
	var d struct {
		Model         string          `json:"model"`
		Version       json.Number     `json:"version"`
		Alias         string          `json:"alias"`
		Strict        bool            `json:"strict"`
		CorrelationID string          `json:"correlation_id"`
		Inputs        json.RawMessage `json:"inputs"`
	}
	if err := json.Unmarshal(e.Data, &d); err != nil {
		// The schema was checked: this is a bug of the schema or of this decoder.
		return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "data", "attribute \"data\": %v", err)
	}
	version := 0
	if d.Version != "" {
		f, err := d.Version.Float64() // an integer in [1, 2^31-1] by the schema, maybe written 1.0 or 1e0
		if err != nil {
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, "data/version", "data/version: got %s, want an integer", d.Version)
		}
		version = int(f)
	}
	*r = ScoreRequest{
		ID: e.ID, Source: e.Source, Subject: e.Subject,
		Model: d.Model, Version: version, Alias: d.Alias, Strict: d.Strict, CorrelationID: d.CorrelationID,
		Inputs: d.Inputs,
	}
	return nil
}

// decodeScoreFast decodes the common form of a score request: plain (unescaped) strings, only
// CloudEvents attributes, data with the documented members. It reports false, leaving r in
// any state, when the event is not in that form, whether or not it is valid.
func decodeScoreFast(b []byte, r *ScoreRequest, in *interned) bool {
	if in == nil {
		in = new(interned)
	}
	if len(b) > maxEventBytes {
		return false
	}
	i := jsonscan.SkipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	var specVersion, id, source, typ, subject, tm, contentType, data []byte
	hasSubject := false
	for m := (members{b: b, i: i, check: true}); ; {
		name, value, ok := m.next()
		if !ok {
			if !m.end || jsonscan.SkipSpace(b, m.pos+1) != len(b) { // nothing but space after the event
				return false
			}
			break
		}
		var dst *[]byte
		switch string(name) {
		case "specversion":
			dst = &specVersion
		case "id":
			dst = &id
		case "source":
			dst = &source
		case "type":
			dst = &typ
		case "subject":
			dst, hasSubject = &subject, true
		case "time":
			dst = &tm
		case "datacontenttype":
			dst = &contentType
		case "dataschema":
			if _, ok := plainString(value); !ok {
				return false
			}
			continue
		case "data":
			data = value
			continue
		default:
			if !validExtension(name) { // data_base64 and bad names: the general path refuses them
				return false
			}
			continue
		}
		if *dst, ok = plainString(value); !ok {
			return false
		}
	}
	if string(specVersion) != SpecVersion || len(id) == 0 || len(source) == 0 || string(typ) != TypeScoreRequested ||
		contentType != nil && string(contentType) != ContentTypeJSON || len(data) == 0 || data[0] != '{' {
		return false
	}
	if tm != nil {
		if _, err := time.Parse(time.RFC3339Nano, string(tm)); err != nil {
			return false
		}
	}
	*r = ScoreRequest{}
	var hasVersion, hasAlias, hasModel bool
	for m := (members{b: data}); ; {
		name, value, ok := m.next()
		if !ok {
			if !m.end {
				return false
			}
			break
		}
		switch string(name) {
		case "model":
			s, ok := plainString(value)
			if !ok {
				return false
			}
			r.Model, hasModel = intern(s, &in.model), true
			if !pulse.ValidName(r.Model) { // the schema's pattern
				return false
			}
		case "version":
			n, ok := positiveInt(value)
			if !ok {
				return false
			}
			r.Version, hasVersion = n, true
		case "alias":
			s, ok := plainString(value)
			if !ok || len(s) == 0 {
				return false
			}
			r.Alias, hasAlias = string(s), true
		case "strict":
			switch string(value) {
			case "true":
				r.Strict = true
			case "false":
				r.Strict = false
			default:
				return false
			}
		case "correlation_id":
			s, ok := plainString(value)
			if !ok || len(s) > 256 { // bytes: a longer one may still be 256 characters
				return false
			}
			r.CorrelationID = string(s)
		case "inputs":
			if value[0] != '{' {
				return false
			}
			r.Inputs = value
		default:
			return false
		}
	}
	if !hasModel || r.Inputs == nil || hasVersion && hasAlias {
		return false
	}
	r.ID, r.Source = string(id), intern(source, &in.source)
	if hasSubject {
		r.Subject = string(subject)
	}
	return true
}

// positiveInt reads a JSON number written with jsonscan.Digits only, from 1 to 2^31-1 (the schema's
// version); false for anything else.
func positiveInt(value []byte) (int, bool) {
	if len(value) == 0 || len(value) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range value {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= 1 && n <= 1<<31-1
}

// members walks the members of the JSON object at b[i]. With check, it checks the object as
// it goes (jsonscan.ValidValue for each value); without, the object must be known to be valid JSON.
type members struct {
	b     []byte
	i     int
	check bool
	pos   int // 0 before the first member, then the index of the next ',' or of the closing '}'
	end   bool
}

// next returns the next member's raw name (without quotes) and value. It returns false at the
// end of the object (end is then true and pos is the index of its '}'), or at a name with
// escapes or, with check, at invalid JSON (end false): the general path decodes those.
func (m *members) next() (name, value []byte, ok bool) {
	b := m.b
	var i int
	if m.pos == 0 {
		i = jsonscan.SkipSpace(b, m.i+1)
		if i < len(b) && b[i] == '}' {
			m.pos, m.end = i, true
			return nil, nil, false
		}
	} else {
		if m.pos >= len(b) {
			return nil, nil, false
		}
		if b[m.pos] == '}' {
			m.end = true
			return nil, nil, false
		}
		if b[m.pos] != ',' {
			return nil, nil, false
		}
		i = jsonscan.SkipSpace(b, m.pos+1)
	}
	if i >= len(b) || b[i] != '"' {
		return nil, nil, false
	}
	var end int
	if m.check {
		if end = jsonscan.ValidString(b, i); end < 0 {
			return nil, nil, false
		}
	} else {
		end, _ = jsonscan.SkipString(b, i)
	}
	name = b[i+1 : end-1]
	if bytes.IndexByte(name, '\\') >= 0 {
		return nil, nil, false
	}
	if i = jsonscan.SkipSpace(b, end); i >= len(b) || b[i] != ':' {
		return nil, nil, false
	}
	i = jsonscan.SkipSpace(b, i+1)
	var vend int
	if m.check {
		if vend = jsonscan.ValidValue(b, i); vend < 0 {
			return nil, nil, false
		}
	} else {
		vend = jsonscan.SkipValue(b, i)
	}
	m.pos = jsonscan.SkipSpace(b, vend)
	return name, b[i:vend], true
}

// plainString returns the content of value, a JSON string without escapes in valid UTF-8;
// false for anything else.
func plainString(value []byte) ([]byte, bool) {
	if len(value) < 2 || value[0] != '"' {
		return nil, false
	}
	s := value[1 : len(value)-1]
	ascii := true
	for _, c := range s {
		if c == '\\' {
			return nil, false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	return s, ascii || utf8.Valid(s)
}

// problemStatus is the HTTP status REST answers for each error code (internal/http decides it
// there; a score result says the same).
var problemStatus = map[string]int{
	pulse.EINVALID:       http.StatusBadRequest,
	pulse.EUNPROCESSABLE: http.StatusUnprocessableEntity,
	pulse.ENOTFOUND:      http.StatusNotFound,
	pulse.ECONFLICT:      http.StatusConflict,
	pulse.ETOOLARGE:      http.StatusRequestEntityTooLarge,
	pulse.EUNAVAILABLE:   http.StatusServiceUnavailable,
	pulse.EINTERNAL:      http.StatusInternalServerError,
}

// scoreCompletedSchema is the dataschema of score results.
var scoreCompletedSchema = schemas[TypeScoreCompleted].id

// AppendScoreResult appends to dst the score.completed event that answers req, in the
// CloudEvents JSON format: data is body (the REST answer for req's inputs) with request_id and
// correlation_id added, or, when err is not nil, {"request_id", "correlation_id", "error"}
// where error is the problem REST would answer for err. at is the event's time.
func AppendScoreResult(dst []byte, source string, req *ScoreRequest, body []byte, err error, at time.Time) []byte {
	id, uerr := uuid.NewV7()
	if uerr != nil {
		id = uuid.New()
	}
	var stamp [64]byte
	return appendScoreResult(dst, id, source, req, body, err, at.UTC().AppendFormat(stamp[:0], time.RFC3339Nano))
}

// appendScoreResult is AppendScoreResult with the event's id and its time, formatted in RFC
// 3339 with nanoseconds in UTC.
func appendScoreResult(dst []byte, id uuid.UUID, source string, req *ScoreRequest, body []byte, err error, at []byte) []byte {
	dst = append(dst, `{"specversion":"1.0","id":"`...)
	dst = appendUUID(dst, id)
	dst = append(dst, `","source":`...)
	dst = appendJSONString(dst, source)
	dst = append(dst, `,"type":"`+TypeScoreCompleted+`"`...)
	if req.Subject != "" {
		dst = append(dst, `,"subject":`...)
		dst = appendJSONString(dst, req.Subject)
	}
	dst = append(dst, `,"time":"`...)
	dst = append(dst, at...)
	dst = append(dst, `","datacontenttype":"`+ContentTypeJSON+`","dataschema":"`...)
	dst = append(dst, scoreCompletedSchema...)
	dst = append(dst, `","data":`...)
	if err == nil {
		dst = append(dst, body[:len(body)-1]...) // the answer without its closing brace
		dst = append(dst, ',')
	} else {
		dst = append(dst, '{')
	}
	dst = append(dst, `"request_id":`...)
	dst = appendJSONString(dst, req.ID)
	if req.CorrelationID != "" {
		dst = append(dst, `,"correlation_id":`...)
		dst = appendJSONString(dst, req.CorrelationID)
	}
	if err != nil {
		dst = appendProblem(append(dst, `,"error":`...), err)
	}
	return append(dst, "}}"...)
}

// appendProblem appends the RFC 9457 members REST answers for err.
func appendProblem(dst []byte, err error) []byte {
	code := pulse.ErrorCode(err)
	status, ok := problemStatus[code]
	if !ok {
		code, status = pulse.EINTERNAL, http.StatusInternalServerError
	}
	dst = append(dst, `{"type":"urn:pulse:problem:`...)
	dst = append(dst, code...)
	dst = append(dst, `","title":`...)
	dst = appendJSONString(dst, http.StatusText(status))
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, `,"detail":`...)
	dst = appendJSONString(dst, pulse.ErrorMessage(err))
	dst = append(dst, `,"code":"`...)
	dst = append(dst, code...)
	dst = append(dst, '"')
	var pe *pulse.Error
	if errors.As(err, &pe) && pe.Field != "" {
		dst = append(dst, `,"field":`...)
		dst = appendJSONString(dst, pe.Field)
	}
	return append(dst, '}')
}

func appendUUID(dst []byte, id uuid.UUID) []byte {
	const hex = "0123456789abcdef"
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[c>>4], hex[c&15])
	}
	return dst
}

// appendJSONString appends s as a JSON string, escaped as encoding/json does without HTML
// escaping: invalid UTF-8 becomes U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			switch r {
			case utf8.RuneError:
				dst = append(dst, `\ufffd`...)
			case '\u2028':
				dst = append(dst, `\u2028`...)
			default:
				dst = append(dst, `\u2029`...)
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
