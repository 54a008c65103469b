// Package storetest is the conformance suite for Pulse's metadata stores. Every driver of
// pulse.DatasetStore and pulse.ModelStore (SQLite, PostgreSQL, ...) calls Run from its own
// tests, so that all drivers behave the same way.
//
// Beyond the interface comments in package pulse, the suite requires that:
//   - after CreateDataset or CreateVersion, the caller's struct equals what a read returns
//     (the store writes back Version, CreatedAt in UTC to at least the microsecond, and for a
//     version an empty, non-nil Aliases), and a failed create writes back nothing;
//   - an empty id, name, model or alias, and a "name@version" whose version is not a
//     positive integer, give EINVALID;
//   - reads return empty, non-nil slices and maps (JSON [] and {}, never null);
//   - JSON documents (schema, features, metrics, lineage) round-trip exactly, floats and
//     nested maps included;
//   - a value JSON cannot hold (NaN) gives EUNPROCESSABLE and stores nothing;
//   - messages of ENOTFOUND errors name the thing not found, quoted.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Store is what a metadata driver implements.
type Store interface {
	pulse.DatasetStore
	pulse.ModelStore
	pulse.EventStore
	pulse.PolicyStore
	pulse.DecisionStore
	pulse.AliasHistoryStore
}

// Run runs every conformance test against stores made by newStore (a fresh, empty store per
// call). newStore should register any cleanup with t.Cleanup; the tests run in parallel, so it
// must be safe to call from several goroutines.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	t.Helper()
	groups := []struct {
		name  string
		tests []test
	}{
		{"CreateDataset", createDatasetTests},
		{"FindDataset", findDatasetTests},
		{"FindDatasetBySHA", findDatasetBySHATests},
		{"ListDatasets", listDatasetsTests},
		{"CreateVersion", createVersionTests},
		{"GetVersion", getVersionTests},
		{"ListVersions", listVersionsTests},
		{"GetModel", getModelTests},
		{"ListModels", listModelsTests},
		{"SetAlias", setAliasTests},
		{"DeleteAlias", deleteAliasTests},
		{"Events", eventTests},
		{"Policies", policyTests},
		{"Decisions", decisionTests},
		{"AliasHistory", aliasHistoryTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t.Context(), t, newStore(t))
				})
			}
		})
	}
}

// test is one conformance test; it gets a fresh, empty store.
type test struct {
	name string
	fn   func(ctx context.Context, t *testing.T, s Store)
}

// concurrency is how many goroutines the concurrent tests start.
const concurrency = 16

var createDatasetTests = []test{
	{"AssignsVersionsPerName", func(ctx context.Context, t *testing.T, s Store) {
		for i, c := range []struct {
			id, name string
			want     int
		}{
			{"h1", "heart", 1},
			{"h2", "heart", 2},
			{"o1", "other", 1},
			{"h3", "heart", 3},
		} {
			d := newDataset(c.id, c.name, fmt.Sprintf("sha-%d", i))
			d.Version = 42 // ignored: the store assigns the version
			mustCreateDataset(ctx, t, s, d)
			if d.Version != c.want {
				t.Errorf("dataset %q of %q: got version %d, want %d", c.id, c.name, d.Version, c.want)
			}
		}
	}},
	{"RoundTrip", func(ctx context.Context, t *testing.T, s Store) {
		d := newDataset("h1", "heart", "abc")
		d.CreatedAt = time.Date(2024, 3, 5, 7, 9, 11, 123456000, time.UTC)
		mustCreateDataset(ctx, t, s, d)

		want := newDataset("h1", "heart", "abc")
		want.Version = 1
		want.CreatedAt = time.Date(2024, 3, 5, 7, 9, 11, 123456000, time.UTC)
		assertEqual(t, "dataset after create", d, want)
		got, err := s.FindDataset(ctx, "h1")
		if err != nil {
			t.Fatalf("FindDataset: %v", err)
		}
		assertEqual(t, "found dataset", got, want)
	}},
	{"CreatedAtDefaultsToNow", func(ctx context.Context, t *testing.T, s Store) {
		d := newDataset("h1", "heart", "abc")
		before := time.Now().Truncate(time.Microsecond)
		mustCreateDataset(ctx, t, s, d)
		after := time.Now()
		assertRecentUTC(t, d.CreatedAt, before, after)
		got, err := s.FindDataset(ctx, "h1")
		if err != nil {
			t.Fatalf("FindDataset: %v", err)
		}
		assertEqual(t, "found dataset", got, d)
	}},
	{"CreatedAtKeepsMicroseconds", func(ctx context.Context, t *testing.T, s Store) {
		in := time.Date(2025, 12, 31, 23, 59, 59, 999999999, time.FixedZone("CET", 3600))
		d := newDataset("h1", "heart", "abc")
		d.CreatedAt = in
		mustCreateDataset(ctx, t, s, d)
		assertMicroseconds(t, d.CreatedAt, in)
		got, err := s.FindDataset(ctx, "h1")
		if err != nil {
			t.Fatalf("FindDataset: %v", err)
		}
		assertEqual(t, "found dataset", got, d)
	}},
	{"DuplicateIDConflicts", func(ctx context.Context, t *testing.T, s Store) {
		first := newDataset("h1", "heart", "abc")
		mustCreateDataset(ctx, t, s, first)

		dup := newDataset("h1", "other", "def")
		err := s.CreateDataset(ctx, dup)
		assertCode(t, "create duplicate id", err, pulse.ECONFLICT)
		if dup.Version != 0 {
			t.Errorf("failed create: got version %d written back, want 0", dup.Version)
		}
		got, err := s.FindDataset(ctx, "h1")
		if err != nil {
			t.Fatalf("FindDataset: %v", err)
		}
		assertEqual(t, "original dataset", got, first)

		// The failed create used no version of "heart".
		next := newDataset("h2", "heart", "def")
		mustCreateDataset(ctx, t, s, next)
		if next.Version != 2 {
			t.Errorf("next dataset: got version %d, want 2", next.Version)
		}
	}},
	{"MissingFieldsInvalid", func(ctx context.Context, t *testing.T, s Store) {
		assertCode(t, "empty id", s.CreateDataset(ctx, newDataset("", "heart", "abc")), pulse.EINVALID)
		assertCode(t, "empty name", s.CreateDataset(ctx, newDataset("h1", "", "abc")), pulse.EINVALID)
		assertCode(t, "nil dataset", s.CreateDataset(ctx, nil), pulse.EINVALID)
		ds, err := s.ListDatasets(ctx)
		if err != nil {
			t.Fatalf("ListDatasets: %v", err)
		}
		if len(ds) != 0 {
			t.Errorf("after invalid creates: got %d datasets, want 0", len(ds))
		}
	}},
	{"ConcurrentVersionsAreConsecutive", func(ctx context.Context, t *testing.T, s Store) {
		versions := make([]int, concurrency)
		var wg sync.WaitGroup
		for i := range concurrency {
			wg.Go(func() {
				d := newDataset(fmt.Sprintf("h%d", i), "heart", fmt.Sprintf("sha-%d", i))
				if err := s.CreateDataset(ctx, d); err != nil {
					t.Errorf("CreateDataset %d: %v", i, err)
					return
				}
				versions[i] = d.Version
			})
		}
		wg.Wait()
		assertOneToN(t, "dataset versions", versions, concurrency)
		ds, err := s.ListDatasets(ctx)
		if err != nil {
			t.Fatalf("ListDatasets: %v", err)
		}
		got := make([]int, len(ds))
		for i, d := range ds {
			got[i] = d.Version
		}
		assertEqual(t, "listed versions", got, oneToN(concurrency))
	}},
}

