package registry

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// parseWindow reads a data window: Go duration syntax ("720h") or whole days ("90d").
func parseWindow(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n > 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "ingest_window", "ingest_window %q: want a positive duration such as \"90d\" or \"720h\"", s)
}

// appendIngested adds to t the labelled records ingested for the dataset since the given
// time (the lake's ingest table, each event once), with the label in the target's column, and
// returns how many it added. A value that does not fit its column (a word in a numeric column,
// an unknown value of a binary one) is taken as missing; a record without a label is not used.
func (s *Service) appendIngested(ctx context.Context, t *tabular.Table, dataset, target string, since time.Time) (int, error) {
	recs, err := lake.ReadIngest(ctx, s.cfg.Lake, dataset, since)
	if err != nil {
		return 0, err
	}
	targetCol := ml.TargetColumn(target)
	tg, err := ml.ParseTarget(target)
	if err != nil {
		return 0, err
	}
	tj := t.Schema.Index(targetCol)
	added, skipped := 0, 0
	for _, r := range recs {
		if len(r.Label) == 0 {
			continue
		}
		var fields map[string]json.RawMessage
		var label any
		if json.Unmarshal(r.Record, &fields) != nil || fields == nil || json.Unmarshal(r.Label, &label) != nil {
			skipped++ // not an object, or a label that is not JSON: not training data
			continue
		}
		// The label goes into the target's column: it must mean an outcome for the target and
		// fit that column (a word cannot be a number).
		if _, err := tg.Label(label); err != nil || (tj >= 0 && t.Num[tj] != nil && math.IsNaN(numberOf(r.Label))) {
			skipped++
			continue
		}
		for j, col := range t.Schema.Columns {
			raw := fields[col.Name]
			if col.Name == targetCol {
				raw = r.Label
			}
			if t.Num[j] != nil {
				t.Num[j] = append(t.Num[j], numberOf(raw))
				continue
			}
			v := categoryOf(raw)
			if col.Kind == pulse.Binary {
				if _, ok := slices.BinarySearch(col.Categories, v); !ok {
					v = ""
				}
			}
			t.Cat[j] = append(t.Cat[j], v)
		}
		t.Rows++
		added++
	}
	if skipped > 0 {
		s.log.Warn("ingested records not used for training: no usable label or not an object", "dataset", dataset, "skipped", skipped)
	}
	return added, nil
}

func numberOf(raw json.RawMessage) float64 {
	var f float64
	if len(raw) == 0 || json.Unmarshal(raw, &f) != nil || math.IsInf(f, 0) {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if g, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && !math.IsInf(g, 0) {
				return g
			}
		}
		return math.NaN()
	}
	return f
}

func categoryOf(raw json.RawMessage) string {
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return ""
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		return pulse.CanonicalCategory(s)
	case string(raw) == "true":
		return "1"
	case string(raw) == "false":
		return "0"
	case raw[0] == '{' || raw[0] == '[':
		return ""
	}
	return pulse.CanonicalCategory(string(raw))
}
