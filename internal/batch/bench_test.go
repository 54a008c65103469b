package batch

import (
	"bytes"
	"context"
	"io"
	"syscall"
	"testing"
	"time"
)

// benchInput is 32 MiB of heart-disease-like rows (about 62 bytes each), made once.
var benchInput []byte

func input32(b *testing.B) []byte {
	if benchInput == nil {
		benchInput = synthetic(b, 32<<20, 9, false)
	}
	return benchInput
}

func benchmarkScore(b *testing.B, algorithm string, opts Options) {
	input := input32(b)
	opts.Model = trained(b, algorithm)
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	b.ResetTimer()
	var rows int64
	cpu0 := cpuTime()
	for b.Loop() {
		sum, err := Score(context.Background(), bytes.NewReader(input), io.Discard, opts)
		if err != nil {
			b.Fatal(err)
		}
		rows = sum.Rows
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	// MB per CPU second (user + system, the whole process): what the machine can do per core,
	// whatever else runs beside the benchmark.
	b.ReportMetric(float64(len(input))*float64(b.N)/1e6/(cpuTime()-cpu0).Seconds(), "MB/cpu-s")
}

// cpuTime returns the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScoreCSV: logreg, CSV out, GOMAXPROCS workers. MB/s is input bytes.
func BenchmarkScoreCSV(b *testing.B) { benchmarkScore(b, "logreg", Options{}) }

// BenchmarkScoreCSVOneWorker: the same on one worker.
func BenchmarkScoreCSVOneWorker(b *testing.B) { benchmarkScore(b, "logreg", Options{Workers: 1}) }

// BenchmarkScoreCSVGBDT: gbdt (100 trees), CSV out.
func BenchmarkScoreCSVGBDT(b *testing.B) { benchmarkScore(b, "gbdt", Options{}) }

// BenchmarkScoreParquet: logreg, Parquet out.
func BenchmarkScoreParquet(b *testing.B) { benchmarkScore(b, "logreg", Options{Format: Parquet}) }

// BenchmarkPlan: planning 32 MiB into 1 MiB shards, in memory.
func BenchmarkPlan(b *testing.B) {
	input := input32(b)
	b.SetBytes(int64(len(input)))
	for b.Loop() {
		if _, err := Plan(context.Background(), bytes.NewReader(input), int64(len(input)), 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseFloat: the numbers of a Cleveland row.
func BenchmarkParseFloat(b *testing.B) {
	texts := [][]byte{[]byte("63.0"), []byte("145.0"), []byte("233.0"), []byte("150.0"), []byte("2.3"), []byte("0.0")}
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range texts {
			if _, err := parseFloat(s); err != nil {
				b.Fatal(err)
			}
		}
	}
}