var findDatasetTests = []test{
	{"ByIDNameAndVersion", func(ctx context.Context, t *testing.T, s Store) {
		h1 := newDataset("id-1", "heart", "aaa")
		h2 := newDataset("id-2", "heart", "bbb")
		o1 := newDataset("id-3", "other", "ccc")
		for _, d := range []*pulse.Dataset{h1, h2, o1} {
			mustCreateDataset(ctx, t, s, d)
		}
		for _, c := range []struct {
			ref  string
			want *pulse.Dataset
		}{
			{"id-1", h1},
			{"id-2", h2},
			{"id-3", o1},
			{"heart", h2},
			{"other", o1},
			{"heart@1", h1},
			{"heart@2", h2},
			{"other@1", o1},
		} {
			got, err := s.FindDataset(ctx, c.ref)
			if err != nil {
				t.Errorf("FindDataset(%q): %v", c.ref, err)
				continue
			}
			assertEqual(t, fmt.Sprintf("FindDataset(%q)", c.ref), got, c.want)
		}
	}},
	{"Errors", func(ctx context.Context, t *testing.T, s Store) {
		mustCreateDataset(ctx, t, s, newDataset("id-1", "heart", "aaa"))
		for _, c := range []struct {
			ref, code, mention string
		}{
			{"ghost", pulse.ENOTFOUND, `"ghost"`},
			{"ghost@1", pulse.ENOTFOUND, `"ghost"`},
			{"heart@2", pulse.ENOTFOUND, `"heart"`},
			{"", pulse.ENOTFOUND, `""`},
			{"heart@x", pulse.EINVALID, `"x"`},
			{"heart@0", pulse.EINVALID, `"0"`},
			{"heart@-1", pulse.EINVALID, `"-1"`},
			{"heart@", pulse.EINVALID, `""`},
		} {
			got, err := s.FindDataset(ctx, c.ref)
			what := fmt.Sprintf("FindDataset(%q)", c.ref)
			assertCode(t, what, err, c.code)
			assertMentions(t, what, err, c.mention)
			if got != nil {
				t.Errorf("%s: got dataset %q, want nil with the error", what, got.ID)
			}
		}
	}},
}

var findDatasetBySHATests = []test{
	{"FindsTheVersionWithTheHash", func(ctx context.Context, t *testing.T, s Store) {
		h1 := newDataset("id-1", "heart", "aaa")
		h2 := newDataset("id-2", "heart", "bbb")
		o1 := newDataset("id-3", "other", "aaa") // same content under another name
		for _, d := range []*pulse.Dataset{h1, h2, o1} {
			mustCreateDataset(ctx, t, s, d)
		}
		for _, c := range []struct {
			name, sha string
			want      *pulse.Dataset
		}{
			{"heart", "aaa", h1},
			{"heart", "bbb", h2},
			{"other", "aaa", o1},
		} {
			got, err := s.FindDatasetBySHA(ctx, c.name, c.sha)
			if err != nil {
				t.Errorf("FindDatasetBySHA(%q, %q): %v", c.name, c.sha, err)
				continue
			}
			assertEqual(t, fmt.Sprintf("FindDatasetBySHA(%q, %q)", c.name, c.sha), got, c.want)
		}
	}},
	{"NotFound", func(ctx context.Context, t *testing.T, s Store) {
		mustCreateDataset(ctx, t, s, newDataset("id-1", "heart", "aaa"))
		mustCreateDataset(ctx, t, s, newDataset("id-2", "other", "bbb"))
		for _, c := range []struct{ name, sha string }{
			{"heart", "bbb"}, // the hash of another name's dataset
			{"heart", "zzz"},
			{"ghost", "aaa"},
		} {
			got, err := s.FindDatasetBySHA(ctx, c.name, c.sha)
			what := fmt.Sprintf("FindDatasetBySHA(%q, %q)", c.name, c.sha)
			assertCode(t, what, err, pulse.ENOTFOUND)
			assertMentions(t, what, err, fmt.Sprintf("%q", c.name))
			if got != nil {
				t.Errorf("%s: got dataset %q, want nil with the error", what, got.ID)
			}
		}
	}},
}

