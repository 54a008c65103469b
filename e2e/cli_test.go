package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runPulse runs the pulse binary with args and returns its combined output.
func runPulse(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(pulseBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCLI drives a server with the command line, as a data scientist would from a terminal.
func TestCLI(t *testing.T) {
	cwd, _ := os.Getwd()
	s := startServer(t, t.TempDir(), cwd)
	t.Setenv("PULSE_SERVER", s.base)
	data := filepath.Join(sharedData, "processed.cleveland.data")

	run := func(args ...string) string {
		t.Helper()
		out, err := runPulse(t, cwd, args...)
		if err != nil {
			t.Fatalf("pulse %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	out := run("datasets", "add", data, "--name", "cleveland", "--kinds", "cp:categorical,restecg:categorical,slope:categorical,thal:categorical")
	mustContain(t, out, "dataset cleveland version 1")
	mustContain(t, out, "303 rows")
	mustContain(t, out, "cp        categorical")
	out = run("datasets", "list")
	mustContain(t, out, "cleveland")

	out = run("train", "--model", "heart", "--dataset", "cleveland", "--target", "num > 0", "--seed", "7")
	mustContain(t, out, "model heart version 1 (logreg), aliases [champion]")
	mustContain(t, out, "10-fold CV")
	mustContain(t, out, "by cli")
	out = run("train", "--model", "heart", "--dataset", "cleveland", "--target", "num > 0", "--param", "C=0.05", "--json")
	if !strings.Contains(out, `"version": 2`) || !strings.Contains(out, `"C": 0.05`) {
		t.Errorf("train --json: got %s", out)
	}
	out = run("models", "list")
	mustContain(t, out, "heart")
	mustContain(t, out, "champion=1")
	out = run("alias", "heart", "champion", "2")
	mustContain(t, out, "heart champion: version 1 -> 2")
	out = run("models", "show", "heart")
	mustContain(t, out, "aliases champion=2")
	out = run("models", "show", "heart", "--version", "2")
	mustContain(t, out, "model heart version 2 (logreg), aliases [champion]")

	cmd := exec.Command(pulseBin, "predict", "heart")
	cmd.Stdin = strings.NewReader(patientJSON)
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), `"version":2`) {
		t.Errorf("predict: %v %s", err, b)
	}

	// Errors reach the user with the server's explanation and a non-zero exit.
	out, err = runPulse(t, cwd, "train", "--model", "heart", "--dataset", "nope", "--target", "num > 0")
	if err == nil {
		t.Fatalf("train on a missing dataset: got success")
	}
	mustContain(t, out, `422 Unprocessable Entity: dataset "nope" not found`)
	out, err = runPulse(t, cwd, "alias", "heart", "champion", "9")
	if err == nil {
		t.Fatalf("alias to a missing version: got success")
	}
	mustContain(t, out, "404")
	if out, err := runPulse(t, cwd, "frobnicate"); err == nil || !strings.Contains(out, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: got %v %s", err, out)
	}
}
