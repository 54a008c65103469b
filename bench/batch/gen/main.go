// Command gen writes a heart-disease-like CSV of a given size for bench/batch: rows of the
// Cleveland and Hungarian files drawn at random, with noise on the numeric columns (missing
// cells "?" kept as they are), under the header age,sex,...,num.
//
// Usage: go run ./bench/batch/gen --size 10GB --out FILE [--data DIR] [--seed N]
package main

import (
	"bufio"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	size := flag.String("size", "1GB", "size of the file: a number with B, KB, MB or GB (powers of 1000)")
	out := flag.String("out", "", "file to write (required)")
	data := flag.String("data", filepath.Join("..", "shared", "datasets", "heart-disease"), "folder of processed.cleveland.data and processed.hungarian.data")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	n, err := parseSize(*size)
	if err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required")
	}
	var rows [][]string
	for _, name := range []string{"processed.cleveland.data", "processed.hungarian.data"} {
		f, err := os.Open(filepath.Join(*data, name))
		if err != nil {
			return err
		}
		r := csv.NewReader(f)
		r.TrimLeadingSpace = true
		recs, err := r.ReadAll()
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		rows = append(rows, recs[1:]...)
	}
	// Noise per numeric column: standard deviation and decimals.
	noise := map[int]struct {
		sd   float64
		prec int
	}{0: {2, 1}, 3: {6, 1}, 4: {15, 1}, 7: {6, 1}, 9: {0.3, 1}}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 4<<20)
	w.WriteString("age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal,num\n")
	rng := rand.New(rand.NewPCG(*seed, 2))
	var line []byte
	written := int64(0)
	for written < n {
		row := rows[rng.IntN(len(rows))]
		line = line[:0]
		for j, cell := range row {
			if j > 0 {
				line = append(line, ',')
			}
			if nz, ok := noise[j]; ok && cell != "?" {
				v, err := strconv.ParseFloat(cell, 64)
				if err != nil {
					return fmt.Errorf("column %d: %q: %w", j, cell, err)
				}
				v = max(0, v+nz.sd*rng.NormFloat64())
				line = strconv.AppendFloat(line, v, 'f', nz.prec, 64)
				continue
			}
			line = append(line, cell...)
		}
		line = append(line, '\n')
		w.Write(line)
		written += int64(len(line))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// parseSize reads "10GB", "500MB", "123" (bytes).
func parseSize(s string) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if strings.HasSuffix(u, suf.s) {
			u, mult = strings.TrimSuffix(u, suf.s), suf.m
			break
		}
	}
	f, err := strconv.ParseFloat(u, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("--size %q: want a positive size such as 10GB", s)
	}
	return int64(f * float64(mult)), nil
}
