package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/registry/registrytest"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/blobstore"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/sqlite"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// cleveland is the shared UCI Heart Disease file (with a header line whose names have spaces).
var cleveland = filepath.Join("..", "..", "..", "shared", "datasets", "heart-disease", "processed.cleveland.data")

// heartOptions declare what inference cannot know about the Cleveland file.
var heartOptions = tabular.Options{
	Header: "true",
	Kinds: map[string]pulse.Kind{
		"sex": pulse.Binary, "fbs": pulse.Binary, "exang": pulse.Binary,
		"cp": pulse.Categorical, "restecg": pulse.Categorical, "slope": pulse.Categorical, "thal": pulse.Categorical,
	},
}

// env is a registry on real stores in a temp dir.
type env struct {
	db    *sqlite.DB
	blobs *blobstore.Store
	lake  *blobstore.Store
	svc   *registry.Service
	now   time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := registrytest.New(t)
	e := &env{db: st.DB, blobs: st.Blobs, lake: st.Lake, now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	e.svc = e.fresh(t)
	return e
}

// fresh returns a new Service on the same stores: nothing is cached in it.
func (e *env) fresh(t *testing.T) *registry.Service {
	t.Helper()
	svc, err := registry.New(context.Background(), registry.Config{
		Store: e.db, Blobs: e.blobs, Lake: e.lake,
		PulseVersion: "test", GitCommit: "abc123",
		Now: func() time.Time { return e.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func readCleveland(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(cleveland)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keys lists every object in a bucket.
func keys(t *testing.T, st *blobstore.Store) []string {
	t.Helper()
	var out []string
	it := st.Bucket.List(nil)
	for {
		obj, err := it.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, obj.Key)
	}
	return out
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func register(t *testing.T, svc *registry.Service, name string, data []byte) *pulse.Dataset {
	t.Helper()
	d, _, err := svc.RegisterDataset(context.Background(), registry.RegisterDatasetRequest{Name: name, Body: bytes.NewReader(data), Options: heartOptions})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return d
}

// train trains a version of model on dataset quickly (3-fold CV).
func train(t *testing.T, svc *registry.Service, model, dataset string, seed uint64) *pulse.ModelVersion {
	t.Helper()
	v, err := svc.Train(context.Background(), model, registry.TrainRequest{Dataset: dataset, Target: "num > 0", Seed: seed, CVFolds: 3})
	if err != nil {
		t.Fatalf("train %s: %v", model, err)
	}
	return v
}

func wantCode(t *testing.T, what string, err error, code string) *pulse.Error {
	t.Helper()
	var pe *pulse.Error
	if !errors.As(err, &pe) {
		t.Fatalf("%s: got error %v (%T), want a *pulse.Error with code %s", what, err, err, code)
	}
	if pe.Code != code {
		t.Fatalf("%s: got code %s (%v), want %s", what, pe.Code, err, code)
	}
	return pe
}

func TestRegisterDatasetIdempotent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	data := readCleveland(t)

	d1, created, err := e.svc.RegisterDataset(ctx, registry.RegisterDatasetRequest{Name: "heart", Body: bytes.NewReader(data), Options: heartOptions})
	if err != nil {
		t.Fatal(err)
	}
	if !created || d1.Version != 1 || d1.Rows != 303 || d1.SHA256 != sha(data) || d1.Bytes != int64(len(data)) {
		t.Fatalf("first registration: got created=%v version=%d rows=%d sha=%s bytes=%d, want true 1 303 %s %d",
			created, d1.Version, d1.Rows, d1.SHA256, d1.Bytes, sha(data), len(data))
	}
	if !d1.Format.Header || d1.Format.Delimiter != "," || !d1.CreatedAt.Equal(e.now) {
		t.Errorf("first registration: got format %+v created_at %v", d1.Format, d1.CreatedAt)
	}
	if i := d1.Schema.Index("cp"); i < 0 || d1.Schema.Columns[i].Kind != pulse.Categorical {
		t.Errorf("schema: cp is not categorical: %+v", d1.Schema.Columns)
	}

	d2, created, err := e.svc.RegisterDataset(ctx, registry.RegisterDatasetRequest{Name: "heart", Body: bytes.NewReader(data), Options: heartOptions})
	if err != nil {
		t.Fatal(err)
	}
	if created || d2.ID != d1.ID || d2.Version != 1 {
		t.Errorf("same bytes again: got created=%v id=%s version=%d, want false %s 1", created, d2.ID, d2.Version, d1.ID)
	}
	want := []string{"datasets/name=heart/sha256=" + sha(data) + "/data.csv"}
	if got := keys(t, e.lake); !slices.Equal(got, want) {
		t.Errorf("lake objects: got %q, want %q", got, want)
	}
	if d1.Location != want[0] {
		t.Errorf("location: got %q, want %q", d1.Location, want[0])
	}
	stored, err := e.lake.Bucket.ReadAll(ctx, want[0])
	if err != nil || !bytes.Equal(stored, data) {
		t.Errorf("stored file differs from the upload (err %v)", err)
	}
	all, err := e.svc.Datasets(ctx)
	if err != nil || len(all) != 1 {
		t.Errorf("datasets: got %d (err %v), want 1", len(all), err)
	}
	// The same bytes under another name are another dataset.
	d3 := register(t, e.svc, "heart-copy", data)
	if d3.ID == d1.ID || d3.Version != 1 {
		t.Errorf("same bytes under another name: got id %s version %d", d3.ID, d3.Version)
	}
}

func TestRegisterDatasetNewVersion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	data := readCleveland(t)
	lines := strings.SplitAfter(string(data), "\n")
	fewer := []byte(strings.Join(lines[:len(lines)-20], "")) // header and the first rows

	d1 := register(t, e.svc, "heart", data)
	d2, created, err := e.svc.RegisterDataset(ctx, registry.RegisterDatasetRequest{Name: "heart", Body: bytes.NewReader(fewer), Options: heartOptions})
	if err != nil {
		t.Fatal(err)
	}
	if !created || d2.Version != 2 || d2.ID == d1.ID || d2.SHA256 != sha(fewer) || d2.Rows != d1.Rows-19 {
		t.Errorf("new content: got created=%v version=%d rows=%d, want true 2 %d", created, d2.Version, d2.Rows, d1.Rows-19)
	}
	for ref, want := range map[string]string{"heart": d2.ID, "heart@1": d1.ID, "heart@2": d2.ID, d1.ID: d1.ID} {
		d, err := e.svc.Dataset(ctx, ref)
		if err != nil || d.ID != want {
			t.Errorf("Dataset(%q): got %v (err %v), want %s", ref, d, err, want)
		}
	}
	if got := keys(t, e.lake); len(got) != 2 {
		t.Errorf("lake objects: got %q, want two", got)
	}
	// The first content again is still version 1, not a third version.
	d, created, err := e.svc.RegisterDataset(ctx, registry.RegisterDatasetRequest{Name: "heart", Body: bytes.NewReader(data), Options: heartOptions})
	if err != nil || created || d.ID != d1.ID {
		t.Errorf("first content again: got created=%v id=%s (err %v), want false %s", created, d.ID, err, d1.ID)
	}
}

func TestRegisterDatasetConcurrentSameBytes(t *testing.T) {
	e := newEnv(t)
	data := readCleveland(t)
	const n = 6
	var wg sync.WaitGroup
	ids := make([]string, n)
	created := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, c, err := e.svc.RegisterDataset(context.Background(), registry.RegisterDatasetRequest{Name: "heart", Body: bytes.NewReader(data), Options: heartOptions})
			errs[i], created[i] = err, c
			if err == nil {
				ids[i] = d.ID
			}
		}()
	}
	wg.Wait()
	nCreated := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("registration %d: %v", i, errs[i])
		}
		if created[i] {
			nCreated++
		}
		if ids[i] != ids[0] {
			t.Errorf("registration %d: got id %s, want %s like the others", i, ids[i], ids[0])
		}
	}
	if nCreated != 1 {
		t.Errorf("concurrent registrations of the same bytes: %d created, want 1", nCreated)
	}
	all, err := e.svc.Datasets(context.Background())
	if err != nil || len(all) != 1 {
		t.Errorf("datasets after concurrent registrations: got %d (err %v), want 1", len(all), err)
	}
}

