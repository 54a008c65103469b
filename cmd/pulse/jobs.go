package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/cloudmedical/pulse/internal/client"
)

// runJobs runs `pulse jobs list|show ID|cancel ID`.
func runJobs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("jobs: want a subcommand: list, show ID or cancel ID")
	}
	sub, args := args[0], args[1:]
	fs, cf := newClientFlags("jobs "+sub, stderr)
	switch sub {
	case "list":
		var f client.JobFilter
		fs.StringVar(&f.State, "state", "", "only jobs in this state: available, running, completed, retryable, cancelled, discarded")
		fs.StringVar(&f.Model, "model", "", "only jobs of this model")
		fs.StringVar(&f.Kind, "kind", "", "only jobs of this kind (train)")
		fs.IntVar(&f.Limit, "limit", 50, "at most this many jobs, newest first")
		pos, err := parseInterspersed(fs, args)
		if err != nil {
			return err
		}
		if len(pos) > 0 {
			return fmt.Errorf("jobs list: unexpected arguments %q", pos)
		}
		js, err := cf.client().Jobs(ctx, f)
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(stdout, js)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tMODEL\tSTATE\tATTEMPT\tCREATED\tPROGRESS")
		for _, j := range js {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.ID, j.Kind, j.Model, j.State, j.Attempt, j.MaxAttempts,
				j.CreatedAt.Format("2006-01-02 15:04:05"), j.Progress)
		}
		return tw.Flush()
	case "show", "cancel":
		pos, err := parseInterspersed(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return fmt.Errorf("jobs %s: want one job id", sub)
		}
		id, err := strconv.ParseInt(pos[0], 10, 64)
		if err != nil || id < 1 {
			return fmt.Errorf("jobs %s: job id %q: want a positive integer", sub, pos[0])
		}
		c := cf.client()
		var j *client.Job
		if sub == "show" {
			j, err = c.Job(ctx, id)
		} else {
			j, err = c.CancelJob(ctx, id)
		}
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(stdout, j)
		}
		printJob(stdout, j)
		return nil
	default:
		return fmt.Errorf("jobs: unknown subcommand %q: want list, show or cancel", sub)
	}
}

func printJob(w io.Writer, j *client.Job) {
	fmt.Fprintf(w, "job %d (%s", j.ID, j.Kind)
	if j.Model != "" {
		fmt.Fprintf(w, " of model %s", j.Model)
	}
	fmt.Fprintf(w, "): %s, attempt %d of %d\n", j.State, j.Attempt, j.MaxAttempts)
	fmt.Fprintf(w, "progress: %s\n", j.Progress)
	fmt.Fprintf(w, "created %s", j.CreatedAt.Format("2006-01-02 15:04:05"))
	if j.Trigger != "" {
		fmt.Fprintf(w, " by %s", j.Trigger)
	}
	if j.EventID != "" {
		fmt.Fprintf(w, " (event %s)", j.EventID)
	}
	fmt.Fprintln(w)
	if j.FinalizedAt != nil {
		fmt.Fprintf(w, "finished %s\n", j.FinalizedAt.Format("2006-01-02 15:04:05"))
	}
	if j.Version > 0 {
		fmt.Fprintf(w, "produced: model %s version %d (%s)\n", j.Model, j.Version, j.VersionURL)
	}
	if p := j.Problem; p != nil {
		fmt.Fprintf(w, "problem (%s): %s\n", p.Code, p.Message)
	}
	for _, e := range j.Errors {
		fmt.Fprintf(w, "attempt %d failed at %s: %s\n", e.Attempt, e.At.Format("2006-01-02 15:04:05"), e.Error)
	}
	for _, l := range j.Logs {
		fmt.Fprintf(w, "log of attempt %d:\n", l.Attempt)
		for _, line := range strings.Split(strings.TrimRight(l.Log, "\n"), "\n") {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
}