var listDatasetsTests = []test{
	{"Empty", func(ctx context.Context, t *testing.T, s Store) {
		ds, err := s.ListDatasets(ctx)
		if err != nil {
			t.Fatalf("ListDatasets: %v", err)
		}
		if ds == nil || len(ds) != 0 {
			t.Errorf("empty store: got %#v, want an empty, non-nil slice", ds)
		}
	}},
	{"ByNameThenVersion", func(ctx context.Context, t *testing.T, s Store) {
		b1 := newDataset("1", "beta", "s1")
		a1 := newDataset("2", "alpha", "s2")
		b2 := newDataset("3", "beta", "s3")
		c1 := newDataset("4", "gamma", "s4")
		a2 := newDataset("5", "alpha", "s5")
		for _, d := range []*pulse.Dataset{b1, a1, b2, c1, a2} {
			mustCreateDataset(ctx, t, s, d)
		}
		got, err := s.ListDatasets(ctx)
		if err != nil {
			t.Fatalf("ListDatasets: %v", err)
		}
		assertEqual(t, "datasets", got, []*pulse.Dataset{a1, a2, b1, b2, c1})
	}},
	{"NamesInByteOrder", func(ctx context.Context, t *testing.T, s Store) {
		// Byte order, as Go compares strings: not a locale's collation.
		names := []string{"b", "B", "a", "_x", "é", "Z", "a-b", "a.b", "ab", "a b"}
		for i, name := range names {
			mustCreateDataset(ctx, t, s, newDataset(fmt.Sprintf("id-%d", i), name, "sha"))
		}
		ds, err := s.ListDatasets(ctx)
		if err != nil {
			t.Fatalf("ListDatasets: %v", err)
		}
		got := make([]string, len(ds))
		for i, d := range ds {
			got[i] = d.Name
		}
		want := slices.Clone(names)
		slices.Sort(want)
		assertEqual(t, "dataset names", got, want)
	}},
}

