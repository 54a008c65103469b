package wal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cloudmedical/pulse/internal/pulse"
)

func openWAL(t testing.TB, cfg Config) *WAL {
	t.Helper()
	w, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return w
}

// readAll returns the payloads of every sealed segment, oldest first.
func readAll(t testing.TB, w *WAL) []string {
	t.Helper()
	var out []string
	for _, seq := range w.Sealed() {
		for p, err := range w.Payloads(seq) {
			if err != nil {
				t.Fatalf("Payloads(%d): %v", seq, err)
			}
			out = append(out, string(p))
		}
	}
	return out
}

// segmentFiles returns the segment files of dir, oldest first.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func appendStrings(t testing.TB, w *WAL, ss ...string) {
	t.Helper()
	ps := make([][]byte, len(ss))
	for i, s := range ss {
		ps[i] = []byte(s)
	}
	if err := w.Append(context.Background(), ps...); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func TestConcurrentAppendReadBackOnce(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	w := openWAL(t, Config{Dir: dir, MaxSegmentBytes: 8 << 10, Registerer: reg})
	const goroutines, perG = 32, 150
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perG; i++ {
				p := []byte(fmt.Sprintf("g%02d-%04d-%s", g, i, strings.Repeat("x", i%50)))
				var err error
				if i%10 == 0 && i+1 < perG { // sometimes two payloads in one call
					i++
					q := []byte(fmt.Sprintf("g%02d-%04d-%s", g, i, strings.Repeat("x", i%50)))
					err = w.Append(context.Background(), p, q)
				} else {
					err = w.Append(context.Background(), p)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	batches := testutil.ToFloat64(w.m.batches)
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if batches < 1 || batches > goroutines*perG {
		t.Errorf("fsync batches: got %v, want 1..%d", batches, goroutines*perG)
	}
	t.Logf("%d records in %v fsync batches", goroutines*perG, batches)

	w = openWAL(t, Config{Dir: dir})
	defer w.Close()
	if n := len(w.Sealed()); n < 2 {
		t.Errorf("sealed segments: got %d, want several (MaxSegmentBytes is small)", n)
	}
	seen := map[string]int{}
	last := make([]int, goroutines)
	for i := range last {
		last[i] = -1
	}
	for _, p := range readAll(t, w) {
		seen[p]++
		var g, i int
		if _, err := fmt.Sscanf(p, "g%02d-%04d-", &g, &i); err != nil {
			t.Fatalf("payload %q: %v", p, err)
		}
		if i <= last[g] {
			t.Errorf("goroutine %d: record %d read after record %d, want append order", g, i, last[g])
		}
		last[g] = i
	}
	if len(seen) != goroutines*perG {
		t.Errorf("distinct payloads: got %d, want %d", len(seen), goroutines*perG)
	}
	for p, n := range seen {
		if n != 1 {
			t.Errorf("payload %q read %d times, want once", p, n)
		}
	}
}

func TestRotateBySize(t *testing.T) {
	sealed := make(chan uint64, 10)
	w := openWAL(t, Config{Dir: t.TempDir(), MaxSegmentBytes: 100, OnSeal: func(seq uint64) { sealed <- seq }})
	defer w.Close()
	p := strings.Repeat("a", 42) // frame of 50 bytes; header 8
	appendStrings(t, w, p)       // 58 bytes: stays active
	if err := w.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := <-sealed // Rotate sealed it
	appendStrings(t, w, p)
	appendStrings(t, w, p) // 108 bytes: sealed by size
	second := <-sealed
	if second <= first {
		t.Errorf("sequence numbers: got %d after %d, want increasing", second, first)
	}
	if got := w.Sealed(); !slices.Equal(got, []uint64{first, second}) {
		t.Errorf("Sealed: got %v, want [%d %d]", got, first, second)
	}
	if got := readAll(t, w); len(got) != 3 {
		t.Errorf("records: got %d, want 3", len(got))
	}
	select {
	case seq := <-sealed:
		t.Errorf("segment %d sealed, want no more segments", seq)
	default:
	}
}

func TestRotateByAge(t *testing.T) {
	sealed := make(chan uint64, 10)
	w := openWAL(t, Config{Dir: t.TempDir(), MaxSegmentAge: 20 * time.Millisecond, OnSeal: func(seq uint64) { sealed <- seq }})
	defer w.Close()
	appendStrings(t, w, "one", "two")
	seq := <-sealed // waits until the age timer seals the segment
	if got := w.Sealed(); !slices.Equal(got, []uint64{seq}) {
		t.Errorf("Sealed: got %v, want [%d]", got, seq)
	}
	if got := readAll(t, w); !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("records: got %q, want [one two]", got)
	}
	appendStrings(t, w, "three")
	seq2 := <-sealed
	if seq2 <= seq {
		t.Errorf("second segment %d, want > %d", seq2, seq)
	}
}

func TestRotateEmptyDoesNothing(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, Config{Dir: dir})
	if err := w.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := segmentFiles(t, dir); len(got) != 0 {
		t.Errorf("segment files: got %v, want none", got)
	}
}

