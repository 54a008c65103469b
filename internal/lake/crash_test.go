package lake

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// crashDirEnv and crashRoundEnv make TestCrashChild the child process of TestKillNine.
const (
	crashDirEnv   = "PULSE_LAKE_CRASH_DIR"
	crashRoundEnv = "PULSE_LAKE_CRASH_ROUND"
)

// TestCrashChild is the process that TestKillNine kills: it appends predictions from many
// goroutines, with segments sealed and compacted all the time, and prints the id of every
// prediction once AppendPredictions has returned. It does nothing in a normal test run.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return
	}
	round := os.Getenv(crashRoundEnv)
	e := env{walDir: filepath.Join(dir, "wal"), storeDir: filepath.Join(dir, "lake")}
	l, err := e.tryOpen(t, Config{MaxSegmentBytes: 32 << 10, MaxSegmentAge: 2 * time.Millisecond})
	if err != nil {
		fmt.Printf("ERR open: %v\n", err)
		os.Exit(1)
	}
	var out sync.Mutex
	var next atomic.Int64
	for range 16 {
		go func() {
			for {
				i := next.Add(1)
				rec := benchRecord(i)
				rec.PredictionID = fmt.Sprintf("r%s-%s", round, rec.PredictionID)
				rec.Model = fmt.Sprintf("m%d", i%3)
				if err := l.AppendPredictions(context.Background(), rec); err != nil {
					fmt.Printf("ERR append: %v\n", err)
					os.Exit(1)
				}
				out.Lock()
				fmt.Println(rec.PredictionID)
				out.Unlock()
			}
		}()
	}
	select {} // until killed
}

// TestKillNine kills a process that appends and compacts with SIGKILL, several times in a
// row, and checks that every acknowledged prediction is stored exactly once and that no
// prediction is stored twice.
func TestKillNine(t *testing.T) {
	dir := t.TempDir()
	acked := map[string]bool{}
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprintf("%s=%d", crashRoundEnv, round))
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		for n < 3000 && sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "ERR") {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("round %d: child: %s", round, line)
			}
			if !strings.HasPrefix(line, fmt.Sprintf("r%d-", round)) {
				continue
			}
			acked[line] = true
			n++
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		if n < 3000 {
			t.Fatalf("round %d: the child acknowledged %d predictions, then stopped (%v)", round, n, sc.Err())
		}
	}

	e := env{walDir: filepath.Join(dir, "wal"), storeDir: filepath.Join(dir, "lake")}
	l := e.open(t, Config{})
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	counts := countIDs(e.readLake(t))
	missing := 0
	for id := range acked {
		if counts[id] == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged predictions are missing", missing, len(acked))
	}
	for id, c := range counts {
		if c != 1 {
			t.Errorf("%s stored %d times, want once", id, c)
		}
	}
	t.Logf("%d acknowledged, %d stored (the rest were appended but not yet acknowledged when killed)", len(acked), len(counts))
}
