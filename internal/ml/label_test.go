package ml

import (
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
)

func TestTargetLabel(t *testing.T) {
	for _, c := range []struct {
		target string
		v      any
		want   int
		err    bool
	}{
		{"num > 0", 2.0, 1, false},
		{"num > 0", 0.0, 0, false},
		{"num > 0", "3", 1, false},
		{"num > 0", true, 1, false},
		{"num > 0", false, 0, false},
		{"num > 0", 1, 1, false},
		{"num >= 2", 2.0, 1, false},
		{"num < 1", 0.5, 1, false},
		{"num != 0", 0.0, 0, false},
		{"disease", 1.0, 1, false},
		{"disease", true, 1, false},
		{"disease", "0", 0, false},
		{"disease", 2.0, 0, true},
		{`thal == "7"`, 7.0, 1, false},
		{`thal == "7"`, "7.0", 1, false},
		{`thal == "7"`, "3", 0, false},
		{`thal != "7"`, "3", 1, false},
		{`sick == "true"`, true, 1, false},
		{"num > 0", nil, 0, true},
		{"num > 0", "abc", 0, true},
		{"num > 0", []any{1}, 0, true},
	} {
		tg, err := ParseTarget(c.target)
		if err != nil {
			t.Fatalf("%s: %v", c.target, err)
		}
		got, err := tg.Label(c.v)
		if c.err {
			if pulse.ErrorCode(err) != pulse.EUNPROCESSABLE {
				t.Errorf("%s with %#v: got %d, %v; want an EUNPROCESSABLE error", c.target, c.v, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s with %#v: got %d, %v; want %d", c.target, c.v, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "num >", `num > "x`, "> 1"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q): got no error, want one", bad)
		}
	}
}