var createVersionTests = []test{
	{"AssignsVersionsPerModel", func(ctx context.Context, t *testing.T, s Store) {
		for _, c := range []struct {
			model string
			want  int
		}{
			{"heart", 1},
			{"heart", 2},
			{"other", 1},
			{"heart", 3},
			{"other", 2},
		} {
			v := newVersion(c.model)
			v.Version = 42 // ignored: the store assigns the version
			mustCreateVersion(ctx, t, s, v)
			if v.Version != c.want {
				t.Errorf("version of %q: got %d, want %d", c.model, v.Version, c.want)
			}
			if v.Aliases == nil || len(v.Aliases) != 0 {
				t.Errorf("version %d of %q: got aliases %#v, want an empty, non-nil slice", v.Version, c.model, v.Aliases)
			}
		}
	}},
	{"RoundTrip", func(ctx context.Context, t *testing.T, s Store) {
		createdAt := time.Date(2024, 2, 29, 12, 0, 0, 1000, time.UTC)
		v := newVersion("heart")
		v.CreatedAt = createdAt
		mustCreateVersion(ctx, t, s, v)

		want := newVersion("heart")
		want.Version = 1
		want.CreatedAt = createdAt
		want.Aliases = []string{}
		assertEqual(t, "version after create", v, want)
		got, err := s.GetVersion(ctx, "heart", 1)
		if err != nil {
			t.Fatalf("GetVersion: %v", err)
		}
		assertEqual(t, "got version", got, want)

		// Spot checks, in case the fixture and the store agree on a mistake.
		if got.Metrics.Holdout == nil || got.Metrics.Holdout.ROCAUC != 0.1+0.2 {
			t.Errorf("holdout roc_auc: got %+v, want %v", got.Metrics.Holdout, 0.1+0.2)
		}
		if got.Metrics.CV == nil || len(got.Metrics.CV.PerFold) != 3 || got.Metrics.CV.PerFold[2].LogLoss != math.SmallestNonzeroFloat64 {
			t.Errorf("cv per fold: got %+v, want 3 folds, the last with log_loss %v", got.Metrics.CV, math.SmallestNonzeroFloat64)
		}
		if got.Lineage.Seed != math.MaxUint64-1 {
			t.Errorf("lineage seed: got %d, want %d", got.Lineage.Seed, uint64(math.MaxUint64-1))
		}
		nested, _ := got.Lineage.Params["optimizer"].(map[string]any)
		if nested["learning_rate"] != 1.0/3 {
			t.Errorf("lineage params optimizer.learning_rate: got %v, want %v", nested["learning_rate"], 1.0/3)
		}
	}},
	{"EmptyMetricsAndLineage", func(ctx context.Context, t *testing.T, s Store) {
		v := &pulse.ModelVersion{Model: "bare", Threshold: 0.5}
		mustCreateVersion(ctx, t, s, v)
		got, err := s.GetVersion(ctx, "bare", 1)
		if err != nil {
			t.Fatalf("GetVersion: %v", err)
		}
		assertEqual(t, "bare version", got, v)
	}},
	{"CreatedAtDefaultsToNow", func(ctx context.Context, t *testing.T, s Store) {
		v := newVersion("heart")
		before := time.Now().Truncate(time.Microsecond)
		mustCreateVersion(ctx, t, s, v)
		after := time.Now()
		assertRecentUTC(t, v.CreatedAt, before, after)
		got, err := s.GetVersion(ctx, "heart", 1)
		if err != nil {
			t.Fatalf("GetVersion: %v", err)
		}
		assertEqual(t, "got version", got, v)
	}},
	{"CreatedAtKeepsMicroseconds", func(ctx context.Context, t *testing.T, s Store) {
		in := time.Date(1999, 1, 2, 3, 4, 5, 678901234, time.FixedZone("EST", -5*3600))
		v := newVersion("heart")
		v.CreatedAt = in
		mustCreateVersion(ctx, t, s, v)
		assertMicroseconds(t, v.CreatedAt, in)
		got, err := s.GetVersion(ctx, "heart", 1)
		if err != nil {
			t.Fatalf("GetVersion: %v", err)
		}
		assertEqual(t, "got version", got, v)
	}},
	{"CreatesTheModel", func(ctx context.Context, t *testing.T, s Store) {
		first := newVersion("heart")
		first.CreatedAt = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		mustCreateVersion(ctx, t, s, first)
		second := newVersion("heart")
		second.CreatedAt = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
		mustCreateVersion(ctx, t, s, second)
		m, err := s.GetModel(ctx, "heart")
		if err != nil {
			t.Fatalf("GetModel: %v", err)
		}
		assertEqual(t, "model", m, &pulse.Model{
			Name:          "heart",
			CreatedAt:     first.CreatedAt,
			LatestVersion: 2,
			Aliases:       map[string]int{},
		})
	}},
	{"Invalid", func(ctx context.Context, t *testing.T, s Store) {
		assertCode(t, "empty model", s.CreateVersion(ctx, newVersion("")), pulse.EINVALID)
		assertCode(t, "nil version", s.CreateVersion(ctx, nil), pulse.EINVALID)

		nan := newVersion("heart")
		nan.Metrics.Holdout.ROCAUC = math.NaN()
		assertCode(t, "NaN metric", s.CreateVersion(ctx, nan), pulse.EUNPROCESSABLE)
		inf := newVersion("heart")
		inf.Threshold = math.Inf(1)
		assertCode(t, "infinite threshold", s.CreateVersion(ctx, inf), pulse.EUNPROCESSABLE)
		if nan.Version != 0 || inf.Version != 0 {
			t.Errorf("failed creates: got versions %d and %d written back, want 0", nan.Version, inf.Version)
		}
		ms, err := s.ListModels(ctx)
		if err != nil {
			t.Fatalf("ListModels: %v", err)
		}
		if len(ms) != 0 {
			t.Errorf("after invalid creates: got %d models, want 0", len(ms))
		}

		ok := newVersion("heart")
		mustCreateVersion(ctx, t, s, ok)
		if ok.Version != 1 {
			t.Errorf("first valid version: got %d, want 1", ok.Version)
		}
	}},
	{"ConcurrentVersionsAreConsecutive", func(ctx context.Context, t *testing.T, s Store) {
		// The model does not exist yet: its creation races too.
		versions := make([]int, concurrency)
		var wg sync.WaitGroup
		for i := range concurrency {
			wg.Go(func() {
				v := newVersion("heart")
				v.ArtifactKey = fmt.Sprintf("artifact-%d", i)
				if err := s.CreateVersion(ctx, v); err != nil {
					t.Errorf("CreateVersion %d: %v", i, err)
					return
				}
				versions[i] = v.Version
			})
		}
		wg.Wait()
		assertOneToN(t, "model versions", versions, concurrency)

		vs, err := s.ListVersions(ctx, "heart")
		if err != nil {
			t.Fatalf("ListVersions: %v", err)
		}
		got := make([]int, len(vs))
		for i, v := range vs {
			got[i] = v.Version
			// Each goroutine's version holds that goroutine's artifact.
			if j := slices.Index(versions, v.Version); j < 0 || v.ArtifactKey != fmt.Sprintf("artifact-%d", j) {
				t.Errorf("version %d: got artifact %q, want the one of the goroutine given that version", v.Version, v.ArtifactKey)
			}
		}
		assertEqual(t, "listed versions", got, oneToN(concurrency))
		m, err := s.GetModel(ctx, "heart")
		if err != nil {
			t.Fatalf("GetModel: %v", err)
		}
		if m.LatestVersion != concurrency {
			t.Errorf("latest version: got %d, want %d", m.LatestVersion, concurrency)
		}
	}},
}