func TestTornTailIsTruncated(t *testing.T) {
	tests := []struct {
		name     string
		damage   func(data []byte) []byte
		wantKept []string
	}{
		{"partial frame header", func(d []byte) []byte { return append(d, 5, 0, 0) }, []string{"first", "second", "third"}},
		{"partial payload", func(d []byte) []byte { return d[:len(d)-2] }, []string{"first", "second"}},
		{"length beyond the end", func(d []byte) []byte { return append(d, 0xff, 0xff, 0, 0, 1, 2, 3, 4, 'x') }, []string{"first", "second", "third"}},
		{"checksum mismatch of last record", func(d []byte) []byte { d[len(d)-1] ^= 0xff; return d }, []string{"first", "second"}},
		{"trailing zeros", func(d []byte) []byte { return append(d, make([]byte, 4096)...) }, []string{"first", "second", "third"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w := openWAL(t, Config{Dir: dir})
			appendStrings(t, w, "older")
			if err := w.Rotate(context.Background()); err != nil {
				t.Fatal(err)
			}
			appendStrings(t, w, "first", "second")
			appendStrings(t, w, "third")
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			files := segmentFiles(t, dir)
			newest := files[len(files)-1]
			data, err := os.ReadFile(newest)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(newest, tt.damage(data), 0o644); err != nil {
				t.Fatal(err)
			}

			w = openWAL(t, Config{Dir: dir})
			want := append([]string{"older"}, tt.wantKept...)
			if got := readAll(t, w); !slices.Equal(got, want) {
				t.Errorf("records after recovery: got %q, want %q", got, want)
			}
			// The log goes on in a new segment.
			appendStrings(t, w, "fourth")
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			w = openWAL(t, Config{Dir: dir})
			defer w.Close()
			if got := readAll(t, w); !slices.Equal(got, append(want, "fourth")) {
				t.Errorf("records after reopening: got %q, want %q", got, append(want, "fourth"))
			}
		})
	}
}

func TestTornHeaderRemovesNewestSegment(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, Config{Dir: dir})
	appendStrings(t, w, "kept")
	w.Close()
	torn := filepath.Join(dir, segmentName(uint64(time.Now().UnixNano())))
	if err := os.WriteFile(torn, []byte("PW"), 0o644); err != nil {
		t.Fatal(err)
	}
	w = openWAL(t, Config{Dir: dir})
	defer w.Close()
	if got := readAll(t, w); !slices.Equal(got, []string{"kept"}) {
		t.Errorf("records: got %q, want [kept]", got)
	}
	if _, err := os.Stat(torn); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("torn segment: got stat error %v, want it removed", err)
	}
}

