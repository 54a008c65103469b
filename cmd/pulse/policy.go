package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/cloudmedical/pulse/internal/client"
	"github.com/cloudmedical/pulse/internal/evaluator"
	"github.com/cloudmedical/pulse/internal/monitor"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// The continuous-evaluation commands: pulse policy set|get|history, pulse live, pulse events.

// call makes one request to the server and decodes a 2xx answer into out; a problem becomes
// a *client.Error, as the client package does.
func call(ctx context.Context, cf *clientFlags, method, path, contentType string, body []byte, out any) error {
	c := cf.client()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, r)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("X-Pulse-Trigger", c.Trigger)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 400 {
		e := &client.Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Detail == "" {
			e.Title, e.Detail = http.StatusText(resp.StatusCode), strings.TrimSpace(string(data))
		}
		return e
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode the answer of %s %s: %w", method, path, err)
	}
	return nil
}

func runPolicy(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("policy: want a subcommand: set, get or history")
	}
	sub, args := args[0], args[1:]
	fs, cf := newClientFlags("policy "+sub, stderr)
	model := fs.String("model", "", "model name (required)")
	switch sub {
	case "set":
		file := fs.String("file", "-", "policy document: a JSON file, or YAML (.yaml, .yml); - reads stdin")
		format := fs.String("format", "", "json or yaml (default: from the file's extension, else json)")
		pos, err := parseInterspersed(fs, args)
		if err != nil {
			return err
		}
		if len(pos) == 1 && *file == "-" {
			*file = pos[0]
		} else if len(pos) > 0 {
			return fmt.Errorf("policy set: unexpected arguments %q", pos)
		}
		if *model == "" {
			return fmt.Errorf("policy set: --model is required")
		}
		var doc []byte
		if *file == "-" {
			doc, err = io.ReadAll(stdin)
		} else {
			doc, err = os.ReadFile(*file)
		}
		if err != nil {
			return fmt.Errorf("policy set: %w", err)
		}
		ct := "application/json"
		switch {
		case *format == "yaml", *format == "" && (strings.HasSuffix(*file, ".yaml") || strings.HasSuffix(*file, ".yml")):
			ct = "application/yaml"
		case *format != "" && *format != "json":
			return fmt.Errorf("policy set: --format %q: want json or yaml", *format)
		}
		var p evaluator.PolicyView
		if err := call(ctx, cf, http.MethodPut, "/v1/models/"+url.PathEscape(*model)+"/policy", ct, doc, &p); err != nil {
			return err
		}
		if cf.json {
			return printJSON(stdout, p)
		}
		fmt.Fprintf(stdout, "policy version %d of model %s stored\n", p.Version, p.Model)
		return printPolicy(stdout, p.Policy)
	case "get":
		version := fs.Int("version", 0, "a version of the policy (default the current one)")
		if _, err := parseInterspersed(fs, args); err != nil {
			return err
		}
		if *model == "" {
			return fmt.Errorf("policy get: --model is required")
		}
		path := "/v1/models/" + url.PathEscape(*model) + "/policy"
		if *version > 0 {
			path += "?version=" + strconv.Itoa(*version)
		}
		var p evaluator.PolicyView
		if err := call(ctx, cf, http.MethodGet, path, "", nil, &p); err != nil {
			return err
		}
		if cf.json {
			return printJSON(stdout, p)
		}
		fmt.Fprintf(stdout, "policy version %d of model %s, %s by %s\n", p.Version, p.Model, p.CreatedAt.Format("2006-01-02 15:04:05"), p.CreatedBy)
		return printPolicy(stdout, p.Policy)
	case "history":
		if _, err := parseInterspersed(fs, args); err != nil {
			return err
		}
		if *model == "" {
			return fmt.Errorf("policy history: --model is required")
		}
		var h struct {
			Policies []evaluator.PolicyView `json:"policies"`
		}
		if err := call(ctx, cf, http.MethodGet, "/v1/models/"+url.PathEscape(*model)+"/policy/versions", "", nil, &h); err != nil {
			return err
		}
		if cf.json {
			return printJSON(stdout, h)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tCREATED\tBY\tRULES")
		for _, p := range h.Policies {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", p.Version, p.CreatedAt.Format("2006-01-02 15:04:05"), p.CreatedBy, rules(p.Policy))
		}
		return tw.Flush()
	default:
		return fmt.Errorf("policy: unknown subcommand %q: want set, get or history", sub)
	}
}

