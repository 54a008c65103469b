package ml

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestScoreNotFused: on arm64 (and ppc64le, s390x, riscv64) the compiler may fuse x*y + z into
// one instruction that rounds once. A logistic regression's score must round each product, as
// ml.Linear's terms do, so that the batch scorer and Predict agree bit for bit on every
// platform. The test compiles the package for arm64 and looks for fused instructions in
// (*Model).score.
func TestScoreNotFused(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is required: %v", err)
	}
	cmd := exec.Command(goBin, "build", "-gcflags=-S", "-o", os.DevNull, ".")
	cmd.Env = append(os.Environ(), "GOARCH=arm64", "GOOS=linux", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build for arm64: %v\n%s", err, out)
	}
	var fn []string
	in := false
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, " STEXT") {
			in = strings.Contains(line, "internal/ml.(*Model).score STEXT")
		}
		if in {
			fn = append(fn, line)
		}
	}
	if len(fn) < 10 {
		t.Fatalf("found %d lines of (*Model).score in the assembly: the check would not catch anything", len(fn))
	}
	fused := regexp.MustCompile(`\tF(N?)M(ADD|SUB)D\t`)
	for _, line := range fn {
		if fused.MatchString(line) {
			t.Errorf("(*Model).score fuses a multiply and an add on arm64: %s", strings.TrimSpace(line))
		}
	}
}
