package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/cloudmedical/pulse/internal/client"
	"github.com/cloudmedical/pulse/internal/feedback"
)

// feedbackBatchBytes keeps each request under the server's 1 MiB body limit.
const feedbackBatchBytes = 900 << 10

// runFeedback sends ground truth from a file: JSON lines of {prediction_id, label,
// observed_at}, or CSV with those columns (header first), in batches to POST /v1/feedback.
// It prints the counts and every item that was not joined, with its line; it fails when an
// item was unknown or invalid (duplicates are not an error: the first label is kept).
func runFeedback(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("feedback", stderr)
	input := fs.String("input", "", "FILE.jsonl or FILE.csv of {prediction_id, label, observed_at}; - reads stdin (required)")
	format := fs.String("format", "", "jsonl or csv (default: from the file's extension; jsonl for stdin)")
	batch := fs.Int("batch", feedback.MaxItems, fmt.Sprintf("items per request, 1 to %d (requests also stay under 900 KiB)", feedback.MaxItems))
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if *input == "" {
		return fmt.Errorf("feedback: --input is required")
	}
	if *batch < 1 || *batch > feedback.MaxItems {
		return fmt.Errorf("feedback: --batch %d: want 1 to %d", *batch, feedback.MaxItems)
	}
	f := *format
	if f == "" {
		f = "jsonl"
		if strings.HasSuffix(strings.ToLower(*input), ".csv") {
			f = "csv"
		}
	}
	in := stdin
	if *input != "-" {
		file, err := os.Open(*input)
		if err != nil {
			return fmt.Errorf("feedback: %w", err)
		}
		defer file.Close()
		in = file
	}
	var items []feedbackLine
	var err error
	switch f {
	case "jsonl":
		items, err = readFeedbackJSONL(in)
	case "csv":
		items, err = readFeedbackCSV(in)
	default:
		return fmt.Errorf("feedback: --format %q: want jsonl or csv", f)
	}
	if err != nil {
		return fmt.Errorf("feedback: %s: %w", *input, err)
	}
	if len(items) == 0 {
		return fmt.Errorf("feedback: %s: no items", *input)
	}

	var total feedback.Summary
	var notJoined []string
	var answers []json.RawMessage
	for start := 0; start < len(items); {
		end, size := start, 0
		for end < len(items) && end-start < *batch && (end == start || size+len(items[end].json)+1 <= feedbackBatchBytes) {
			size += len(items[end].json) + 1
			end++
		}
		var body bytes.Buffer
		body.WriteString(`{"feedback":[`)
		for i, it := range items[start:end] {
			if i > 0 {
				body.WriteByte(',')
			}
			body.Write(it.json)
		}
		body.WriteString(`]}`)
		raw, err := postFeedback(ctx, cf.server, body.Bytes())
		if err != nil {
			return fmt.Errorf("feedback: items of lines %d to %d: %w (the earlier ones were sent)", items[start].line, items[end-1].line, err)
		}
		var ans struct {
			feedback.Summary
			Results []struct {
				Index  int    `json:"index"`
				Status string `json:"status"`
				Reason string `json:"reason"`
			} `json:"results"`
		}
		if err := json.Unmarshal(raw, &ans); err != nil {
			return fmt.Errorf("feedback: the server's answer: %w", err)
		}
		answers = append(answers, raw)
		total.Received += ans.Received
		total.Joined += ans.Joined
		total.Duplicate += ans.Duplicate
		total.Unknown += ans.Unknown
		total.Invalid += ans.Invalid
		total.Outcomes += ans.Outcomes
		for _, r := range ans.Results {
			if r.Index >= 0 && start+r.Index < end {
				notJoined = append(notJoined, fmt.Sprintf("line %d: %s: %s", items[start+r.Index].line, r.Status, r.Reason))
			}
		}
		start = end
	}
	if cf.json {
		for _, a := range answers {
			if _, err := stdout.Write(append(bytes.TrimSpace(a), '\n')); err != nil {
				return err
			}
		}
	} else {
		for _, s := range notJoined {
			fmt.Fprintln(stdout, s)
		}
		fmt.Fprintf(stdout, "received %d, joined %d, duplicate %d, unknown %d, invalid %d; %d outcomes stored\n",
			total.Received, total.Joined, total.Duplicate, total.Unknown, total.Invalid, total.Outcomes)
	}
	if n := total.Unknown + total.Invalid; n > 0 {
		return fmt.Errorf("feedback: %d of %d items were not joined (unknown or invalid)", n, total.Received)
	}
	return nil
}

// feedbackLine is one item as a JSON object, and its line in the input.
type feedbackLine struct {
	line int
	json []byte
}

func readFeedbackJSONL(r io.Reader) ([]feedbackLine, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []feedbackLine
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if !json.Valid(line) || line[0] != '{' {
			return nil, fmt.Errorf("line %d: want a JSON object {prediction_id, label, observed_at}", n)
		}
		out = append(out, feedbackLine{line: n, json: bytes.Clone(line)})
	}
	return out, sc.Err()
}

// readFeedbackCSV reads columns prediction_id, label and observed_at (in any order, found by
// the header; other columns are ignored). A label that reads as a number or true/false is
// sent as such, anything else as a string (the server says what is wrong with it).
func readFeedbackCSV(r io.Reader) ([]feedbackLine, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	for _, name := range []string{"prediction_id", "label", "observed_at"} {
		if _, ok := col[name]; !ok {
			return nil, fmt.Errorf("header: no column %q (want prediction_id, label and observed_at)", name)
		}
	}
	var out []feedbackLine
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, err
		}
		cell := func(name string) string {
			if i := col[name]; i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		label := cell("label")
		labelJSON := strconv.Quote(label)
		if _, err := strconv.ParseFloat(label, 64); err == nil || label == "true" || label == "false" {
			labelJSON = label
		}
		b := fmt.Appendf(nil, `{"prediction_id":%s,"label":%s,"observed_at":%s}`, strconv.Quote(cell("prediction_id")), labelJSON, strconv.Quote(cell("observed_at")))
		out = append(out, feedbackLine{line: line, json: b})
	}
}

// postFeedback sends one request and returns the answer, or the server's problem as a
// *client.Error.
func postFeedback(ctx context.Context, server string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(server, "/")+"/v1/feedback", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.New(server).HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		e := &client.Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Detail == "" {
			e.Title, e.Detail = http.StatusText(resp.StatusCode), strings.TrimSpace(string(data))
		}
		return nil, e
	}
	return data, nil
}