// rules names a policy's rules.
func rules(p *monitor.Policy) string {
	var rs []string
	if p.Rollback != nil {
		rs = append(rs, fmt.Sprintf("rollback %s < %g", p.Rollback.Metric, p.Rollback.Below))
	}
	if r := p.Retrain; r != nil {
		var t []string
		if r.DriftPSIAbove > 0 {
			t = append(t, fmt.Sprintf("drift PSI > %g", r.DriftPSIAbove))
		}
		if r.ScorePSIAbove > 0 {
			t = append(t, fmt.Sprintf("score PSI > %g", r.ScorePSIAbove))
		}
		if r.LiveROCAUCBelow > 0 {
			t = append(t, fmt.Sprintf("roc_auc < %g", r.LiveROCAUCBelow))
		}
		rs = append(rs, "retrain on "+strings.Join(t, " or "))
	}
	if p.Promote != nil {
		rs = append(rs, fmt.Sprintf("promote on %s gain > %g", p.Promote.Metric, p.Promote.MinGain))
	}
	if len(rs) == 0 {
		return "monitor only"
	}
	return strings.Join(rs, "; ")
}

func printPolicy(w io.Writer, p *monitor.Policy) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func runLive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("live", stderr)
	model := fs.String("model", "", "model name (required)")
	version := fs.Int("version", 0, "version (default: the champion's)")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return fmt.Errorf("live: --model is required")
	}
	if *version == 0 {
		m, err := cf.client().Model(ctx, *model)
		if err != nil {
			return err
		}
		if *version = m.Aliases[pulse.AliasChampion]; *version == 0 {
			return fmt.Errorf("live: model %s has no champion; give --version", *model)
		}
	}
	var r evaluator.LiveReport
	path := fmt.Sprintf("/v1/models/%s/versions/%d/live", url.PathEscape(*model), *version)
	if cf.json {
		var raw []byte
		if err := call(ctx, cf, http.MethodGet, path, "", nil, &raw); err != nil {
			return err
		}
		_, err := stdout.Write(raw)
		return err
	}
	if err := call(ctx, cf, http.MethodGet, path, "", nil, &r); err != nil {
		return err
	}
	return printLive(stdout, &r)
}