var getVersionTests = []test{
	{"AliasesSorted", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 2)
		for _, a := range []string{"zeta", pulse.AliasChampion, "alpha"} {
			mustSetAlias(ctx, t, s, "heart", a, 1)
		}
		mustSetAlias(ctx, t, s, "heart", pulse.AliasChallenger, 2)
		for _, c := range []struct {
			version int
			want    []string
		}{
			{1, []string{"alpha", "champion", "zeta"}},
			{2, []string{"challenger"}},
		} {
			got, err := s.GetVersion(ctx, "heart", c.version)
			if err != nil {
				t.Fatalf("GetVersion(%d): %v", c.version, err)
			}
			assertEqual(t, fmt.Sprintf("aliases of version %d", c.version), got.Aliases, c.want)
		}
	}},
	{"NotFound", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 1)
		for _, c := range []struct {
			model   string
			version int
			mention string
		}{
			{"ghost", 1, `"ghost"`},
			{"heart", 2, `"heart"`},
			{"heart", 0, `"heart"`},
			{"heart", -1, `"heart"`},
		} {
			got, err := s.GetVersion(ctx, c.model, c.version)
			what := fmt.Sprintf("GetVersion(%q, %d)", c.model, c.version)
			assertCode(t, what, err, pulse.ENOTFOUND)
			assertMentions(t, what, err, c.mention)
			if got != nil {
				t.Errorf("%s: got a version, want nil with the error", what)
			}
		}
	}},
}

var listVersionsTests = []test{
	{"OldestFirstWithAliases", func(ctx context.Context, t *testing.T, s Store) {
		created := createVersions(ctx, t, s, "heart", 3)
		createVersions(ctx, t, s, "other", 2)
		mustSetAlias(ctx, t, s, "heart", pulse.AliasChampion, 2)
		mustSetAlias(ctx, t, s, "heart", "beta", 2)
		mustSetAlias(ctx, t, s, "heart", pulse.AliasChallenger, 3)
		mustSetAlias(ctx, t, s, "other", "gamma", 1)

		created[1].Aliases = []string{"beta", "champion"}
		created[2].Aliases = []string{"challenger"}
		got, err := s.ListVersions(ctx, "heart")
		if err != nil {
			t.Fatalf("ListVersions: %v", err)
		}
		assertEqual(t, "versions", got, created)
	}},
	{"UnknownModel", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 1)
		got, err := s.ListVersions(ctx, "ghost")
		assertCode(t, "ListVersions(ghost)", err, pulse.ENOTFOUND)
		assertMentions(t, "ListVersions(ghost)", err, `"ghost"`)
		if got != nil {
			t.Errorf("ListVersions(ghost): got %d versions, want nil with the error", len(got))
		}
	}},
}

var getModelTests = []test{
	{"LatestVersionAndAliases", func(ctx context.Context, t *testing.T, s Store) {
		created := createVersions(ctx, t, s, "heart", 3)
		createVersions(ctx, t, s, "other", 1)
		mustSetAlias(ctx, t, s, "heart", pulse.AliasChampion, 1)
		mustSetAlias(ctx, t, s, "heart", pulse.AliasChallenger, 3)
		mustSetAlias(ctx, t, s, "other", pulse.AliasChampion, 1)
		got, err := s.GetModel(ctx, "heart")
		if err != nil {
			t.Fatalf("GetModel: %v", err)
		}
		assertEqual(t, "model", got, &pulse.Model{
			Name:          "heart",
			CreatedAt:     created[0].CreatedAt,
			LatestVersion: 3,
			Aliases:       map[string]int{"champion": 1, "challenger": 3},
		})
	}},
	{"NoAliases", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 1)
		got, err := s.GetModel(ctx, "heart")
		if err != nil {
			t.Fatalf("GetModel: %v", err)
		}
		if got.Aliases == nil || len(got.Aliases) != 0 {
			t.Errorf("aliases: got %#v, want an empty, non-nil map", got.Aliases)
		}
	}},
	{"NotFound", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 1)
		got, err := s.GetModel(ctx, "ghost")
		assertCode(t, "GetModel(ghost)", err, pulse.ENOTFOUND)
		assertMentions(t, "GetModel(ghost)", err, `"ghost"`)
		if got != nil {
			t.Errorf("GetModel(ghost): got %q, want nil with the error", got.Name)
		}
	}},
}

var listModelsTests = []test{
	{"Empty", func(ctx context.Context, t *testing.T, s Store) {
		ms, err := s.ListModels(ctx)
		if err != nil {
			t.Fatalf("ListModels: %v", err)
		}
		if ms == nil || len(ms) != 0 {
			t.Errorf("empty store: got %#v, want an empty, non-nil slice", ms)
		}
	}},
	{"ByNameWithAliases", func(ctx context.Context, t *testing.T, s Store) {
		b := createVersions(ctx, t, s, "beta", 2)
		a := createVersions(ctx, t, s, "alpha", 1)
		c := createVersions(ctx, t, s, "gamma", 3)
		mustSetAlias(ctx, t, s, "alpha", pulse.AliasChampion, 1)
		mustSetAlias(ctx, t, s, "gamma", pulse.AliasChampion, 2)
		mustSetAlias(ctx, t, s, "gamma", pulse.AliasChallenger, 3)
		got, err := s.ListModels(ctx)
		if err != nil {
			t.Fatalf("ListModels: %v", err)
		}
		assertEqual(t, "models", got, []*pulse.Model{
			{Name: "alpha", CreatedAt: a[0].CreatedAt, LatestVersion: 1, Aliases: map[string]int{"champion": 1}},
			{Name: "beta", CreatedAt: b[0].CreatedAt, LatestVersion: 2, Aliases: map[string]int{}},
			{Name: "gamma", CreatedAt: c[0].CreatedAt, LatestVersion: 3, Aliases: map[string]int{"champion": 2, "challenger": 3}},
		})
	}},
}

