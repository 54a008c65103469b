package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/cloudmedical/pulse/internal/client"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	server string
	json   bool
}

func newClientFlags(name string, stderr io.Writer) (*flag.FlagSet, *clientFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf := &clientFlags{}
	fs.StringVar(&cf.server, "server", envOr("PULSE_SERVER", "http://127.0.0.1:8080"), "Pulse server URL (env PULSE_SERVER)")
	fs.BoolVar(&cf.json, "json", false, "print the server's JSON instead of a summary")
	return fs, cf
}

func (cf *clientFlags) client() *client.Client {
	c := client.New(cf.server)
	c.Trigger = "cli"
	return c
}

// parseInterspersed parses flags that may come before or after positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runDatasets(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("datasets: want a subcommand: add, list or show")
	}
	sub, args := args[0], args[1:]
	fs, cf := newClientFlags("datasets "+sub, stderr)
	switch sub {
	case "add":
		name := fs.String("name", "", "dataset name (default: the file name without its extension)")
		header := fs.String("header", "auto", "does the file start with a header line: auto, true or false")
		columns := fs.String("columns", "", "comma-separated column names (required without a header)")
		kinds := fs.String("kinds", "", "declared kinds, e.g. cp:categorical,sex:binary")
		missing := fs.String("missing", "", `comma-separated missing-value markers (default "", "?", "NA")`)
		pos, err := parseInterspersed(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("datasets add: want one FILE, got %d arguments", len(pos))
		}
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		if *name == "" {
			base := filepath.Base(pos[0])
			*name = strings.ToLower(strings.TrimSuffix(base, filepath.Ext(base)))
		}
		opts := client.DatasetOptions{Header: *header}
		if *columns != "" {
			opts.Columns = strings.Split(*columns, ",")
		}
		if *kinds != "" {
			opts.Kinds = map[string]string{}
			for _, pair := range strings.Split(*kinds, ",") {
				k, v, ok := strings.Cut(pair, ":")
				if !ok {
					return fmt.Errorf("datasets add: --kinds entry %q: want column:kind", pair)
				}
				opts.Kinds[k] = v
			}
		}
		if *missing != "" {
			opts.Missing = strings.Split(*missing, ",")
		}
		d, err := cf.client().AddDataset(ctx, *name, f, opts)
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(stdout, d)
		}
		fmt.Fprintf(stdout, "dataset %s version %d (id %s): %d rows, sha256 %s\n", d.Name, d.Version, d.ID, d.Rows, d.SHA256)
		return printSchema(stdout, d.Schema)
	case "list":
		if _, err := parseInterspersed(fs, args); err != nil {
			return err
		}
		ds, err := cf.client().Datasets(ctx)
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(stdout, ds)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tID\tROWS\tCOLUMNS\tSHA256\tCREATED")
		for _, d := range ds {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%.12s\t%s\n", d.Name, d.Version, d.ID, d.Rows, len(d.Schema.Columns), d.SHA256, d.CreatedAt.Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	case "show":
		pos, err := parseInterspersed(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("datasets show: want one REF (id, name or name@version)")
		}
		d, err := cf.client().Dataset(ctx, pos[0])
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(stdout, d)
		}
		fmt.Fprintf(stdout, "dataset %s version %d (id %s): %d rows, %d bytes, sha256 %s, stored at %s\n", d.Name, d.Version, d.ID, d.Rows, d.Bytes, d.SHA256, d.Location)
		return printSchema(stdout, d.Schema)
	default:
		return fmt.Errorf("datasets: unknown subcommand %q: want add, list or show", sub)
	}
}

func printSchema(w io.Writer, s pulse.Schema) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COLUMN\tKIND\tMISSING\tCATEGORIES")
	for _, c := range s.Columns {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", c.Name, c.Kind, c.Missing, strings.Join(c.Categories, " "))
	}
	return tw.Flush()
}

