package online

import (
	"math"
	"testing"
)

func TestRankAUC(t *testing.T) {
	for _, c := range []struct {
		name  string
		pairs []scored
		want  float64
	}{
		{"perfect", []scored{{0.1, 0}, {0.2, 0}, {0.8, 1}, {0.9, 1}}, 1},
		{"inverted", []scored{{0.1, 1}, {0.9, 0}}, 0},
		{"all tied", []scored{{0.5, 1}, {0.5, 0}, {0.5, 0}}, 0.5},
		{"one swap", []scored{{0.1, 0}, {0.3, 1}, {0.4, 0}, {0.9, 1}}, 0.75},
		{"one class", []scored{{0.1, 1}, {0.3, 1}}, 0},
	} {
		if got := rankAUC(c.pairs); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestPrequentialWindow(t *testing.T) {
	q := newPrequential(3, 0.5)
	// wrong, right, right, then right: the window forgets the first.
	for _, r := range []struct {
		p float64
		y int
	}{{0.9, 0}, {0.8, 1}, {0.2, 0}, {0.7, 1}} {
		q.add(r.p, r.y)
	}
	m := q.metrics()
	if m.Window != 3 || m.Accuracy != 1 || m.ROCAUC != 1 {
		t.Errorf("window: got %+v, want 3 records, accuracy 1, AUC 1", m)
	}
	if m.CumulativeAccuracy != 0.75 {
		t.Errorf("cumulative accuracy: got %v, want 0.75", m.CumulativeAccuracy)
	}
	// Cumulative: positives 0.8, 0.7; negatives 0.9, 0.2 -> 2 of 4 pairs ordered.
	if m.CumulativeROCAUC != 0.5 {
		t.Errorf("cumulative AUC: got %v, want 0.5", m.CumulativeROCAUC)
	}
	if a := testing.AllocsPerRun(100, func() { q.add(0.3, 1) }); a != 0 {
		t.Errorf("add: got %v allocations, want 0", a)
	}
}