func TestCorruptionIsAnError(t *testing.T) {
	tests := []struct {
		name       string
		damage     func(files []string) (segment string, err error)
		wantOffset int64
		wantReason string
	}{
		{
			name: "checksum mismatch in the middle",
			damage: func(files []string) (string, error) {
				return files[1], flipByte(files[1], headerSize+frameHeaderSize) // first payload byte of the newest
			},
			wantOffset: headerSize,
			wantReason: "checksum mismatch",
		},
		{
			name: "torn tail of an older segment",
			damage: func(files []string) (string, error) {
				data, err := os.ReadFile(files[0])
				if err != nil {
					return "", err
				}
				return files[0], os.WriteFile(files[0], data[:len(data)-1], 0o644)
			},
			wantOffset: headerSize,
			wantReason: "partial frame",
		},
		{
			name: "bad magic",
			damage: func(files []string) (string, error) {
				return files[0], flipByte(files[0], 0)
			},
			wantOffset: 0,
			wantReason: "header",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w := openWAL(t, Config{Dir: dir})
			appendStrings(t, w, "a-record-in-the-older-segment")
			w.Rotate(context.Background())
			appendStrings(t, w, "first", "second", "third")
			w.Close()
			seg, err := tt.damage(segmentFiles(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			w, err = Open(context.Background(), Config{Dir: dir})
			if err == nil {
				w.Close()
				t.Fatal("Open: got nil error, want a corruption error")
			}
			var cerr *CorruptError
			if !errors.As(err, &cerr) {
				t.Fatalf("Open: got %v, want a *CorruptError", err)
			}
			if cerr.Segment != filepath.Base(seg) || cerr.Offset != tt.wantOffset || !strings.Contains(cerr.Reason, tt.wantReason) {
				t.Errorf("got segment %s offset %d reason %q, want %s offset %d reason containing %q",
					cerr.Segment, cerr.Offset, cerr.Reason, filepath.Base(seg), tt.wantOffset, tt.wantReason)
			}
			if !strings.Contains(err.Error(), filepath.Base(seg)) {
				t.Errorf("message %q does not name the segment", err)
			}
		})
	}
}

func flipByte(path string, off int) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	data[off] ^= 0x55
	return os.WriteFile(path, data, 0o644)
}

func TestFailStop(t *testing.T) {
	dir := t.TempDir()
	var syncs atomic.Int32
	boom := errors.New("injected fsync failure")
	cfg := Config{Dir: dir, syncFile: func(f *os.File) error {
		if syncs.Add(1) > 1 { // the first batch succeeds, every later fsync fails
			return boom
		}
		return f.Sync()
	}}
	w := openWAL(t, cfg)
	appendStrings(t, w, "acknowledged")

	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.Append(context.Background(), []byte(fmt.Sprintf("doomed-%d", i)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, boom) {
			t.Errorf("appender %d: got %v, want the fsync error", i, err)
		}
	}
	if err := w.Append(context.Background(), []byte("later")); !errors.Is(err, boom) {
		t.Errorf("Append after the failure: got %v, want the fsync error", err)
	}
	if err := w.Rotate(context.Background()); !errors.Is(err, boom) {
		t.Errorf("Rotate after the failure: got %v, want the fsync error", err)
	}
	if err := w.Close(); !errors.Is(err, boom) {
		t.Errorf("Close: got %v, want the fsync error", err)
	}

	// A restart recovers what was acknowledged. (Records whose fsync failed may be there too;
	// here the data reached the file, only the fsync "failed".)
	w = openWAL(t, Config{Dir: dir})
	defer w.Close()
	got := readAll(t, w)
	if len(got) == 0 || got[0] != "acknowledged" {
		t.Errorf("records after restart: got %q, want \"acknowledged\" first", got)
	}
	for _, p := range got {
		if p == "later" {
			t.Errorf("record %q appended after the failure is in the log", p)
		}
	}
}