var setAliasTests = []test{
	{"ReturnsPreviousVersion", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 3)
		for _, c := range []struct {
			version, previous int
		}{
			{1, 0},
			{2, 1},
			{2, 2},
			{3, 2},
			{1, 3},
		} {
			previous, err := s.SetAlias(ctx, "heart", pulse.AliasChampion, c.version)
			if err != nil {
				t.Fatalf("SetAlias(champion, %d): %v", c.version, err)
			}
			if previous != c.previous {
				t.Errorf("SetAlias(champion, %d): got previous %d, want %d", c.version, previous, c.previous)
			}
		}
	}},
	{"MovesTheAlias", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 2)
		mustSetAlias(ctx, t, s, "heart", pulse.AliasChampion, 1)
		mustSetAlias(ctx, t, s, "heart", pulse.AliasChampion, 2)
		assertAliases(ctx, t, s, "heart", map[int][]string{1: {}, 2: {"champion"}})
	}},
	{"PerModel", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 2)
		createVersions(ctx, t, s, "other", 2)
		mustSetAlias(ctx, t, s, "heart", pulse.AliasChampion, 1)
		previous, err := s.SetAlias(ctx, "other", pulse.AliasChampion, 2)
		if err != nil {
			t.Fatalf("SetAlias(other): %v", err)
		}
		if previous != 0 {
			t.Errorf("SetAlias(other): got previous %d, want 0 (the alias of another model)", previous)
		}
		assertAliases(ctx, t, s, "heart", map[int][]string{1: {"champion"}, 2: {}})
		assertAliases(ctx, t, s, "other", map[int][]string{1: {}, 2: {"champion"}})
	}},
	{"MissingVersionOrModel", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 2)
		mustSetAlias(ctx, t, s, "heart", pulse.AliasChampion, 1)
		for _, c := range []struct {
			model   string
			version int
			mention string
		}{
			{"heart", 3, `"heart"`},
			{"heart", 0, `"heart"`},
			{"ghost", 1, `"ghost"`},
		} {
			previous, err := s.SetAlias(ctx, c.model, pulse.AliasChampion, c.version)
			what := fmt.Sprintf("SetAlias(%q, champion, %d)", c.model, c.version)
			assertCode(t, what, err, pulse.ENOTFOUND)
			assertMentions(t, what, err, c.mention)
			if previous != 0 {
				t.Errorf("%s: got previous %d, want 0 with the error", what, previous)
			}
		}
		// The failed calls changed nothing.
		assertAliases(ctx, t, s, "heart", map[int][]string{1: {"champion"}, 2: {}})
		if _, err := s.GetModel(ctx, "ghost"); pulse.ErrorCode(err) != pulse.ENOTFOUND {
			t.Errorf("GetModel(ghost) after SetAlias: got %v, want %s", err, pulse.ENOTFOUND)
		}
	}},
	{"ConcurrentPreviousVersionsChain", func(ctx context.Context, t *testing.T, s Store) {
		// Each SetAlias sees the one before it: the previous versions returned are 0 once
		// and every version but the last one set exactly once.
		createVersions(ctx, t, s, "heart", concurrency)
		previous := make([]int, concurrency)
		var wg sync.WaitGroup
		for i := range concurrency {
			wg.Go(func() {
				p, err := s.SetAlias(ctx, "heart", pulse.AliasChampion, i+1)
				if err != nil {
					t.Errorf("SetAlias(champion, %d): %v", i+1, err)
					return
				}
				previous[i] = p
			})
		}
		wg.Wait()
		m, err := s.GetModel(ctx, "heart")
		if err != nil {
			t.Fatalf("GetModel: %v", err)
		}
		last := m.Aliases[pulse.AliasChampion]
		want := []int{0}
		for v := 1; v <= concurrency; v++ {
			if v != last {
				want = append(want, v)
			}
		}
		got := slices.Clone(previous)
		slices.Sort(got)
		assertEqual(t, fmt.Sprintf("previous versions (the alias ends on %d)", last), got, want)
	}},
	{"EmptyAliasInvalid", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 1)
		_, err := s.SetAlias(ctx, "heart", "", 1)
		assertCode(t, "SetAlias with empty alias", err, pulse.EINVALID)
		assertAliases(ctx, t, s, "heart", map[int][]string{1: {}})
	}},
}