func TestRegisterDatasetRefused(t *testing.T) {
	data := string(readCleveland(t))
	badCell := strings.Replace(data, "\n67.0,1.0,4.0,160.0", "\n67.0,1.0,4.0,high", 1)
	if badCell == data {
		t.Fatal("test data: the second patient's row was not found")
	}
	lines := strings.SplitAfter(data, "\n")
	shortRow := strings.Join(lines[:3], "") + "1.0,2.0\n" + strings.Join(lines[3:], "")

	for _, tc := range []struct {
		name, dataset, body string
		opts                tabular.Options
		max                 int64
		code, field         string
		row                 int
	}{
		{name: "bad numeric cell", dataset: "broken", body: badCell, opts: tabular.Options{Header: "true", Kinds: map[string]pulse.Kind{"trestbps": pulse.Numeric}},
			code: pulse.EUNPROCESSABLE, field: "trestbps", row: 2},
		{name: "short row", dataset: "broken", body: shortRow, opts: heartOptions, code: pulse.EUNPROCESSABLE, row: 3},
		{name: "kind of an unknown column", dataset: "broken", body: data, opts: tabular.Options{Kinds: map[string]pulse.Kind{"colour": pulse.Numeric}},
			code: pulse.EUNPROCESSABLE, field: "colour"},
		{name: "header only", dataset: "broken", body: lines[0], opts: tabular.Options{Header: "true"}, code: pulse.EUNPROCESSABLE},
		{name: "bad name", dataset: "Heart Disease", body: data, opts: heartOptions, code: pulse.EINVALID, field: "name"},
		{name: "too large", dataset: "big", body: data, opts: heartOptions, max: 1000, code: pulse.ETOOLARGE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			svc := e.svc
			if tc.max > 0 {
				var err error
				svc, err = registry.New(context.Background(), registry.Config{Store: e.db, Blobs: e.blobs, Lake: e.lake, MaxDatasetBytes: tc.max})
				if err != nil {
					t.Fatal(err)
				}
			}
			d, _, err := svc.RegisterDataset(context.Background(), registry.RegisterDatasetRequest{Name: tc.dataset, Body: strings.NewReader(tc.body), Options: tc.opts})
			if d != nil {
				t.Errorf("got dataset %+v with the error", d)
			}
			pe := wantCode(t, "register", err, tc.code)
			if pe.Field != tc.field || pe.Row != tc.row {
				t.Errorf("got field %q row %d (%v), want field %q row %d", pe.Field, pe.Row, err, tc.field, tc.row)
			}
			if got := keys(t, e.lake); len(got) != 0 {
				t.Errorf("a refused dataset left objects in the lake: %q", got)
			}
			if all, err := svc.Datasets(context.Background()); err != nil || len(all) != 0 {
				t.Errorf("a refused dataset was recorded: %d datasets (err %v)", len(all), err)
			}
		})
	}
}

