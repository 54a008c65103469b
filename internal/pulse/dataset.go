package pulse

import (
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of a column.
type Kind string

// Column kinds.
const (
	Numeric     Kind = "numeric"     // a real number; missing values are imputed
	Categorical Kind = "categorical" // one of a set of values, one-hot encoded
	Binary      Kind = "binary"      // one of exactly two values, encoded 0/1
)

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool {
	return k == Numeric || k == Categorical || k == Binary
}

// DefaultMissingMarkers are the cell values that mean "missing" unless a dataset declares others.
var DefaultMissingMarkers = []string{"", "?", "NA"}

// Column describes one column of a dataset, or one input feature of a model.
type Column struct {
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	// Categories are the distinct non-missing values of a categorical or binary column, in
	// canonical form (see CanonicalCategory), sorted.
	Categories []string `json:"categories,omitempty"`
	// Missing counts the missing cells of the column in the dataset it was inferred from.
	Missing int `json:"missing"`
}

// Schema describes the columns of a dataset.
type Schema struct {
	Columns        []Column `json:"columns"`
	MissingMarkers []string `json:"missing_markers"`
}

// Index returns the position of the named column, or -1.
func (s Schema) Index(name string) int {
	for i, c := range s.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// CSVFormat says how a dataset's stored bytes are to be read again.
type CSVFormat struct {
	Header    bool   `json:"header"`
	Delimiter string `json:"delimiter"`
}

// Dataset is an immutable, registered file in the lake. Registering new content under an
// existing name gives the next version of that name; the name alone means the latest version.
type Dataset struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	SHA256    string    `json:"sha256"`
	Rows      int       `json:"rows"`
	Bytes     int64     `json:"bytes"`
	Format    CSVFormat `json:"format"`
	Schema    Schema    `json:"schema"`
	Location  string    `json:"location"` // key of the stored file in the lake
	CreatedAt time.Time `json:"created_at"`
}

// CanonicalCategory returns the canonical form of a categorical value: numbers are written in
// their shortest form ("1.0", "1" and "1e0" all become "1"), other text is trimmed of spaces.
// The same function is applied in training and in serving so that a category matches either way.
func CanonicalCategory(s string) string {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return s
}

// ValidName reports whether s may name a dataset, model or alias: 1 to 64 characters of
// lower-case letters, digits, '-', '_' and '.', starting with a letter or digit.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_' || c == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}
