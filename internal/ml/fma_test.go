package ml

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestScoreNotFused: on arm64 (and ppc64le, s390x, riscv64) the compiler may fuse x*y + z into
// one instruction that rounds once. A logistic regression's score must round each product, as
// ml.Linear's terms do, so that the batch scorer and Predict agree bit for bit on every
// platform. The test compiles the package for arm64 and looks for fused instructions made from
// the lines of (*Model).score, wherever they end up (in score, or inlined elsewhere).
func TestScoreNotFused(t *testing.T) {
	first, last := funcLines(t, "model.go", "score")
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
	at := regexp.MustCompile(`\(\S*/internal/ml/model\.go:(\d+)\)\t(\S+)`)
	fused := regexp.MustCompile(`^F(N?)M(ADD|SUB)D$`)
	instructions := 0
	for line := range strings.Lines(string(out)) {
		m := at.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n < first || n > last {
			continue
		}
		instructions++
		if fused.MatchString(m[2]) {
			t.Errorf("(*Model).score fuses a multiply and an add on arm64: %s", strings.TrimSpace(line))
		}
	}
	if instructions < 20 {
		t.Fatalf("found %d instructions from model.go:%d-%d (score): the check would not catch anything", instructions, first, last)
	}
}

// funcLines returns the first and last lines of the method name in file.
func funcLines(t *testing.T, file, name string) (first, last int) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Name.Name == name && fn.Recv != nil {
			return fset.Position(fn.Pos()).Line, fset.Position(fn.End()).Line
		}
	}
	t.Fatalf("no method %s in %s", name, file)
	return 0, 0
}
