package jobs

import (
	"context"
	"errors"
	"log/slog"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverlog"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
)

// trainWorker works train jobs by calling the registry.
type trainWorker struct {
	river.WorkerDefaults[TrainArgs]
	svc *Service
}

// permanent reports whether an error of this code will happen again however often the job
// is retried: the request itself is wrong.
func permanent(code string) bool {
	switch code {
	case pulse.EINVALID, pulse.EUNPROCESSABLE, pulse.ENOTFOUND, pulse.ETOOLARGE:
		return true
	}
	return false
}

func (w *trainWorker) Work(ctx context.Context, job *river.Job[TrainArgs]) error {
	jl, ok := riverlog.LoggerSafely(ctx)
	if !ok {
		jl = slog.New(slog.DiscardHandler)
	}
	a := job.Args
	req := a.Request
	req.Trigger = a.Trigger
	req.JobID = job.ID // a retried attempt finds the version an earlier one registered
	jl.Info("training", "model", a.Model, "dataset", req.Dataset, "target", req.Target, "algorithm", req.Algorithm, "attempt", job.Attempt)
	n := w.svc.cfg.Notifier
	if n != nil {
		n.JobStarted(ctx, job.ID, KindTrain, job.Attempt, a.Model)
	}
	out, err := w.work(ctx, jl, job, req)
	if n != nil {
		switch {
		case err == nil:
			n.JobSucceeded(ctx, job.ID, KindTrain, job.Attempt, a.Model, out)
		default:
			final := job.Attempt >= job.MaxAttempts || ctx.Err() != nil || permanent(pulse.ErrorCode(err))
			n.JobFailed(ctx, job.ID, KindTrain, job.Attempt, a.Model, final, pulse.ErrorMessage(err))
		}
	}
	return err
}

// work trains and records the outcome; it returns the job's output (the version trained and
// the gate's decision).
func (w *trainWorker) work(ctx context.Context, jl *slog.Logger, job *river.Job[TrainArgs], req registry.TrainRequest) (*output, error) {
	a := job.Args
	v, err := w.svc.cfg.Registry.Train(ctx, a.Model, req)
	if err == nil {
		jl.Info("trained", "model", v.Model, "version", v.Version, "duration_ms", v.Lineage.DurationMS)
		out := output{Model: v.Model, Version: v.Version}
		if a.Gate != nil {
			// The version exists: record it even if the gate fails, so that a retry (which
			// trains again) is visible as such.
			d, gerr := applyGate(context.WithoutCancel(ctx), w.svc.cfg.Registry, v, a.Gate)
			if gerr != nil {
				jl.Error("gate failed", "err", gerr)
				_ = river.RecordOutput(ctx, out)
				return nil, gerr
			}
			out.Gate = d
			jl.Info("gate", "alias", d.Alias, "metric", d.Metric, "source", d.Source, "value", d.Value,
				"champion_version", d.ChampionVersion, "champion_value", d.ChampionValue, "min_gain", a.Gate.MinGain)
		}
		w.svc.log.Info("train job completed", "job", job.ID, "model", v.Model, "version", v.Version)
		return &out, river.RecordOutput(ctx, out)
	}
	if ctx.Err() != nil {
		// Cancelled (River then marks the job cancelled) or timed out (retried).
		jl.Warn("stopped", "reason", context.Cause(ctx).Error())
		return nil, err
	}
	code := pulse.ErrorCode(err)
	if permanent(code) {
		jl.Warn("refused; not retrying", "code", code, "err", err)
		var pe *pulse.Error
		p := &Problem{Code: code, Message: pulse.ErrorMessage(err)}
		if errors.As(err, &pe) {
			p.Field, p.Row = pe.Field, pe.Row
		}
		if rerr := river.RecordOutput(ctx, output{Problem: p}); rerr != nil {
			return nil, rerr
		}
		return nil, river.JobCancel(err)
	}
	jl.Error("failed", "attempt", job.Attempt, "max_attempts", job.MaxAttempts, "err", err)
	w.svc.log.Warn("train job attempt failed", "job", job.ID, "attempt", job.Attempt, "err", err)
	if job.Attempt >= job.MaxAttempts {
		_ = river.RecordOutput(ctx, output{Problem: &Problem{Code: code, Message: pulse.ErrorMessage(err)}})
	}
	return nil, err
}