func TestTrainChampionAndLineage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	d := register(t, e.svc, "heart", readCleveland(t))

	v1 := train(t, e.svc, "hd", "heart", 7)
	if v1.Version != 1 || !slices.Equal(v1.Aliases, []string{pulse.AliasChampion}) {
		t.Fatalf("version 1: got version %d aliases %q, want 1 [champion]", v1.Version, v1.Aliases)
	}
	if v, ok := e.svc.Resolve("hd", pulse.AliasChampion); !ok || v != 1 {
		t.Errorf("Resolve champion after v1: got %d %v, want 1 true", v, ok)
	}
	lin := v1.Lineage
	if lin.DatasetID != d.ID || lin.DatasetName != "heart" || lin.DatasetSHA256 != d.SHA256 || lin.Seed != 7 ||
		lin.Trigger != "api" || lin.PulseVersion != "test" || lin.GitCommit != "abc123" || lin.Target != "num > 0" ||
		lin.CVFolds != 3 || lin.Holdout != ml.DefaultHoldout || lin.TrainingRows+lin.HoldoutRows != 303 || !lin.TrainedAt.Equal(e.now) {
		t.Errorf("lineage: got %+v", lin)
	}
	if v1.Metrics.Holdout == nil || v1.Metrics.CV == nil || v1.Metrics.CV.Folds != 3 {
		t.Errorf("metrics: got %+v, want holdout and 3-fold CV", v1.Metrics)
	}
	if v1.ArtifactKey != "models/hd/sha256-"+v1.ArtifactSHA256+".json" {
		t.Errorf("artifact key: got %q", v1.ArtifactKey)
	}
	art, err := e.blobs.Bucket.ReadAll(ctx, v1.ArtifactKey)
	if err != nil || sha(art) != v1.ArtifactSHA256 || int64(len(art)) != v1.ArtifactBytes {
		t.Errorf("stored artifact: sha %s len %d (err %v), want %s %d", sha(art), len(art), err, v1.ArtifactSHA256, v1.ArtifactBytes)
	}

	v2, err := e.svc.Train(ctx, "hd", registry.TrainRequest{Dataset: d.ID, Target: "num > 0", Seed: 3, CVFolds: -1, Params: map[string]any{"C": 0.1}, Trigger: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 || len(v2.Aliases) != 0 || v2.Lineage.Trigger != "cli" || v2.Metrics.CV != nil {
		t.Errorf("version 2: got version %d aliases %q trigger %q cv %v, want 2 [] cli nil", v2.Version, v2.Aliases, v2.Lineage.Trigger, v2.Metrics.CV)
	}
	if v, ok := e.svc.Resolve("hd", pulse.AliasChampion); !ok || v != 1 {
		t.Errorf("Resolve champion after v2: got %d %v, want still 1", v, ok)
	}
	m, err := e.svc.Model(ctx, "hd")
	if err != nil || m.LatestVersion != 2 || len(m.Aliases) != 1 || m.Aliases[pulse.AliasChampion] != 1 {
		t.Errorf("model: got %+v (err %v), want latest 2 and only champion -> 1", m, err)
	}
	// Holdout 0 means none.
	zero := 0.0
	v3, err := e.svc.Train(ctx, "hd", registry.TrainRequest{Dataset: "heart", Target: "num > 0", Holdout: &zero, CVFolds: -1})
	if err != nil {
		t.Fatal(err)
	}
	if v3.Metrics.Holdout != nil || v3.Lineage.HoldoutRows != 0 || v3.Lineage.TrainingRows != 303 {
		t.Errorf("holdout 0: got holdout metrics %v, %d training rows", v3.Metrics.Holdout, v3.Lineage.TrainingRows)
	}
}

func TestTrainRefused(t *testing.T) {
	e := newEnv(t)
	register(t, e.svc, "heart", readCleveland(t))
	for _, tc := range []struct {
		model       string
		req         registry.TrainRequest
		code, field string
	}{
		{"Bad Name", registry.TrainRequest{Dataset: "heart", Target: "num > 0"}, pulse.EINVALID, "model"},
		{"hd", registry.TrainRequest{Target: "num > 0"}, pulse.EUNPROCESSABLE, "dataset"},
		{"hd", registry.TrainRequest{Dataset: "nope", Target: "num > 0"}, pulse.EUNPROCESSABLE, "dataset"},
		{"hd", registry.TrainRequest{Dataset: "heart"}, pulse.EUNPROCESSABLE, "target"},
		{"hd", registry.TrainRequest{Dataset: "heart", Target: "colour > 0"}, pulse.EUNPROCESSABLE, "target"},
		{"hd", registry.TrainRequest{Dataset: "heart", Target: "num > 0", Algorithm: "magic"}, pulse.EUNPROCESSABLE, "algorithm"},
		{"hd", registry.TrainRequest{Dataset: "heart", Target: "num > 0", Params: map[string]any{"C": "big"}}, pulse.EUNPROCESSABLE, "params.C"},
	} {
		v, err := e.svc.Train(context.Background(), tc.model, tc.req)
		if v != nil {
			t.Errorf("%s %+v: got a version with the error", tc.model, tc.req)
		}
		pe := wantCode(t, tc.field, err, tc.code)
		if pe.Field != tc.field {
			t.Errorf("%s %+v: got field %q (%v), want %q", tc.model, tc.req, pe.Field, err, tc.field)
		}
	}
	if got := keys(t, e.blobs); len(got) != 0 {
		t.Errorf("refused trainings left artifacts: %q", got)
	}
	if ms, err := e.svc.Models(context.Background()); err != nil || len(ms) != 0 {
		t.Errorf("refused trainings created models: %d (err %v)", len(ms), err)
	}
}

func TestTrainDeterministic(t *testing.T) {
	e := newEnv(t)
	register(t, e.svc, "heart", readCleveland(t))
	a := train(t, e.svc, "a", "heart", 11)
	b := train(t, e.svc, "b", "heart", 11)
	if a.ArtifactSHA256 != b.ArtifactSHA256 || a.ArtifactBytes != b.ArtifactBytes {
		t.Errorf("same seed and data: got artifacts %s (%d bytes) and %s (%d bytes), want identical",
			a.ArtifactSHA256, a.ArtifactBytes, b.ArtifactSHA256, b.ArtifactBytes)
	}
	// And in another registry on other stores.
	c := train(t, newEnvWith(t, "heart"), "a", "heart", 11)
	if c.ArtifactSHA256 != a.ArtifactSHA256 {
		t.Errorf("same seed and data in another registry: got %s, want %s", c.ArtifactSHA256, a.ArtifactSHA256)
	}
	d := train(t, e.svc, "a", "heart", 12)
	if d.ArtifactSHA256 == a.ArtifactSHA256 {
		t.Errorf("another seed gave the same artifact %s", d.ArtifactSHA256)
	}
}

// newEnvWith returns the Service of a new env with the Cleveland file registered as name.
func newEnvWith(t *testing.T, name string) *registry.Service {
	e := newEnv(t)
	register(t, e.svc, name, readCleveland(t))
	return e.svc
}

func TestLoadFreshServiceMatchesTrained(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	register(t, e.svc, "heart", readCleveland(t))
	v := train(t, e.svc, "hd", "heart", 7)
	trained, err := e.svc.Load(ctx, "hd", 1)
	if err != nil {
		t.Fatal(err)
	}
	l, err := e.fresh(t).Load(ctx, "hd", 1)
	if err != nil {
		t.Fatal(err)
	}
	if l.Version.ArtifactSHA256 != v.ArtifactSHA256 || l.Version.Version != 1 || !slices.Equal(l.Version.Aliases, []string{pulse.AliasChampion}) {
		t.Errorf("loaded version: got %+v", l.Version)
	}
	// The decoded artifact scores exactly like the model that training produced (the first
	// Cleveland patient).
	patient := map[string]float64{"age": 63, "sex": 1, "cp": 1, "trestbps": 145, "chol": 233, "fbs": 1,
		"restecg": 2, "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": 0, "thal": 6}
	values := make([]ml.Value, len(l.Model.Inputs()))
	for i, c := range l.Model.Inputs() {
		f, ok := patient[c.Name]
		if !ok {
			t.Fatalf("unexpected input %q", c.Name)
		}
		values[i] = ml.Value{Num: f, Str: pulse.CanonicalCategory(strconv.FormatFloat(f, 'g', -1, 64)), Present: true}
	}
	p1, _ := trained.Model.Predict(values, nil)
	p2, _ := l.Model.Predict(values, nil)
	if p1 != p2 || !(p1 > 0 && p1 < 1) {
		t.Errorf("probability: trained model %v, loaded artifact %v, want equal and in (0,1)", p1, p2)
	}
}

func TestLoadVerifiesArtifact(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, e *env, key string, art []byte)
		want   string // in the error message
	}{
		{"tampered", func(t *testing.T, e *env, key string, art []byte) {
			// Change one digit of a number: still valid JSON of the right shape, so only the
			// SHA-256 can tell.
			bad := bytes.Clone(art)
			i := bytes.Index(bad, []byte(`"coef":[`)) + len(`"coef":[`)
			for bad[i] < '1' || bad[i] > '8' {
				i++
			}
			bad[i]++
			write(t, e, key, bad)
		}, "sha256"},
		{"truncated", func(t *testing.T, e *env, key string, art []byte) {
			write(t, e, key, art[:len(art)/2])
		}, "sha256"},
		{"empty", func(t *testing.T, e *env, key string, art []byte) {
			write(t, e, key, nil)
		}, "sha256"},
		{"missing", func(t *testing.T, e *env, key string, art []byte) {
			if err := e.blobs.Bucket.Delete(context.Background(), key); err != nil {
				t.Fatal(err)
			}
		}, "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			register(t, e.svc, "heart", readCleveland(t))
			v1 := train(t, e.svc, "hd", "heart", 7)
			v2 := train(t, e.svc, "hd", "heart", 8)
			art, err := e.blobs.Bucket.ReadAll(ctx, v2.ArtifactKey)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, e, v2.ArtifactKey, art)

			svc := e.fresh(t)
			l, err := svc.Load(ctx, "hd", 2)
			if l != nil {
				t.Fatalf("Load of a damaged artifact returned a model: %+v", l.Version)
			}
			wantCode(t, "Load", err, pulse.EINTERNAL)
			if msg := err.Error(); !strings.Contains(msg, tc.want) || !strings.Contains(msg, "version 2") {
				t.Errorf("Load error: got %q, want it to name version 2 and say %q", msg, tc.want)
			}
			// A second attempt fails the same way: a failure is not cached as a model.
			if l, err := svc.Load(ctx, "hd", 2); l != nil || err == nil {
				t.Errorf("second Load: got %v, %v, want an error again", l, err)
			}
			// The alias does not move to a version that cannot load.
			if _, err := svc.SetAlias(ctx, "hd", pulse.AliasChampion, 2); err == nil {
				t.Error("SetAlias to a damaged version: got no error")
			}
			if v, ok := svc.Resolve("hd", pulse.AliasChampion); !ok || v != 1 {
				t.Errorf("champion after the refused move: got %d %v, want 1", v, ok)
			}
			if m, err := e.db.GetModel(ctx, "hd"); err != nil || m.Aliases[pulse.AliasChampion] != 1 {
				t.Errorf("stored champion after the refused move: got %v (err %v), want 1", m, err)
			}
			// The intact version still loads.
			if l, err := svc.Load(ctx, "hd", 1); err != nil || l.Version.ArtifactSHA256 != v1.ArtifactSHA256 {
				t.Errorf("Load of the intact version 1: got %v, %v", l, err)
			}
			// Restoring the artifact makes it loadable again.
			write(t, e, v2.ArtifactKey, art)
			if l, err := svc.Load(ctx, "hd", 2); err != nil || l.Version.Version != 2 {
				t.Errorf("Load after the artifact was restored: got %v, %v", l, err)
			}
		})
	}
}