// printLive writes a live report for people.
func printLive(w io.Writer, r *evaluator.LiveReport) error {
	aliases := strings.Join(r.Aliases, ", ")
	if aliases == "" {
		aliases = "no alias"
	}
	fmt.Fprintf(w, "model %s version %d (%s), threshold %.4f, at %s\n", r.Model, r.Version, aliases, r.Threshold, r.At.Format("2006-01-02 15:04:05Z07:00"))
	l := r.Live
	fmt.Fprintf(w, "\nlive: %d labels (%d positive), window: last %d within %s\n", l.N, l.Positives, r.Window.LiveSize, seconds(r.Window.LivePeriodSeconds))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  METRIC\tLIVE\t95% CI\tHOLDOUT")
	hold := func(f func(*evaluator.HoldoutMetrics) float64) string {
		if r.Holdout == nil {
			return "-"
		}
		return strconv.FormatFloat(f(r.Holdout), 'f', 4, 64)
	}
	row := func(name string, e *monitor.Estimate, holdout string) {
		if e == nil {
			fmt.Fprintf(tw, "  %s\t-\t-\t%s\n", name, holdout)
			return
		}
		fmt.Fprintf(tw, "  %s\t%.4f\t%.4f-%.4f\t%s\n", name, e.Value, e.Lower, e.Upper, holdout)
	}
	row("accuracy", l.Accuracy, hold(func(h *evaluator.HoldoutMetrics) float64 { return h.Accuracy }))
	row("roc_auc", l.ROCAUC, hold(func(h *evaluator.HoldoutMetrics) float64 { return h.ROCAUC }))
	row("sensitivity", l.Sensitivity, "-")
	row("specificity", l.Specificity, "-")
	brier := "-"
	if l.Brier != nil {
		brier = strconv.FormatFloat(*l.Brier, 'f', 4, 64)
	}
	fmt.Fprintf(tw, "  brier\t%s\t\t%s\n", brier, hold(func(h *evaluator.HoldoutMetrics) float64 { return h.Brier }))
	if err := tw.Flush(); err != nil {
		return err
	}
	if d := l.LabelDelay; d != nil {
		fmt.Fprintf(w, "label delay: mean %s, median %s, p95 %s\n", seconds(d.Mean), seconds(d.P50), seconds(d.P95))
	}
	fmt.Fprintln(w)
	switch {
	case r.Drift == nil:
		fmt.Fprintf(w, "drift: unavailable: %s\n", r.DriftUnavailable)
	case r.Drift.N == 0:
		fmt.Fprintf(w, "drift: no scored records in the window yet\n")
	default:
		d := r.Drift
		fmt.Fprintf(w, "drift: %d records, window: last %d within %s; score PSI %s, largest input PSI %s (%s)\n",
			d.N, r.Window.DriftSize, seconds(r.Window.DriftPeriodSeconds), psi(d.ScorePSI), psi(d.MaxPSI), d.Worst)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  INPUT\tPSI\tMISSING\tTRAINING MISSING")
		for _, f := range d.Features {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%.4f\n", f.Name, psi(f.PSI), psi(f.MissingRate), f.TrainingMissingRate)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if s := r.Shadow; s != nil {
		fmt.Fprintf(w, "\nshadow: champion %d and challenger %d over the same %d labels\n", s.Champion, s.Challenger, s.Labels)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  METRIC\tCHAMPION\tCHALLENGER")
		for _, name := range []string{"accuracy", "roc_auc"} {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", name, estimate(s.Metrics.Champion.Metric(name)), estimate(s.Metrics.Challenger.Metric(name)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if r.Policy != nil {
		fmt.Fprintf(w, "\npolicy version %d: %s\n", r.Policy.Version, rules(r.Policy.Policy))
	} else {
		fmt.Fprintf(w, "\nno policy: monitoring only\n")
	}
	return nil
}

func estimate(e *monitor.Estimate) string {
	if e == nil {
		return "-"
	}
	return fmt.Sprintf("%.4f (%.4f-%.4f)", e.Value, e.Lower, e.Upper)
}

func psi(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', 4, 64)
}

func seconds(s float64) string {
	d := int64(s)
	switch {
	case s == 0:
		return "0s"
	case d%86400 == 0:
		return fmt.Sprintf("%dd", d/86400)
	case d%3600 == 0:
		return fmt.Sprintf("%dh", d/3600)
	case s >= 60:
		return fmt.Sprintf("%.0fm", s/60)
	}
	return fmt.Sprintf("%.1fs", s)
}

func runEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("events", stderr)
	model := fs.String("model", "", "model name (required)")
	limit := fs.Int("limit", 20, "most entries shown, newest first")
	action := fs.String("action", "", "only rollback, retrain, promote or none")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return fmt.Errorf("events: --model is required")
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *action != "" {
		q.Set("action", *action)
	}
	var out struct {
		Events []*pulse.Decision `json:"events"`
	}
	if err := call(ctx, cf, http.MethodGet, "/v1/models/"+url.PathEscape(*model)+"/events?"+q.Encode(), "", nil, &out); err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAT\tRULE\tACTION\tCHAMPION\tVERSION\tGUARD / RESULT\tREASON")
	for _, d := range out.Events {
		what := d.Guard
		switch {
		case d.Error != "":
			what = "failed: " + d.Error
		case d.Result != "":
			what = d.Result
		}
		v := "-"
		if d.Version > 0 {
			v = strconv.Itoa(d.Version)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.At.Format("2006-01-02 15:04:05"), d.Rule, d.Action, d.Champion, v, what, d.Reason)
	}
	return tw.Flush()
}
