// Command pulse is Pulse's single binary: `pulse serve` runs the platform, the other
// subcommands talk to a running server over HTTP.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `Pulse: train, version, serve and evaluate machine-learning models.

Usage:
  pulse serve [flags]                      run the platform (embedded defaults: nothing to install)
  pulse datasets add FILE [flags]          register a CSV file as a dataset
  pulse datasets list | show REF           list datasets, show one (id, name or name@version)
  pulse worker [--data-dir DIR | --database-url URL] [--concurrency N]
                                           work training jobs (no HTTP) beside a pulse serve
  pulse train --model M --dataset D --target T [flags]
                                           train a new model version (waits; --async prints the job)
  pulse jobs list | show ID | cancel ID    list, inspect and cancel training jobs
  pulse models list | show MODEL [--version N]
  pulse alias MODEL ALIAS VERSION          point an alias (champion, challenger, ...) at a version
  pulse alias --delete MODEL ALIAS         remove an alias
  pulse predict MODEL [--version N | --alias A] [FILE|-]
                                           score JSON features read from FILE or stdin
  pulse export --dialect postgres|sqlite|duckdb (--model M [--version N | --alias A] | --artifact FILE)
                                           write a model version as SQL: a view that scores a table in place
  pulse score (--model M [--version N | --alias A] | --artifact FILE) --input FILE|- [--output FILE|-]
                                           score a CSV file locally, streaming (CSV or Parquet out)
  pulse feedback --input FILE.jsonl|FILE.csv|-
                                           send ground truth (prediction_id, label, observed_at) for earlier predictions
  pulse policy set --model M [FILE|-]      store a new version of a model's policy (JSON, or YAML for .yaml/.yml)
  pulse policy get --model M [--version N] | history --model M
  pulse live --model M [--version N]       live metrics, drift and shadow comparison of a version (default the champion)
  pulse events --model M [--action A]      a model's audit trail: its policy's decisions, newest first
  pulse version                            print the version

Client commands talk to --server (env PULSE_SERVER, default http://127.0.0.1:8080).
Run 'pulse COMMAND -h' for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pulse:", err)
		os.Exit(1)
	}
}

// run dispatches to a subcommand.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		m := NewServeMain(stdout, stderr)
		if err := m.ParseFlags(rest); err != nil {
			return err
		}
		return m.Run(ctx)
	case "worker":
		m := NewWorkerMain(stderr)
		if err := m.ParseFlags(rest); err != nil {
			return err
		}
		return m.Run(ctx)
	case "jobs":
		return runJobs(ctx, rest, stdout, stderr)
	case "datasets":
		return runDatasets(ctx, rest, stdout, stderr)
	case "train":
		return runTrain(ctx, rest, stdout, stderr)
	case "models":
		return runModels(ctx, rest, stdout, stderr)
	case "alias":
		return runAlias(ctx, rest, stdout, stderr)
	case "predict":
		return runPredict(ctx, rest, stdin, stdout, stderr)
	case "export":
		return runExport(ctx, rest, stdout, stderr)
	case "score":
		return runScore(ctx, rest, stdin, stdout, stderr)
	case "feedback":
		return runFeedback(ctx, rest, stdin, stdout, stderr)
	case "policy":
		return runPolicy(ctx, rest, stdin, stdout, stderr)
	case "live":
		return runLive(ctx, rest, stdout, stderr)
	case "events":
		return runEvents(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "pulse %s (commit %s)\n", Version, gitCommit())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// envOr returns the environment variable's value, or def when it is unset or empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
