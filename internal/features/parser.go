package features

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/cloudmedical/pulse/internal/jsonscan"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Parser reads one model's inputs from JSON objects exactly as Parse does, for hot paths: it
// matches an object's members to the inputs without building a map (Object, Split), and
// finds the categories the model knows without allocating. It is safe for concurrent use;
// each goroutine needs an Object of its own.
type Parser struct {
	inputs []pulse.Column
	// names are the names of the slots: the inputs, then Reserved; slots maps them back.
	names    []string
	slots    map[string]int
	reserved []int        // the slot of each name of Reserved
	cats     []categories // per input
}

// NewParser returns a Parser of inputs, a model's Inputs().
func NewParser(inputs []pulse.Column) *Parser {
	p := &Parser{
		inputs: inputs,
		names:  make([]string, 0, len(inputs)+len(Reserved)),
		slots:  make(map[string]int, len(inputs)+len(Reserved)),
		cats:   make([]categories, len(inputs)),
	}
	for i := range inputs {
		p.names = append(p.names, inputs[i].Name)
		p.cats[i] = newCategories(inputs[i].Categories)
	}
	p.names = append(p.names, Reserved...)
	// A name that is both an input's and reserved (an input named "model") has the input's
	// slot: whichever slot a name has, a member of that name is there for Parse to refuse.
	for slot := len(p.names) - 1; slot >= 0; slot-- {
		p.slots[p.names[slot]] = slot
	}
	for _, name := range Reserved {
		p.reserved = append(p.reserved, p.slots[name])
	}
	return p
}

// Inputs returns the inputs p reads.
func (p *Parser) Inputs() []pulse.Column { return p.inputs }

// Object is a JSON object split into its members by Split: the working space of
// Parser.Parse, reused from one object to the next. The zero value is ready to use; an
// Object is not safe for concurrent use.
type Object struct {
	p *Parser
	// Per member, in order: its name as written (it aliases the object) and its slot in p,
	// -1 when p does not know the name.
	names [][]byte
	slots []int
	// raw holds, per slot of p, the value of the last member of that name (nil: none), as
	// a map of the members holds it.
	raw     []json.RawMessage
	unknown int // members whose slot is -1
}

// Split splits obj into o's members, matched to p's slots. obj must be a valid JSON object
// (json.Valid holds and it starts with '{'). Split reports false when a member name is
// written with escapes or is not valid UTF-8: o is then unusable until the next Split, and
// the object is to be decoded into a map for Parse.
//
// Objects of one stream usually name their members in the same order: a member is first
// compared with the name the member at its position had in the last object.
func (o *Object) Split(p *Parser, obj []byte) bool {
	if o.p != p {
		o.p, o.slots = p, o.slots[:0] // the positions of another parser's slots mean nothing here
		if cap(o.raw) < len(p.names) {
			o.raw = make([]json.RawMessage, len(p.names))
		}
		o.raw = o.raw[:len(p.names)]
	}
	clear(o.raw)
	o.names, o.unknown = o.names[:0], 0
	i := jsonscan.SkipSpace(obj, 1)
	if obj[i] == '}' {
		o.slots = o.slots[:0]
		return true
	}
	for j := 0; ; j++ {
		end, escaped := jsonscan.SkipString(obj, i)
		name := obj[i+1 : end-1]
		if escaped || !validUTF8(name) {
			o.p = nil // the slots were overwritten in part: no hints for the next object
			return false
		}
		slot := -1
		if j < len(o.slots) && o.slots[j] >= 0 && p.names[o.slots[j]] == string(name) {
			slot = o.slots[j]
		} else if s, ok := p.slots[string(name)]; ok {
			slot = s
		}
		if j < len(o.slots) {
			o.slots[j] = slot
		} else {
			o.slots = append(o.slots, slot)
		}
		o.names = append(o.names, name)
		if slot < 0 {
			o.unknown++
		}
		i = jsonscan.SkipSpace(obj, end)
		i = jsonscan.SkipSpace(obj, i+1) // the ':'
		vend := jsonscan.SkipValue(obj, i)
		if slot >= 0 {
			o.raw[slot] = obj[i:vend]
		}
		i = jsonscan.SkipSpace(obj, vend)
		if obj[i] == '}' {
			o.slots = o.slots[:j+1]
			return true
		}
		i = jsonscan.SkipSpace(obj, i+1) // the ','
	}
}