func write(t *testing.T, e *env, key string, data []byte) {
	t.Helper()
	if err := e.blobs.Bucket.WriteAll(context.Background(), key, data, nil); err != nil {
		t.Fatal(err)
	}
}

func TestLoadUnknown(t *testing.T) {
	e := newEnv(t)
	register(t, e.svc, "heart", readCleveland(t))
	train(t, e.svc, "hd", "heart", 7)
	for _, tc := range []struct {
		model   string
		version int
	}{{"hd", 2}, {"hd", 0}, {"nope", 1}} {
		l, err := e.fresh(t).Load(context.Background(), tc.model, tc.version)
		if l != nil {
			t.Errorf("Load(%s, %d): got a model", tc.model, tc.version)
		}
		wantCode(t, "Load", err, pulse.ENOTFOUND)
	}
}

func TestDatasetTamperedInLake(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	data := readCleveland(t)
	d := register(t, e.svc, "heart", data)
	bad := bytes.Replace(data, []byte("63.0,1.0,1.0,145.0"), []byte("64.0,1.0,1.0,145.0"), 1)
	if err := e.lake.Bucket.WriteAll(ctx, d.Location, bad, nil); err != nil {
		t.Fatal(err)
	}
	v, err := e.svc.Train(ctx, "hd", registry.TrainRequest{Dataset: "heart", Target: "num > 0"})
	if v != nil {
		t.Fatal("trained on a dataset whose stored file changed")
	}
	wantCode(t, "Train", err, pulse.EINTERNAL)
	if !strings.Contains(err.Error(), "SHA-256") {
		t.Errorf("Train error: got %q, want it to say the file does not match its SHA-256", err)
	}
}