var deleteAliasTests = []test{
	{"Removes", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 2)
		createVersions(ctx, t, s, "other", 1)
		mustSetAlias(ctx, t, s, "heart", pulse.AliasChampion, 1)
		mustSetAlias(ctx, t, s, "heart", pulse.AliasChallenger, 2)
		mustSetAlias(ctx, t, s, "other", pulse.AliasChallenger, 1)
		if err := s.DeleteAlias(ctx, "heart", pulse.AliasChallenger); err != nil {
			t.Fatalf("DeleteAlias: %v", err)
		}
		assertAliases(ctx, t, s, "heart", map[int][]string{1: {"champion"}, 2: {}})
		assertAliases(ctx, t, s, "other", map[int][]string{1: {"challenger"}})
		m, err := s.GetModel(ctx, "heart")
		if err != nil {
			t.Fatalf("GetModel: %v", err)
		}
		assertEqual(t, "model aliases", m.Aliases, map[string]int{"champion": 1})

		// Setting it again starts afresh.
		previous, err := s.SetAlias(ctx, "heart", pulse.AliasChallenger, 1)
		if err != nil {
			t.Fatalf("SetAlias: %v", err)
		}
		if previous != 0 {
			t.Errorf("SetAlias after DeleteAlias: got previous %d, want 0", previous)
		}
	}},
	{"NotFound", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 1)
		mustSetAlias(ctx, t, s, "heart", pulse.AliasChampion, 1)
		if err := s.DeleteAlias(ctx, "heart", pulse.AliasChampion); err != nil {
			t.Fatalf("DeleteAlias: %v", err)
		}
		for _, c := range []struct{ model, alias, mention string }{
			{"heart", pulse.AliasChampion, `"champion"`}, // already deleted
			{"heart", "never-set", `"never-set"`},
			{"ghost", pulse.AliasChampion, `"ghost"`},
		} {
			err := s.DeleteAlias(ctx, c.model, c.alias)
			what := fmt.Sprintf("DeleteAlias(%q, %q)", c.model, c.alias)
			assertCode(t, what, err, pulse.ENOTFOUND)
			assertMentions(t, what, err, c.mention)
		}
	}},
}

// newDataset returns a dataset with every field set except Version and CreatedAt.
func newDataset(id, name, sha string) *pulse.Dataset {
	return &pulse.Dataset{
		ID:     id,
		Name:   name,
		SHA256: sha,
		Rows:   303,
		Bytes:  18461,
		Format: pulse.CSVFormat{Header: true, Delimiter: ","},
		Schema: pulse.Schema{
			Columns: []pulse.Column{
				{Name: "age", Kind: pulse.Numeric},
				{Name: "sex", Kind: pulse.Binary, Categories: []string{"0", "1"}},
				{Name: "cp", Kind: pulse.Categorical, Categories: []string{"1", "2", "3", "4"}},
				{Name: "ca", Kind: pulse.Numeric, Missing: 4},
				{Name: "thal", Kind: pulse.Categorical, Categories: []string{"3", "6", "7"}, Missing: 2},
				{Name: "num", Kind: pulse.Categorical, Categories: []string{"0", "1", "2", "3", "4"}},
			},
			MissingMarkers: []string{"", "?", "NA"},
		},
		Location: "datasets/" + name + "/" + id + ".csv",
	}
}

// newVersion returns a model version with every field set except Version, CreatedAt and
// Aliases; its floats are ones that a lossy encoding would change.
func newVersion(model string) *pulse.ModelVersion {
	fold := func(logLoss float64) pulse.EvalMetrics {
		return pulse.EvalMetrics{
			N: 61, Positives: 28, Accuracy: 0.8360655737704918, ROCAUC: 0.9123, LogLoss: logLoss,
			Brier: 0.12345678901234568, Precision: 0.8, Recall: 6.0 / 7, F1: 2.0 / 3, Threshold: 0.5,
			Confusion: pulse.Confusion{TP: 24, FP: 6, TN: 27, FN: 4},
		}
	}
	return &pulse.ModelVersion{
		Model:     model,
		Algorithm: "logistic_regression",
		Features: []pulse.Column{
			{Name: "age", Kind: pulse.Numeric},
			{Name: "cp", Kind: pulse.Categorical, Categories: []string{"1", "2", "3", "4"}},
			{Name: "thal", Kind: pulse.Categorical, Categories: []string{"3", "6", "7"}, Missing: 2},
		},
		Target:         "num",
		Threshold:      0.35000000000000003,
		ArtifactKey:    "models/" + model + "/artifact.json",
		ArtifactSHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		ArtifactBytes:  1 << 40,
		Metrics: pulse.Metrics{
			Holdout: &pulse.EvalMetrics{
				N: 76, Positives: 35, Accuracy: 0.868421052631579, ROCAUC: 0.1 + 0.2, LogLoss: 1e-300,
				Brier: math.MaxFloat64, Precision: 1, Recall: 0, F1: 0, Threshold: 0.35000000000000003,
				Confusion: pulse.Confusion{TP: 30, FP: 5, TN: 36, FN: 5},
			},
			CV: &pulse.CVMetrics{
				Folds: 3, Accuracy: 0.83, ROCAUC: 0.9, LogLoss: 0.4, Brier: 0.13, Precision: 0.81,
				Recall: 0.79, F1: 0.8,
				SD:      pulse.CVSpread{Accuracy: 0.01, ROCAUC: 1e-17, LogLoss: 0.03, Brier: 0.004, Precision: 0.05, Recall: 0.06, F1: 0.07},
				PerFold: []pulse.EvalMetrics{fold(0.4), fold(123456.789), fold(math.SmallestNonzeroFloat64)},
			},
		},
		Lineage: pulse.Lineage{
			DatasetID:     "0f8fad5b-d9cb-469f-a165-70867728950e",
			DatasetName:   "heart",
			DatasetSHA256: "aaaa",
			Target:        "num",
			Algorithm:     "logistic_regression",
			Params: map[string]any{
				"l2":        0.001,
				"max_iter":  200.0,
				"balanced":  true,
				"solver":    "lbfgs",
				"drop":      nil,
				"classes":   []any{0.0, 1.0},
				"optimizer": map[string]any{"learning_rate": 1.0 / 3, "schedule": map[string]any{"decay": 0.1 + 0.7}},
			},
			Seed:         math.MaxUint64 - 1,
			Holdout:      0.25,
			CVFolds:      3,
			TrainingRows: 227,
			HoldoutRows:  76,
			PulseVersion: "0.1.0",
			GitCommit:    "6dbc8e8",
			Trigger:      "api",
			TrainedAt:    time.Date(2024, 2, 29, 11, 59, 58, 987654321, time.UTC),
			DurationMS:   12.345678,
			Search: &pulse.Search{
				Method: "grid", Metric: "roc_auc", Folds: 5, Best: map[string]any{"C": 0.1},
				Candidates: []pulse.SearchCandidate{{Params: map[string]any{"C": 0.1}, Mean: 0.91, SD: 0.02}, {Params: map[string]any{"C": 1.0}, Mean: 0.9, SD: 0.03}},
			},
		},
		Description: map[string]any{
			"converged":    true,
			"coefficients": []any{map[string]any{"feature": "age", "coef": 0.25, "coef_original_units": 0.0123}},
		},
	}
}

