package registry_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
)

// TestTrainStoresProfile: training stores the version's training profile beside the
// artifact; Profile reads it back (also in a fresh service), and a version without one is
// ENOTFOUND.
func TestTrainStoresProfile(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	register(t, e.svc, "heart", readCleveland(t))
	v := train(t, e.svc, "hd", "heart", 7)

	key := registry.ProfileKey(v.ArtifactKey)
	if want := "models/hd/sha256-" + v.ArtifactSHA256 + ".profile.json"; key != want {
		t.Errorf("ProfileKey: got %q, want %q", key, want)
	}
	p, err := e.fresh(t).Profile(ctx, "hd", v.Version)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rows != 303 {
		t.Errorf("profile rows: got %d, want every row of the dataset, 303", p.Rows)
	}
	if len(p.Features) != len(v.Features) {
		t.Fatalf("profile features: got %d, want %d (the model's inputs)", len(p.Features), len(v.Features))
	}
	for i, f := range p.Features {
		if f.Name != v.Features[i].Name || f.Kind != v.Features[i].Kind {
			t.Errorf("feature %d: got %s (%s), want %s (%s)", i, f.Name, f.Kind, v.Features[i].Name, v.Features[i].Kind)
		}
		sum := 0.0
		for _, q := range f.Proportions {
			sum += q
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Errorf("feature %s: proportions sum to %v, want 1", f.Name, sum)
		}
		// ca has 4 missing values and thal 2 among the 303 rows.
		want := map[string]float64{"ca": 4.0 / 303, "thal": 2.0 / 303}[f.Name]
		if math.Abs(f.MissingRate-want) > 1e-12 {
			t.Errorf("feature %s: missing rate %v, want %v", f.Name, f.MissingRate, want)
		}
	}
	again, err := e.svc.Profile(ctx, "hd", v.Version)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(p)
	b, _ := json.Marshal(again)
	if string(a) != string(b) {
		t.Errorf("profile read twice differs:\n%s\n%s", a, b)
	}

	// A version whose profile is missing (trained before profiles existed).
	v2 := train(t, e.svc, "hd", "heart", 8)
	if err := e.blobs.Bucket.Delete(ctx, registry.ProfileKey(v2.ArtifactKey)); err != nil {
		t.Fatal(err)
	}
	_, err = e.fresh(t).Profile(ctx, "hd", v2.Version)
	wantCode(t, "profile of a version without one", err, pulse.ENOTFOUND)
	_, err = e.svc.Profile(ctx, "hd", 99)
	wantCode(t, "profile of a missing version", err, pulse.ENOTFOUND)
}
