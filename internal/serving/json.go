package serving

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/cloudmedical/pulse/internal/jsonscan"
	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/ml"
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
}

// maxInternedKeys bounds the interned field names of one scratch: clients choose names freely.
const maxInternedKeys = 1024

func newScratch() *scratch {
	return &scratch{fields: make(map[string]json.RawMessage, 16), keys: make(map[string]string, 32)}
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
	s.scratch.Put(sc)
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