// paramFlag collects repeated --param key=value flags; values are JSON when they parse as JSON.
type paramFlag map[string]any

func (p paramFlag) String() string { return "" }

func (p paramFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	var x any
	if json.Unmarshal([]byte(v), &x) == nil {
		p[k] = x
	} else {
		p[k] = v
	}
	return nil
}

func runTrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("train", stderr)
	model := fs.String("model", "", "model name (required)")
	dataset := fs.String("dataset", "", "dataset id, name or name@version (required)")
	target := fs.String("target", "", `target expression, e.g. "num > 0" (required)`)
	algorithm := fs.String("algorithm", "logreg", "learning algorithm")
	params := paramFlag{}
	fs.Var(params, "param", "algorithm parameter key=value (repeatable), e.g. --param C=0.5")
	features := fs.String("features", "", "comma-separated feature columns (default: all but the target's)")
	seed := fs.Uint64("seed", 0, "random seed for splits")
	holdout := fs.Float64("holdout", 0.2, "fraction of rows held out for evaluation")
	folds := fs.Int("cv-folds", 10, "stratified cross-validation folds on the training split")
	async := fs.Bool("async", false, "enqueue the training job and print its id instead of waiting")
	if _, err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if *model == "" || *dataset == "" || *target == "" {
		return fmt.Errorf("train: --model, --dataset and --target are required")
	}
	req := client.TrainRequest{Dataset: *dataset, Target: *target, Algorithm: *algorithm, Seed: *seed, Holdout: holdout, CVFolds: *folds}
	if len(params) > 0 {
		req.Params = params
	}
	if *features != "" {
		req.Features = strings.Split(*features, ",")
	}
	if *async {
		j, err := cf.client().TrainAsync(ctx, *model, req)
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(stdout, j)
		}
		fmt.Fprintf(stdout, "job %d enqueued: follow it with `pulse jobs show %d`\n", j.ID, j.ID)
		return nil
	}
	v, err := cf.client().Train(ctx, *model, req)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, v)
	}
	return printVersion(stdout, v)
}