func TestLoadTableRoundTrip(t *testing.T) {
	e := newEnv(t)
	data := "a;b;c\n1;x;0\n2;y;1\n?;z;1\n4;x;\n"
	d, _, err := e.svc.RegisterDataset(context.Background(), registry.RegisterDatasetRequest{Name: "semi", Body: strings.NewReader(data), Options: tabular.Options{Delimiter: ';', Header: "true"}})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := e.svc.LoadTable(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if tbl.Rows != 4 || tbl.Format != d.Format || len(tbl.Schema.Columns) != 3 {
		t.Fatalf("table: got %d rows format %+v, want 4 rows format %+v", tbl.Rows, tbl.Format, d.Format)
	}
	for i, c := range tbl.Schema.Columns {
		w := d.Schema.Columns[i]
		if c.Name != w.Name || c.Kind != w.Kind || c.Missing != w.Missing || !slices.Equal(c.Categories, w.Categories) {
			t.Errorf("column %d: got %+v, want %+v as registered", i, c, w)
		}
	}
}

func TestAliases(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	register(t, e.svc, "heart", readCleveland(t))
	train(t, e.svc, "hd", "heart", 7)
	train(t, e.svc, "hd", "heart", 8)
	svc := e.svc

	prev, err := svc.SetAlias(ctx, "hd", pulse.AliasChallenger, 2)
	if err != nil || prev != 0 {
		t.Fatalf("SetAlias challenger: got previous %d (err %v), want 0", prev, err)
	}
	if v, ok := svc.Resolve("hd", pulse.AliasChallenger); !ok || v != 2 {
		t.Errorf("Resolve challenger: got %d %v, want 2", v, ok)
	}

	// An alias to a missing version is refused and nothing changes.
	_, err = svc.SetAlias(ctx, "hd", pulse.AliasChampion, 9)
	wantCode(t, "SetAlias to version 9", err, pulse.ENOTFOUND)
	_, err = svc.SetAlias(ctx, "nope", pulse.AliasChampion, 1)
	wantCode(t, "SetAlias of an unknown model", err, pulse.ENOTFOUND)
	pe := func() *pulse.Error {
		_, err := svc.SetAlias(ctx, "hd", "Not An Alias", 1)
		return wantCode(t, "SetAlias with a bad alias name", err, pulse.EINVALID)
	}()
	if pe.Field != "alias" {
		t.Errorf("bad alias name: got field %q, want alias", pe.Field)
	}
	if v, ok := svc.Resolve("hd", pulse.AliasChampion); !ok || v != 1 {
		t.Errorf("champion after refused moves: got %d %v, want 1", v, ok)
	}
	if m, err := svc.Model(ctx, "hd"); err != nil || len(m.Aliases) != 2 || m.Aliases[pulse.AliasChampion] != 1 || m.Aliases[pulse.AliasChallenger] != 2 {
		t.Errorf("stored aliases after refused moves: got %v (err %v)", m, err)
	}

	prev, err = svc.SetAlias(ctx, "hd", pulse.AliasChampion, 2)
	if err != nil || prev != 1 {
		t.Fatalf("move champion: got previous %d (err %v), want 1", prev, err)
	}
	if v, _ := svc.Resolve("hd", pulse.AliasChampion); v != 2 {
		t.Errorf("Resolve champion after the move: got %d, want 2", v)
	}
	if err := svc.DeleteAlias(ctx, "hd", pulse.AliasChallenger); err != nil {
		t.Fatal(err)
	}
	if v, ok := svc.Resolve("hd", pulse.AliasChallenger); ok {
		t.Errorf("Resolve of a deleted alias: got %d true", v)
	}
	wantCode(t, "DeleteAlias again", svc.DeleteAlias(ctx, "hd", pulse.AliasChallenger), pulse.ENOTFOUND)
	wantCode(t, "DeleteAlias of an unknown model", svc.DeleteAlias(ctx, "nope", pulse.AliasChampion), pulse.ENOTFOUND)
	if _, ok := svc.Resolve("nope", pulse.AliasChampion); ok {
		t.Error("Resolve of an unknown model: got true")
	}
	// A custom alias.
	if _, err := svc.SetAlias(ctx, "hd", "canary-eu", 1); err != nil {
		t.Fatal(err)
	}

	// A new Service reads the aliases from the store.
	again := e.fresh(t)
	for alias, want := range map[string]int{pulse.AliasChampion: 2, "canary-eu": 1, pulse.AliasChallenger: 0} {
		v, ok := again.Resolve("hd", alias)
		if v != want || ok != (want != 0) {
			t.Errorf("new Service: Resolve(%s) got %d %v, want %d", alias, v, ok, want)
		}
	}
	vs, err := again.Versions(ctx, "hd")
	if err != nil || len(vs) != 2 || !slices.Equal(vs[0].Aliases, []string{"canary-eu"}) || !slices.Equal(vs[1].Aliases, []string{pulse.AliasChampion}) {
		t.Errorf("versions with aliases: got %v (err %v)", vs, err)
	}
}

func TestArtifact(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	register(t, e.svc, "heart", readCleveland(t))
	v := train(t, e.svc, "hd", "heart", 7)
	data, mv, err := e.svc.Artifact(ctx, "hd", 1)
	if err != nil || sha(data) != v.ArtifactSHA256 || mv.ArtifactKey != v.ArtifactKey {
		t.Errorf("Artifact: got sha %s (err %v), want %s", sha(data), err, v.ArtifactSHA256)
	}
	if _, err := ml.Decode(data, v.ArtifactSHA256); err != nil {
		t.Errorf("the artifact does not decode: %v", err)
	}
	_, _, err = e.svc.Artifact(ctx, "hd", 5)
	wantCode(t, "Artifact of version 5", err, pulse.ENOTFOUND)
}

func TestNewRequiresStores(t *testing.T) {
	if _, err := registry.New(context.Background(), registry.Config{}); err == nil {
		t.Error("New without stores: got no error")
	}
}

// TestAliasesAcrossProcesses: a second Service on the same stores stands for another process
// (a worker, another server). What it trains and moves is seen by the first one on the next
// Model lookup (which serving does when an alias is unknown) and on RefreshAliases.
func TestAliasesAcrossProcesses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	register(t, e.svc, "heart", readCleveland(t))
	other := e.fresh(t)
	train(t, other, "hd", "heart", 7) // version 1, champion, registered by the other process
	if _, ok := e.svc.Resolve("hd", pulse.AliasChampion); ok {
		t.Fatal("the first process knows the other's champion without asking the store")
	}
	m, err := e.svc.Model(ctx, "hd")
	if err != nil || m.Aliases[pulse.AliasChampion] != 1 {
		t.Fatalf("Model: got %v %v", m, err)
	}
	if v, ok := e.svc.Resolve("hd", pulse.AliasChampion); !ok || v != 1 {
		t.Errorf("Resolve after Model: got %d %v, want 1", v, ok)
	}
	train(t, other, "hd", "heart", 8)
	if _, err := other.SetAlias(ctx, "hd", pulse.AliasChampion, 2); err != nil {
		t.Fatal(err)
	}
	if v, _ := e.svc.Resolve("hd", pulse.AliasChampion); v != 1 {
		t.Errorf("before refresh: got %d, want the stale 1", v)
	}
	if err := e.svc.RefreshAliases(ctx); err != nil {
		t.Fatal(err)
	}
	if v, _ := e.svc.Resolve("hd", pulse.AliasChampion); v != 2 {
		t.Errorf("after RefreshAliases: got %d, want 2", v)
	}
}

