package http

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/cloudmedical/pulse/internal/jobs"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
)

// trainJob enqueues a training job. Without wait it answers 202 with the job; with wait it
// answers as synchronous training did: 201 with the version, or the job's problem.
func (s *Server) trainJob(w http.ResponseWriter, r *http.Request, model string, req registry.TrainRequest, wait bool) {
	ctx := r.Context()
	j, _, err := s.cfg.Jobs.Enqueue(ctx, model, req, jobs.EnqueueOptions{
		Trigger:     req.Trigger,
		RequestedBy: "http request " + requestID(ctx),
	})
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if !wait {
		writeJob(w, http.StatusAccepted, j)
		return
	}
	done, err := s.cfg.Jobs.Wait(ctx, j.ID)
	if ctx.Err() != nil {
		// The client went away; the job goes on.
		s.log.InfoContext(ctx, "client stopped waiting for its training job", "job", j.ID, "request_id", requestID(ctx))
		return
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	switch {
	case done.Version > 0:
		v, err := s.cfg.Registry.Version(ctx, done.Model, done.Version)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		w.Header().Set("Location", fmt.Sprintf("/v1/models/%s/versions/%d", v.Model, v.Version))
		writeJSON(w, http.StatusCreated, v)
	case done.Problem != nil:
		writeError(w, r, s.log, done.Problem.Err())
	case done.Finished():
		writeError(w, r, s.log, pulse.Errorf(pulse.ECONFLICT, "job %d was %s before it produced a version", done.ID, done.State))
	default:
		// An attempt failed on an infrastructure error and the job will run again: say so
		// rather than hold the request through River's backoff.
		writeJob(w, http.StatusAccepted, done)
	}
}

func writeJob(w http.ResponseWriter, status int, j *jobs.Job) {
	w.Header().Set("Location", fmt.Sprintf("/v1/jobs/%d", j.ID))
	writeJSON(w, status, j)
}

// jobsService returns the job service, or a problem when this server runs without one.
func (s *Server) jobsService() (*jobs.Service, error) {
	if s.cfg.Jobs == nil {
		return nil, pulse.Errorf(pulse.EUNAVAILABLE, "this server runs without a job queue")
	}
	return s.cfg.Jobs, nil
}

func pathJobID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, pulse.FieldErrorf(pulse.EINVALID, "id", "job id %q: want a positive integer", r.PathValue("id"))
	}
	return id, nil
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	js, err := s.jobsService()
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	q := r.URL.Query()
	f := jobs.Filter{State: q.Get("state"), Model: q.Get("model"), Kind: q.Get("kind")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			writeError(w, r, s.log, pulse.FieldErrorf(pulse.EINVALID, "limit", "limit %q: want an integer from 1 to 1000", l))
			return
		}
		f.Limit = n
	}
	list, err := js.List(r.Context(), f)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": list})
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	s.jobAction(w, r, (*jobs.Service).Get)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	s.jobAction(w, r, (*jobs.Service).Cancel)
}

func (s *Server) jobAction(w http.ResponseWriter, r *http.Request, act func(*jobs.Service, context.Context, int64) (*jobs.Job, error)) {
	js, err := s.jobsService()
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	id, err := pathJobID(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	j, err := act(js, r.Context(), id)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// queryBool reads a boolean query parameter; absent is false.
func queryBool(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, pulse.FieldErrorf(pulse.EINVALID, name, "query parameter %s %q: want true or false", name, v)
	}
	return b, nil
}

// scoreJob enqueues a score job: a CSV file of the lake scored by a model version, shard by
// shard, by the workers. It answers 202 with the job.
func (s *Server) scoreJob(w http.ResponseWriter, r *http.Request) {
	js, err := s.jobsService()
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	var req jobs.ScoreRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	ctx := r.Context()
	j, _, err := js.EnqueueScore(ctx, r.PathValue("model"), req, jobs.EnqueueOptions{
		RequestedBy: "http request " + requestID(ctx),
	})
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJob(w, http.StatusAccepted, j)
}
