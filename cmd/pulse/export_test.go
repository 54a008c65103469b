package main

import (
	"bytes"
	"context"
	"database/sql"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/cloudmedical/pulse/edge"
	"github.com/cloudmedical/pulse/internal/bundle"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/ml/mltest"
	"github.com/cloudmedical/pulse/internal/onnx"
)

// TestExportArtifactSQLite exports a logreg artifact as SQLite SQL with the CLI, runs it over
// a one-row table and compares the probability with Predict.
func TestExportArtifactSQLite(t *testing.T) {
	tab := mltest.Cleveland(t)
	res, err := ml.Train(context.Background(), tab, ml.Spec{Target: "num > 0", Algorithm: "logreg", CVFolds: ml.NoCV})
	if err != nil {
		t.Fatal(err)
	}
	art, err := ml.Encode(res.Model)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	artPath, outPath := filepath.Join(dir, "model.json"), filepath.Join(dir, "score.sql")
	if err := os.WriteFile(artPath, art, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err = run(context.Background(), []string{"export", "--format", "sql", "--dialect", "sqlite", "--artifact", artPath, "--table", "patients", "--out", outPath}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("export: %v\n%s", err, stderr.String())
	}
	view, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(view), `CREATE VIEW "patients_scored" AS`) {
		t.Fatalf("the export has no view patients_scored:\n%.400s", view)
	}

	db, err := sql.Open("sqlite", filepath.Join(dir, "score.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stmts := []string{
		`CREATE TABLE patients (age REAL, sex TEXT, cp TEXT, trestbps REAL, chol REAL, fbs TEXT, restecg TEXT, thalach REAL, exang TEXT, oldpeak REAL, slope TEXT, ca REAL, thal TEXT)`,
		`INSERT INTO patients VALUES (63, '1', '1', 145, 233, '1', '2', 150, '0', 2.3, '3', NULL, '6')`,
		string(view),
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%v\n%.300s", err, s)
		}
	}
	var got float64
	if err := db.QueryRow(`SELECT probability FROM patients_scored`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	m := res.Model
	vals := map[string]ml.Value{
		"age": {Num: 63, Present: true}, "sex": {Str: "1", Present: true}, "cp": {Str: "1", Present: true},
		"trestbps": {Num: 145, Present: true}, "chol": {Num: 233, Present: true}, "fbs": {Str: "1", Present: true},
		"restecg": {Str: "2", Present: true}, "thalach": {Num: 150, Present: true}, "exang": {Str: "0", Present: true},
		"oldpeak": {Num: 2.3, Present: true}, "slope": {Str: "3", Present: true}, "thal": {Str: "6", Present: true},
	}
	values := make([]ml.Value, len(m.Inputs()))
	for i, in := range m.Inputs() {
		values[i] = vals[in.Name] // ca is missing
	}
	want, _ := m.Predict(values, nil)
	if math.IsNaN(want) || math.Abs(got-want) > 1e-9 {
		t.Errorf("probability: got %v, want %v", got, want)
	}

	// Errors: an unknown format, no model.
	for _, args := range [][]string{
		{"export", "--format", "pmml", "--artifact", artPath, "--table", "t"},
		{"export", "--dialect", "sqlite", "--table", "t"},
		{"export", "--dialect", "oracle", "--artifact", artPath, "--table", "t"},
	} {
		if err := run(context.Background(), args, nil, &stdout, &stderr); err == nil {
			t.Errorf("%v: got no error", args)
		}
	}
}

// TestExportONNXAndBundleFromArtifact exports an artifact as ONNX and as a bundle signed with a
// local key, and checks what the CLI refuses.
func TestExportONNXAndBundleFromArtifact(t *testing.T) {
	tab := mltest.Cleveland(t)
	res, err := ml.Train(context.Background(), tab, ml.Spec{Target: "num > 0", Algorithm: "gbdt", CVFolds: ml.NoCV})
	if err != nil {
		t.Fatal(err)
	}
	art, err := ml.Encode(res.Model)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	artPath, keyPath := filepath.Join(dir, "model.json"), filepath.Join(dir, "keys", "signing.pem")
	if err := os.WriteFile(artPath, art, 0o600); err != nil {
		t.Fatal(err)
	}
	signer, _, err := bundle.LoadOrCreateSigner(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	export := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"export"}, args...), nil, &stdout, &stderr)
		return stdout.String(), err
	}

	// ONNX: the exporter's bytes, named after the model by default.
	t.Chdir(dir)
	if _, err := export("--format", "onnx", "--artifact", artPath, "--model", "heart", "--version", "3"); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "heart-v3.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := onnx.Export(res.Model, onnx.Meta{Model: "heart", Version: 3, PulseVersion: Version})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("heart-v3.onnx: got %d bytes, want onnx.Export's %d", len(got), len(want))
	}

	// A bundle signed with the local key opens with its public key.
	out, err := export("--format", "bundle", "--artifact", artPath, "--signing-key", keyPath, "--model", "heart", "--version", "3", "--out", "b.zip")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "wrote b.zip") || !strings.Contains(out, "signed by key "+signer.KeyID()) {
		t.Errorf("bundle: printed %q", out)
	}
	zb, err := os.ReadFile(filepath.Join(dir, "b.zip"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := edge.Open(zb, signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if man := m.Manifest(); man.Model != "heart" || man.Version != 3 || man.Algorithm != "gbdt" || man.PulseVersion != Version {
		t.Errorf("manifest: got %+v", man)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "bundle", "--artifact", artPath, "--model", "heart", "--version", "3"}, "--signing-key"},
		{[]string{"--format", "bundle", "--artifact", artPath, "--signing-key", keyPath, "--model", "heart"}, "--version"},
		{[]string{"--format", "bundle", "--model", "heart", "--signing-key", keyPath}, "the server signs"},
		{[]string{"--format", "onnx", "--artifact", artPath}, "--out"},
		{[]string{"--format", "onnx", "--model", "heart", "--version", "2", "--alias", "champion"}, "not both"},
		{[]string{"--format", "sql", "--artifact", artPath, "--table", "t", "--signing-key", keyPath}, "signs bundles"},
		{[]string{"--format", "bundle", "--artifact", artPath, "--signing-key", artPath, "--model", "heart", "--version", "3"}, "PRIVATE KEY"},
		{[]string{"--format", "pmml", "--artifact", artPath}, "want sql, onnx or bundle"},
	} {
		if _, err := export(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