func mustCreateDataset(ctx context.Context, t *testing.T, s Store, d *pulse.Dataset) {
	t.Helper()
	if err := s.CreateDataset(ctx, d); err != nil {
		t.Fatalf("CreateDataset(%q): %v", d.ID, err)
	}
}

func mustCreateVersion(ctx context.Context, t *testing.T, s Store, v *pulse.ModelVersion) {
	t.Helper()
	if err := s.CreateVersion(ctx, v); err != nil {
		t.Fatalf("CreateVersion(%q): %v", v.Model, err)
	}
}

// createVersions creates n versions of model and returns them as created.
func createVersions(ctx context.Context, t *testing.T, s Store, model string, n int) []*pulse.ModelVersion {
	t.Helper()
	vs := make([]*pulse.ModelVersion, n)
	for i := range vs {
		vs[i] = newVersion(model)
		vs[i].ArtifactKey = fmt.Sprintf("models/%s/%d.json", model, i)
		mustCreateVersion(ctx, t, s, vs[i])
	}
	return vs
}

func mustSetAlias(ctx context.Context, t *testing.T, s Store, model, alias string, version int) {
	t.Helper()
	if _, err := s.SetAlias(ctx, model, alias, version); err != nil {
		t.Fatalf("SetAlias(%q, %q, %d): %v", model, alias, version, err)
	}
}

// assertAliases checks the aliases of each version of model, through both GetVersion and
// GetModel; want maps every version of the model to its aliases, sorted.
func assertAliases(ctx context.Context, t *testing.T, s Store, model string, want map[int][]string) {
	t.Helper()
	wantModel := map[string]int{}
	for version, aliases := range want {
		v, err := s.GetVersion(ctx, model, version)
		if err != nil {
			t.Fatalf("GetVersion(%q, %d): %v", model, version, err)
		}
		assertEqual(t, fmt.Sprintf("aliases of %s version %d", model, version), v.Aliases, aliases)
		for _, a := range aliases {
			wantModel[a] = version
		}
	}
	m, err := s.GetModel(ctx, model)
	if err != nil {
		t.Fatalf("GetModel(%q): %v", model, err)
	}
	assertEqual(t, fmt.Sprintf("aliases of model %s", model), m.Aliases, wantModel)
}

// assertEqual compares deeply and shows both sides as JSON.
func assertEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	g, _ := json.MarshalIndent(got, "", "  ")
	w, _ := json.MarshalIndent(want, "", "  ")
	if string(g) == string(w) {
		t.Errorf("%s: got %#v, want %#v", what, got, want)
		return
	}
	t.Errorf("%s:\ngot  %s\nwant %s", what, g, w)
}

// assertCode checks the pulse error code of err.
func assertCode(t *testing.T, what string, err error, want string) {
	t.Helper()
	if got := pulse.ErrorCode(err); got != want {
		t.Errorf("%s: got error %v (code %q), want code %q", what, err, got, want)
	}
}

// assertMentions checks that the message of err contains s.
func assertMentions(t *testing.T, what string, err error, s string) {
	t.Helper()
	if err != nil && !strings.Contains(pulse.ErrorMessage(err), s) {
		t.Errorf("%s: got message %q, want it to mention %s", what, pulse.ErrorMessage(err), s)
	}
}

// assertRecentUTC checks that a store-assigned time is in UTC, not before before and not
// after after.
func assertRecentUTC(t *testing.T, got, before, after time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Errorf("created_at %v: got location %v, want UTC", got, got.Location())
	}
	if got.Before(before) || got.After(after) {
		t.Errorf("created_at: got %v, want between %v and %v", got, before, after)
	}
}

// assertMicroseconds checks that a stored time is in UTC and equals in to at least the
// microsecond.
func assertMicroseconds(t *testing.T, got, in time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Errorf("created_at %v: got location %v, want UTC", got, got.Location())
	}
	if !got.Equal(in) && !got.Equal(in.Truncate(time.Microsecond)) {
		t.Errorf("created_at: got %v, want %v to at least the microsecond", got, in)
	}
}

// assertOneToN checks that versions are 1..n in some order.
func assertOneToN(t *testing.T, what string, versions []int, n int) {
	t.Helper()
	sorted := slices.Clone(versions)
	slices.Sort(sorted)
	if !slices.Equal(sorted, oneToN(n)) {
		t.Errorf("%s: got %v, want 1..%d with no gaps or repeats", what, sorted, n)
	}
}

func oneToN(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i + 1
	}
	return s
}