func TestSequenceIncreasesAfterEmptying(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, Config{Dir: dir})
	appendStrings(t, w, "a")
	w.Close()
	w = openWAL(t, Config{Dir: dir})
	first := w.Sealed()
	if len(first) != 1 {
		t.Fatalf("Sealed: got %v, want one segment", first)
	}
	if err := w.Remove(first[0]); err != nil {
		t.Fatal(err)
	}
	if err := w.Remove(first[0]); pulse.ErrorCode(err) != pulse.ENOTFOUND {
		t.Errorf("second Remove: got %v, want ENOTFOUND", err)
	}
	w.Close()
	if files := segmentFiles(t, dir); len(files) != 0 {
		t.Fatalf("segment files: got %v, want none", files)
	}
	w = openWAL(t, Config{Dir: dir})
	appendStrings(t, w, "b")
	w.Close()
	w = openWAL(t, Config{Dir: dir})
	defer w.Close()
	second := w.Sealed()
	if len(second) != 1 || second[0] <= first[0] {
		t.Errorf("sequence of the new segment: got %v, want one greater than %d", second, first[0])
	}
}

func TestAppendValidation(t *testing.T) {
	w := openWAL(t, Config{Dir: t.TempDir()})
	ctx := context.Background()
	tests := []struct {
		payloads [][]byte
		wantCode string
	}{
		{[][]byte{{}}, pulse.EINVALID},
		{[][]byte{[]byte("ok"), nil}, pulse.EINVALID},
		{[][]byte{make([]byte, MaxPayloadBytes+1)}, pulse.ETOOLARGE},
	}
	for i, tt := range tests {
		if got := pulse.ErrorCode(w.Append(ctx, tt.payloads...)); got != tt.wantCode {
			t.Errorf("case %d: got code %q, want %q", i, got, tt.wantCode)
		}
	}
	if err := w.Append(ctx); err != nil {
		t.Errorf("Append of nothing: got %v, want nil", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := w.Append(cctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a cancelled context: got %v, want context.Canceled", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(ctx, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: got %v, want ErrClosed", err)
	}
	if err := w.Rotate(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Rotate after Close: got %v, want ErrClosed", err)
	}
	if got := readAll(t, w); len(got) != 0 {
		t.Errorf("records: got %q, want none (every append was rejected)", got)
	}
}

func TestDirectoryLock(t *testing.T) {
	dir := t.TempDir()
	w := openWAL(t, Config{Dir: dir})
	if w2, err := Open(context.Background(), Config{Dir: dir}); pulse.ErrorCode(err) != pulse.ECONFLICT {
		if w2 != nil {
			w2.Close()
		}
		t.Errorf("second Open: got %v, want ECONFLICT", err)
	}
	w.Close()
	w = openWAL(t, Config{Dir: dir}) // the lock is released by Close
	w.Close()
}

func TestPayloadsOfUnknownSegment(t *testing.T) {
	w := openWAL(t, Config{Dir: t.TempDir()})
	defer w.Close()
	for _, err := range w.Payloads(42) {
		if pulse.ErrorCode(err) != pulse.ENOTFOUND {
			t.Errorf("got %v, want ENOTFOUND", err)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{{}, {Dir: t.TempDir(), MaxSegmentBytes: -1}, {Dir: t.TempDir(), MaxSegmentAge: -time.Second}} {
		if _, err := Open(context.Background(), cfg); pulse.ErrorCode(err) != pulse.EINVALID {
			t.Errorf("Open(%+v): got %v, want EINVALID", cfg, err)
		}
	}
}

// BenchmarkAppendParallel measures group commit with many concurrent appenders, each
// appending one 1 KiB record per call (about the size of a scored prediction).
func BenchmarkAppendParallel(b *testing.B) {
	for _, par := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			w := openWAL(b, Config{Dir: b.TempDir()})
			payload := []byte(strings.Repeat("p", 1024))
			b.SetParallelism(par) // goroutines = par * GOMAXPROCS
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := w.Append(context.Background(), payload); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			batches := testutil.ToFloat64(w.m.batches)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			b.ReportMetric(float64(b.N)/batches, "records/fsync")
			w.Close()
		})
	}
}