func printVersion(w io.Writer, v *pulse.ModelVersion) error {
	fmt.Fprintf(w, "model %s version %d (%s), aliases [%s]\n", v.Model, v.Version, v.Algorithm, strings.Join(v.Aliases, " "))
	l := v.Lineage
	fmt.Fprintf(w, "trained %s by %s on dataset %s (%s, sha256 %.12s), target %q, seed %d: %d training rows, %d holdout rows, %.0f ms\n",
		l.TrainedAt.Format("2006-01-02 15:04:05"), l.Trigger, l.DatasetName, l.DatasetID, l.DatasetSHA256, l.Target, l.Seed, l.TrainingRows, l.HoldoutRows, l.DurationMS)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVALUATION\tACCURACY\tROC AUC\tLOG LOSS\tBRIER\tPRECISION\tRECALL\tF1")
	if h := v.Metrics.Holdout; h != nil {
		fmt.Fprintf(tw, "holdout (n=%d)\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\n", h.N, h.Accuracy, h.ROCAUC, h.LogLoss, h.Brier, h.Precision, h.Recall, h.F1)
	}
	if c := v.Metrics.CV; c != nil {
		fmt.Fprintf(tw, "%d-fold CV (mean ± sd)\t%.3f ± %.3f\t%.3f ± %.3f\t%.3f ± %.3f\t%.3f ± %.3f\t%.3f ± %.3f\t%.3f ± %.3f\t%.3f ± %.3f\n", c.Folds,
			c.Accuracy, c.SD.Accuracy, c.ROCAUC, c.SD.ROCAUC, c.LogLoss, c.SD.LogLoss, c.Brier, c.SD.Brier, c.Precision, c.SD.Precision, c.Recall, c.SD.Recall, c.F1, c.SD.F1)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if h := v.Metrics.Holdout; h != nil {
		fmt.Fprintf(w, "holdout confusion at threshold %g: tp=%d fp=%d tn=%d fn=%d\n", h.Threshold, h.Confusion.TP, h.Confusion.FP, h.Confusion.TN, h.Confusion.FN)
	}
	return nil
}

func runModels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("models: want a subcommand: list or show")
	}
	sub, args := args[0], args[1:]
	fs, cf := newClientFlags("models "+sub, stderr)
	switch sub {
	case "list":
		if _, err := parseInterspersed(fs, args); err != nil {
			return err
		}
		ms, err := cf.client().Models(ctx)
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(stdout, ms)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MODEL\tLATEST\tALIASES\tCREATED")
		for _, m := range ms {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", m.Name, m.LatestVersion, formatAliases(m.Aliases), m.CreatedAt.Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	case "show":
		version := fs.Int("version", 0, "show this version in full")
		pos, err := parseInterspersed(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("models show: want one MODEL")
		}
		c := cf.client()
		if *version > 0 {
			v, err := c.Version(ctx, pos[0], *version)
			if err != nil {
				return err
			}
			if cf.json {
				return printJSON(stdout, v)
			}
			return printVersion(stdout, v)
		}
		m, err := c.Model(ctx, pos[0])
		if err != nil {
			return err
		}
		vs, err := c.Versions(ctx, pos[0])
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(stdout, map[string]any{"model": m, "versions": vs})
		}
		fmt.Fprintf(stdout, "model %s, aliases %s\n", m.Name, formatAliases(m.Aliases))
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tALGORITHM\tALIASES\tHOLDOUT AUC\tCV AUC\tDATASET\tTRIGGER\tCREATED")
		for _, v := range vs {
			hauc, cvauc := "-", "-"
			if v.Metrics.Holdout != nil {
				hauc = strconv.FormatFloat(v.Metrics.Holdout.ROCAUC, 'f', 3, 64)
			}
			if v.Metrics.CV != nil {
				cvauc = strconv.FormatFloat(v.Metrics.CV.ROCAUC, 'f', 3, 64)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Version, v.Algorithm, strings.Join(v.Aliases, ","), hauc, cvauc, v.Lineage.DatasetName, v.Lineage.Trigger, v.CreatedAt.Format("2006-01-02 15:04:05"))
		}
		return tw.Flush()
	default:
		return fmt.Errorf("models: unknown subcommand %q: want list or show", sub)
	}
}

func formatAliases(a map[string]int) string {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, a[k])
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func runAlias(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("alias", stderr)
	del := fs.Bool("delete", false, "remove the alias instead of moving it")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	c := cf.client()
	if *del {
		if len(pos) != 2 {
			return fmt.Errorf("alias --delete: want MODEL ALIAS")
		}
		if err := c.DeleteAlias(ctx, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "alias %s of %s removed\n", pos[1], pos[0])
		return nil
	}
	if len(pos) != 3 {
		return fmt.Errorf("alias: want MODEL ALIAS VERSION")
	}
	version, err := strconv.Atoi(pos[2])
	if err != nil || version < 1 {
		return fmt.Errorf("alias: VERSION %q: want a positive integer", pos[2])
	}
	prev, err := c.SetAlias(ctx, pos[0], pos[1], version)
	if err != nil {
		return err
	}
	if prev > 0 {
		fmt.Fprintf(stdout, "%s %s: version %d -> %d\n", pos[0], pos[1], prev, version)
	} else {
		fmt.Fprintf(stdout, "%s %s: version %d\n", pos[0], pos[1], version)
	}
	return nil
}

func runPredict(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("predict", stderr)
	version := fs.Int("version", 0, "score with this version")
	alias := fs.String("alias", "", "score with the version this alias points at (default champion)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return fmt.Errorf("predict: want MODEL [FILE|-]")
	}
	in := stdin
	if len(pos) == 2 && pos[1] != "-" {
		f, err := os.Open(pos[1])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	body, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	out, err := cf.client().Predict(ctx, pos[0], *version, *alias, body)
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}
