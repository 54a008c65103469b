package serving

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/cloudmedical/pulse/internal/features"
	"github.com/cloudmedical/pulse/internal/jsonscan"
	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// scratch is the working space of one scoring call, reused through the Scorer's pool so that
// a record costs no map, key or slice allocations once warm.
type scratch struct {
	fields    map[string]json.RawMessage
	keys      map[string]string // interned field names
	order     []string          // the names of the last object split, in order
	instances [][]byte
	values    []ml.Value
	x         []float64
	recs      []lake.Prediction
	// obs holds the input values of recs for the observer, those of recs[i] from obsOff[i].
	obs    []ml.Value
	obsOff []int
	// parsers are the features.Parser of the models scored with this scratch, and obj the
	// object they read.
	parsers map[*ml.Model]*features.Parser
	obj     features.Object
	// random holds bytes of crypto/rand for the prediction ids, read in bulk.
	random *bufio.Reader
	// stamp is stampAt formatted as the responses' scored_at.
	stamp   []byte
	stampAt time.Time
}

// maxParsers bounds the parsers a scratch keeps.
const maxParsers = 16

// maxInternedKeys bounds the interned field names of one scratch: clients choose names freely.
const maxInternedKeys = 1024

func newScratch() *scratch {
	return &scratch{
		fields:  make(map[string]json.RawMessage, 16),
		keys:    make(map[string]string, 32),
		parsers: make(map[*ml.Model]*features.Parser),
		random:  bufio.NewReaderSize(rand.Reader, 4096),
	}
}

// putScratch returns sc to the pool without references to the call's bodies and answers.
func (s *Scorer) putScratch(sc *scratch) {
	clear(sc.fields)
	clear(sc.instances)
	sc.instances = sc.instances[:0]
	clear(sc.recs)
	sc.recs = sc.recs[:0]
	clear(sc.obs)
	sc.obs, sc.obsOff = sc.obs[:0], sc.obsOff[:0]
	sc.obj.Clear()
	s.scratch.Put(sc)
}

// parser returns the features.Parser of m, made once per scratch.
func (sc *scratch) parser(m *ml.Model) *features.Parser {
	p := sc.parsers[m]
	if p == nil {
		if len(sc.parsers) >= maxParsers {
			clear(sc.parsers)
		}
		p = features.NewParser(m.Inputs())
		sc.parsers[m] = p
	}
	return p
}

// stampOf returns at formatted as a response's scored_at, formatting it once for the many
// records of a call.
func (sc *scratch) stampOf(at time.Time) []byte {
	if len(sc.stamp) == 0 || at != sc.stampAt {
		sc.stamp, sc.stampAt = at.AppendFormat(sc.stamp[:0], time.RFC3339Nano), at
	}
	return sc.stamp
}

// readInputs reads the inputs of p's model from one object of a request into values, as
// features.Parse does with the object's fields after refusing the names in reserved: from
// fields when not nil, otherwise from sc.obj, split from the object with p.
func (sc *scratch) readInputs(p *features.Parser, fields map[string]json.RawMessage, reserved []string, values []ml.Value, prefix string, strict bool) ([]string, error) {
	for _, name := range reserved {
		has := false
		if fields != nil {
			_, has = fields[name]
		} else {
			has = sc.obj.Has(name)
		}
		if has {
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, prefix+name, "field %q is reserved for the response", prefix+name)
		}
	}
	if fields != nil {
		return features.Parse(p.Inputs(), fields, values, prefix, strict)
	}
	return p.Parse(&sc.obj, values, prefix, strict)
}

func (sc *scratch) valuesFor(n int) []ml.Value {
	if cap(sc.values) < n {
		sc.values = make([]ml.Value, n)
	}
	return sc.values[:n]
}

func (sc *scratch) scratchFor(n int) []float64 {
	if cap(sc.x) < n {
		sc.x = make([]float64, n)
	}
	return sc.x[:n]
}

// splitObject returns the members of obj, a valid JSON object (json.Valid holds and it starts
// with '{'), as encoding/json decodes it into a map[string]json.RawMessage: names unescaped,
// each value's bytes as sent without the space around them, the last of repeated names
// winning. The map is sc's own, valid until the next call; values alias obj.
func (sc *scratch) splitObject(obj []byte) map[string]json.RawMessage {
	clear(sc.fields)
	i := jsonscan.SkipSpace(obj, 1)
	if obj[i] == '}' {
		return sc.fields
	}
	for j := 0; ; j++ {
		end, escaped := jsonscan.SkipString(obj, i)
		var name string
		// Records of one stream usually name their fields in the same order: compare with the
		// name at this position in the last object before hashing.
		if raw := obj[i+1 : end-1]; !escaped && j < len(sc.order) && sc.order[j] == string(raw) {
			name = sc.order[j]
		} else {
			name = sc.name(obj[i:end], escaped)
			if j < len(sc.order) {
				sc.order[j] = name
			} else if j < maxInternedKeys {
				sc.order = append(sc.order, name)
			}
		}
		i = jsonscan.SkipSpace(obj, end)
		i = jsonscan.SkipSpace(obj, i+1) // the ':'
		vend := jsonscan.SkipValue(obj, i)
		sc.fields[name] = obj[i:vend]
		i = jsonscan.SkipSpace(obj, vend)
		if obj[i] == '}' {
			return sc.fields
		}
		i = jsonscan.SkipSpace(obj, i+1) // the ','
	}
}

// name returns the decoded member name of quoted, a JSON string with its quotes.
func (sc *scratch) name(quoted []byte, escaped bool) string {
	raw := quoted[1 : len(quoted)-1]
	if escaped || !utf8.Valid(raw) {
		// encoding/json's own decoding: escapes, and invalid UTF-8 replaced by U+FFFD.
		var s string
		_ = json.Unmarshal(quoted, &s) // valid JSON: cannot fail
		return s
	}
	if k, ok := sc.keys[string(raw)]; ok { // no allocation for the lookup
		return k
	}
	k := string(raw)
	if len(sc.keys) < maxInternedKeys {
		sc.keys[k] = k
	}
	return k
}

// splitArray appends the elements of arr, a valid JSON array, to out, each without the space
// around it.
func splitArray(arr []byte, out [][]byte) [][]byte {
	i := jsonscan.SkipSpace(arr, 1)
	if arr[i] == ']' {
		return out
	}
	for {
		end := jsonscan.SkipValue(arr, i)
		out = append(out, arr[i:end])
		i = jsonscan.SkipSpace(arr, end)
		if arr[i] == ']' {
			return out
		}
		i = jsonscan.SkipSpace(arr, i+1) // the ','
	}
}