func validUTF8(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return utf8.Valid(b)
		}
	}
	return true
}

// Clear drops o's references to the object split last, keeping what speeds up the next
// Split.
func (o *Object) Clear() {
	clear(o.names[:cap(o.names)])
	o.names = o.names[:0]
	clear(o.raw)
	o.unknown = 0
}

// Has reports whether the object split last has a member named name.
func (o *Object) Has(name string) bool {
	if o.p == nil {
		return false
	}
	if slot, ok := o.p.slots[name]; ok {
		return o.raw[slot] != nil
	}
	if o.unknown == 0 {
		return false
	}
	for j, n := range o.names {
		if o.slots[j] < 0 && string(n) == name {
			return true
		}
	}
	return false
}

// Parse reads the inputs from the members of o, split by Split with p, into values (in the
// order of p's inputs), with Parse's rules, warnings and errors.
func (p *Parser) Parse(o *Object, values []ml.Value, prefix string, strict bool) (warnings []string, err error) {
	if o.p != p {
		return nil, pulse.Errorf(pulse.EINTERNAL, "features: object split with another parser")
	}
	for k, slot := range p.reserved {
		if o.raw[slot] != nil {
			return nil, reservedError(prefix, Reserved[k])
		}
	}
	for i := range p.inputs {
		raw := o.raw[i]
		values[i] = ml.Value{}
		if raw == nil || isNull(raw) {
			continue
		}
		if warnings, err = read(&p.inputs[i], &p.cats[i], raw, &values[i], prefix, strict, warnings); err != nil {
			return nil, err
		}
	}
	if strict && o.unknown > 0 {
		unknown := make([]string, 0, o.unknown)
		for j, name := range o.names {
			if o.slots[j] < 0 {
				unknown = append(unknown, string(name))
			}
		}
		return nil, unknownError(prefix, unknown)
	}
	return warnings, nil
}

// categories finds the categories of an input that a JSON number or plain string names as
// they are written, without allocating; category and Parse find the others.
type categories struct {
	nums []numCategory // the categories that are numbers, by the bits of their value
	strs []string      // every category in canonical form, sorted
}

type numCategory struct {
	bits uint64
	s    string
}

func newCategories(cats []string) categories {
	var c categories
	for _, s := range cats {
		if pulse.CanonicalCategory(s) != s {
			continue // not as Parse compares them: leave it to the general path
		}
		c.strs = append(c.strs, s)
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			c.nums = append(c.nums, numCategory{math.Float64bits(f), s})
		}
	}
	slices.Sort(c.strs)
	slices.SortFunc(c.nums, func(a, b numCategory) int { return cmp.Compare(a.bits, b.bits) })
	return c
}

// find returns the category that raw, a JSON value, names when it is a number or a string
// without escapes that names a known category; false for anything else (which may still
// name a category). A number names the category that its canonical form is: the one with the
// same value, as FormatFloat writes each value one way.
func (c *categories) find(raw []byte) (string, bool) {
	if c == nil {
		return "", false
	}
	switch b := raw[0]; {
	case b == '-' || '0' <= b && b <= '9':
		f, err := parseFloat(raw)
		if err != nil {
			return "", false
		}
		bits := math.Float64bits(f)
		i, found := slices.BinarySearchFunc(c.nums, bits, func(n numCategory, bits uint64) int {
			switch {
			case n.bits < bits:
				return -1
			case n.bits > bits:
				return 1
			}
			return 0
		})
		if !found {
			return "", false
		}
		return c.nums[i].s, true
	case b == '"':
		s := raw[1 : len(raw)-1]
		for _, ch := range s {
			if ch == '\\' || ch >= utf8.RuneSelf {
				return "", false // escapes, and text that encoding/json may rewrite
			}
		}
		i, found := slices.BinarySearchFunc(c.strs, s, func(cat string, s []byte) int {
			switch {
			case cat < string(s):
				return -1
			case cat > string(s):
				return 1
			}
			return 0
		})
		if !found {
			return "", false
		}
		return c.strs[i], true
	}
	return "", false
}
