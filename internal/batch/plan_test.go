package batch

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// quotedCSV builds a CSV whose records hold every kind of field RFC 4180 allows: plain, quoted
// with delimiters, "" escapes (also at the edges), line breaks ("\n" and "\r\n") and empty
// quoted fields; lines end in "\n" or "\r\n". It returns the file and the offset just after
// each record (the header's first).
func quotedCSV(seed uint64, records int, finalNewline bool) ([]byte, []int64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	fields := []string{"1", "2.5", `""`, `"a,b"`, `"say ""hi"""`, `""""`, `"""x"`, "\"two\nlines\"", "\"c\r\nd\"", `"` + "\n" + `"`, `","`, "plain text"}
	var b bytes.Buffer
	var ends []int64
	b.WriteString("h1,\"h,2\",h3\n")
	ends = append(ends, int64(b.Len()))
	for r := range records {
		for j := range 3 {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(fields[rng.IntN(len(fields))])
		}
		if r == records-1 && !finalNewline {
			ends = append(ends, int64(b.Len()))
			break
		}
		if rng.IntN(3) == 0 {
			b.WriteString("\r\n")
		} else {
			b.WriteString("\n")
		}
		ends = append(ends, int64(b.Len()))
	}
	return b.Bytes(), ends
}

// TestQuotedCSVIsValid checks the test data itself: encoding/csv reads as many records as
// quotedCSV says it wrote, each ending where it says.
func TestQuotedCSVIsValid(t *testing.T) {
	data, ends := quotedCSV(1, 200, true)
	r := csv.NewReader(bytes.NewReader(data))
	for i := 0; ; i++ {
		rec, err := r.Read()
		if err == io.EOF {
			if i != len(ends) {
				t.Fatalf("encoding/csv read %d records, want %d", i, len(ends))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(rec) != 3 || r.InputOffset() != ends[i] {
			t.Fatalf("record %d: %d fields ending at %d, want 3 ending at %d", i, len(rec), r.InputOffset(), ends[i])
		}
	}
}

// TestPlanExact is a property test: for every shard size from 1 byte to the whole file, the
// ranges start after the header, cover the rest exactly and in order, and every cut is a record
// boundary, whatever quoted line breaks and escapes sit around it.
func TestPlanExact(t *testing.T) {
	for _, final := range []bool{true, false} {
		data, ends := quotedCSV(2, 60, final)
		boundary := make(map[int64]bool, len(ends))
		for _, e := range ends {
			boundary[e] = true
		}
		size := int64(len(data))
		for shard := int64(1); shard <= size+1; shard++ {
			split, err := Plan(context.Background(), bytes.NewReader(data), size, shard)
			if err != nil {
				t.Fatalf("shard %d: %v", shard, err)
			}
			if int64(len(split.Header)) != ends[0] || !bytes.Equal(split.Header, data[:ends[0]]) {
				t.Fatalf("shard %d: header %q", shard, split.Header)
			}
			at := ends[0]
			for i, r := range split.Ranges {
				if r.Start != at || r.End <= r.Start {
					t.Fatalf("shard %d: range %d is %v, want it to start at %d and be non-empty", shard, i, r, at)
				}
				if r.End != size && !boundary[r.End] {
					t.Fatalf("shard %d: range %d ends at %d, inside a record (%q|%q)", shard, i, r.End, data[max(0, r.End-10):r.End], data[r.End:min(size, r.End+10)])
				}
				at = r.End
			}
			if at != size {
				t.Fatalf("shard %d: the ranges end at %d, want %d", shard, at, size)
			}
			if want := int(math.Ceil(float64(size-ends[0]) / float64(shard))); len(split.Ranges) > want {
				t.Fatalf("shard %d: got %d ranges, want at most %d", shard, len(split.Ranges), want)
			}
		}
	}
}

// TestPlanEdges: header-only files, a file without a header line end, and bad arguments.
func TestPlanEdges(t *testing.T) {
	for _, in := range []string{"a,b\n", "a,b", "\"a\nb\",c\n"} {
		split, err := Plan(context.Background(), strings.NewReader(in), int64(len(in)), 10)
		if err != nil || string(split.Header) != in || len(split.Ranges) != 0 {
			t.Errorf("%q: got %q %v %v, want the header alone", in, split.Header, split.Ranges, err)
		}
	}
	if _, err := Plan(context.Background(), strings.NewReader(""), 0, 10); pulse.ErrorCode(err) != pulse.EUNPROCESSABLE {
		t.Errorf("empty: got %v, want unprocessable", err)
	}
	if _, err := Plan(context.Background(), strings.NewReader("a\n"), 2, 0); pulse.ErrorCode(err) != pulse.EINVALID {
		t.Errorf("shard bytes 0: got %v, want invalid", err)
	}
	if _, err := Plan(context.Background(), strings.NewReader("a\n"), 20, 5); err == nil {
		t.Error("size past the end: got no error")
	}
	// A quoted field that spans several raw cuts merges them.
	in := "h\n1\n\"" + strings.Repeat("x\n", 50) + "\"\n2\n"
	split, err := Plan(context.Background(), strings.NewReader(in), int64(len(in)), 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range split.Ranges {
		if s := in[r.Start:r.End]; strings.Count(s, `"`)%2 != 0 {
			t.Errorf("range %q splits the quoted field", s)
		}
	}
}

// TestPlanShardsScoreAsWhole scores a messy file shard by shard (header + range, as the server
// job does) and checks that the outputs, put together, are the output of the whole file, and
// that the row counts add up.
func TestPlanShardsScoreAsWhole(t *testing.T) {
	m := trained(t, "logreg")
	data := synthetic(t, 300<<10, 6, true)
	whole, wholeSum := score(t, data, Options{Model: m})
	header, body, _ := bytes.Cut(whole, []byte("\n"))
	for _, shard := range []int64{1000, 7777, 64 << 10, 1 << 30} {
		split, err := Plan(context.Background(), bytes.NewReader(data), int64(len(data)), shard)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		rows := int64(0)
		for _, r := range split.Ranges {
			in := io.MultiReader(bytes.NewReader(split.Header), bytes.NewReader(data[r.Start:r.End]))
			var out bytes.Buffer
			sum, err := Score(context.Background(), in, &out, Options{Model: m, ChunkBytes: 4096})
			if err != nil {
				t.Fatalf("shard %d range %v: %v", shard, r, err)
			}
			h, b, _ := bytes.Cut(out.Bytes(), []byte("\n"))
			if !bytes.Equal(h, header) {
				t.Fatalf("range %v: header %q, want %q", r, h, header)
			}
			got.Write(b)
			rows += sum.Rows
		}
		if !bytes.Equal(got.Bytes(), body) {
			t.Fatalf("shard %d (%d ranges): the outputs put together differ from the whole file's", shard, len(split.Ranges))
		}
		if rows != wholeSum.Rows {
			t.Fatalf("shard %d: got %d rows, want %d", shard, rows, wholeSum.Rows)
		}
	}
}

// TestParseFloatMatchesStrconv: the fast path gives strconv's bits, and its errors, on
// hand-picked texts and on random decimals of every length.
func TestParseFloatMatchesStrconv(t *testing.T) {
	texts := []string{"0", "-0", "+0", "63.0", "2.3", ".7", "7.", "-.5", "0.1", "0.3", "1e3", "1E-2", "9007199254740993",
		"9007199254740992", "123456789012345678", "1234567890123456789012", "0.0000000000000000000001", "0.00000000000000000000001",
		"00000000000000000000000001.5", "1_000", "1__0", "0x1p-2", "inf", "-Inf", "NaN", "", ".", "-", "+", "1.2.3", "1,5", " 1", "1e400", "4.9e-324",
		"179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"}
	rng := rand.New(rand.NewPCG(3, 3))
	for range 20000 {
		n := 1 + rng.IntN(20)
		var b strings.Builder
		if rng.IntN(4) == 0 {
			b.WriteByte('-')
		}
		dot := rng.IntN(n + 1)
		for i := range n {
			if i == dot {
				b.WriteByte('.')
			}
			b.WriteByte(byte('0' + rng.IntN(10)))
		}
		texts = append(texts, b.String())
	}
	for _, s := range texts {
		got, gotErr := parseFloat([]byte(s))
		want, wantErr := strconv.ParseFloat(s, 64)
		if math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) || (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: got %v (%x) %v, want %v (%x) %v", s, got, math.Float64bits(got), gotErr, want, math.Float64bits(want), wantErr)
		}
	}
}

// FuzzParseFloat checks parseFloat against strconv on any text.
func FuzzParseFloat(f *testing.F) {
	for _, s := range []string{"63.0", "-0.5", "1e5", "9007199254740993", "0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, gotErr := parseFloat([]byte(s))
		want, wantErr := strconv.ParseFloat(s, 64)
		if math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) || (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: got %v %v, want %v %v", s, got, gotErr, want, wantErr)
		}
	})
}

// TestTrimSpace matches strings.TrimSpace, Unicode spaces included.
func TestTrimSpace(t *testing.T) {
	for _, s := range []string{"", " ", " a ", "\ta\r", "\u00a0x\u00a0", "\u2003 y", "z\u0085", "é", " é ", "\u00a0"} {
		if got, want := string(trimSpace([]byte(s))), strings.TrimSpace(s); got != want {
			t.Errorf("%q: got %q, want %q", s, got, want)
		}
	}
}