// TestTrainIdempotentPerJob: a retried job finds the version its earlier attempt registered.
func TestTrainIdempotentPerJob(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	register(t, e.svc, "heart", readCleveland(t))
	req := registry.TrainRequest{Dataset: "heart", Target: "num > 0", Seed: 1, CVFolds: 3, JobID: 42}
	v1, err := e.svc.Train(ctx, "hd", req)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Lineage.JobID != 42 {
		t.Errorf("lineage job id: got %d, want 42", v1.Lineage.JobID)
	}
	again, err := e.svc.Train(ctx, "hd", req)
	if err != nil || again.Version != v1.Version || again.ArtifactSHA256 != v1.ArtifactSHA256 {
		t.Fatalf("retried job: got version %v (err %v), want the same version %d", again, err, v1.Version)
	}
	req.JobID = 43
	v2, err := e.svc.Train(ctx, "hd", req)
	if err != nil || v2.Version != 2 {
		t.Fatalf("another job: got %v %v, want version 2", v2, err)
	}
	vs, _ := e.svc.Versions(ctx, "hd")
	if len(vs) != 2 {
		t.Errorf("versions: got %d, want 2", len(vs))
	}
}

// TestCompareOnHoldout evaluates two versions on the second one's holdout: the challenger's
// numbers are its own holdout metrics, the champion's are computed on the same rows.
func TestCompareOnHoldout(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	register(t, e.svc, "heart", readCleveland(t))
	train(t, e.svc, "hd", "heart", 7)
	v2 := train(t, e.svc, "hd", "heart", 8)
	c, err := e.svc.CompareOnHoldout(ctx, "hd", 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	h := v2.Metrics.Holdout
	if c.Rows != h.N || c.Challenger.Confusion != h.Confusion || math.Abs(c.Challenger.ROCAUC-h.ROCAUC) > 1e-12 {
		t.Errorf("challenger on its own holdout: got %+v (rows %d), want %+v", c.Challenger, c.Rows, h)
	}
	if c.Champion.N != h.N || c.Champion.ROCAUC <= 0.5 {
		t.Errorf("champion on the same rows: got %+v", c.Champion)
	}
	if _, err := e.svc.CompareOnHoldout(ctx, "hd", 1, 9); pulse.ErrorCode(err) != pulse.ENOTFOUND {
		t.Errorf("missing challenger: got %v", err)
	}
}

// TestTrainIngestWindow trains on the dataset plus the labelled records ingested within the
// window: each event once, none older than the window, none without a label.
func TestTrainIngestWindow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	register(t, e.svc, "heart", readCleveland(t))
	lk, err := lake.Open(ctx, lake.Config{WALDir: t.TempDir(), Store: e.lake})
	if err != nil {
		t.Fatal(err)
	}
	now := e.now // the registry's clock in these tests
	var recs []lake.IngestRecord
	for i := range 50 {
		r := lake.IngestRecord{
			EventID: fmt.Sprintf("e-%d", i), Dataset: "heart", ReceivedAt: now.Add(-time.Duration(i) * time.Hour), Source: "test",
			Record: []byte(fmt.Sprintf(`{"age":%d,"sex":%d,"cp":%d,"thalach":%d,"oldpeak":"1.5","colour":"red"}`, 40+i%30, i%2, 1+i%4, 120+i)),
			Label:  []byte(strconv.Itoa(i % 3)), Partition: -1, Offset: -1,
		}
		switch {
		case i >= 45:
			r.ReceivedAt = now.Add(-72 * time.Hour) // outside a 2-day window
		case i >= 40:
			r.Label = nil // no outcome yet
		}
		recs = append(recs, r)
	}
	recs = append(recs, recs[3]) // delivered twice
	// Labels that cannot be the target's outcome, and a record that is not an object: not used.
	for i, bad := range [][2]string{{`{"age":50}`, `"yes"`}, {`{"age":51}`, `true`}, {`[1,2]`, `1`}} {
		recs = append(recs, lake.IngestRecord{EventID: fmt.Sprintf("bad-%d", i), Dataset: "heart", ReceivedAt: now, Source: "test",
			Record: []byte(bad[0]), Label: []byte(bad[1]), Partition: -1, Offset: -1})
	}
	if err := lk.AppendIngest(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	if err := lk.Close(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := e.svc.Train(ctx, "hd", registry.TrainRequest{Dataset: "heart", Target: "num > 0", Seed: 1, CVFolds: 3, IngestWindow: "2d"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Lineage.IngestedRows != 40 || v.Lineage.TrainingRows+v.Lineage.HoldoutRows != 303+40 || v.Lineage.IngestSince == nil {
		t.Errorf("ingest window: got %d ingested, %d rows in all (since %v); want 40 and 343",
			v.Lineage.IngestedRows, v.Lineage.TrainingRows+v.Lineage.HoldoutRows, v.Lineage.IngestSince)
	}
	_, err = e.svc.Train(ctx, "hd", registry.TrainRequest{Dataset: "heart", Target: "num > 0", IngestWindow: "soon"})
	if pe := wantCode(t, "bad window", err, pulse.EUNPROCESSABLE); pe.Field != "ingest_window" {
		t.Errorf("bad window: got field %q", pe.Field)
	}
}

// TestLoadedVersionsBounded: with room for two loaded versions, a third drops the least
// recently used one, which is read from the artifact store again when next used (so a
// missing artifact then fails it), while the kept ones are served from memory.
func TestLoadedVersionsBounded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	register(t, e.svc, "heart", readCleveland(t))
	var versions []*pulse.ModelVersion
	for seed := range 3 {
		versions = append(versions, train(t, e.svc, "hd", "heart", uint64(seed+1)))
	}
	svc, err := registry.New(ctx, registry.Config{Store: e.db, Blobs: e.blobs, Lake: e.lake, MaxLoadedVersions: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []int{1, 2, 1, 3} { // 2 is then the least recently used
		if _, err := svc.Load(ctx, "hd", v); err != nil {
			t.Fatalf("load version %d: %v", v, err)
		}
	}
	for _, v := range versions {
		if err := e.blobs.Bucket.Delete(ctx, v.ArtifactKey); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []int{1, 3} {
		if l, err := svc.Load(ctx, "hd", v); err != nil || l.Version.Version != v {
			t.Errorf("version %d, kept: got %v, %v", v, l, err)
		}
	}
	_, err = svc.Load(ctx, "hd", 2)
	wantCode(t, "load of the dropped version 2 without its artifact", err, pulse.EINTERNAL)
}
