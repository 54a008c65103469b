package http

import (
	"mime"
	"net/http"
	"strconv"

	"github.com/cloudmedical/pulse/internal/evaluator"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Continuous evaluation: live metrics and drift of a version, the model's versioned policy,
// and its audit trail. Config.Evaluation serves them; without it they answer 503.

// evaluation returns the evaluator, or a problem when this server runs without one.
func (s *Server) evaluation() (*evaluator.Evaluator, error) {
	if s.cfg.Evaluation == nil {
		return nil, pulse.Errorf(pulse.EUNAVAILABLE, "continuous evaluation is off on this server (pulse serve --evaluate=false)")
	}
	return s.cfg.Evaluation, nil
}

// getLive answers a version's live metrics, drift, shadow comparison and policy thresholds.
func (s *Server) getLive(w http.ResponseWriter, r *http.Request) {
	ev, err := s.evaluation()
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	v, err := pathVersion(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	rep, err := ev.Live(r.Context(), r.PathValue("model"), v)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// putPolicy stores a new version of a model's policy: JSON, or YAML with Content-Type
// application/yaml.
func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request) {
	ev, err := s.evaluation()
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	yaml := false
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			writeError(w, r, s.log, pulse.Errorf(pulse.EINVALID, "Content-Type %q: want application/json or application/yaml", ct))
			return
		case mt == "application/yaml" || mt == "application/x-yaml" || mt == "text/yaml":
			yaml = true
		case mt != "application/json":
			writeError(w, r, s.log, pulse.Errorf(pulse.EINVALID, "Content-Type %q: want application/json or application/yaml", ct))
			return
		}
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	by := "http request " + requestID(r.Context())
	if t := r.Header.Get("X-Pulse-Trigger"); t != "" {
		by = t + " (" + by + ")"
	}
	p, err := ev.PutPolicy(r.Context(), r.PathValue("model"), body, yaml, by)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.Header().Set("Location", "/v1/models/"+p.Model+"/policy?version="+strconv.Itoa(p.Version))
	writeJSON(w, http.StatusOK, p)
}

// getPolicy answers the current policy, or the version ?version=N.
func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) {
	ev, err := s.evaluation()
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	version := 0
	if q := r.URL.Query().Get("version"); q != "" {
		if version, err = strconv.Atoi(q); err != nil || version < 1 {
			writeError(w, r, s.log, pulse.FieldErrorf(pulse.EINVALID, "version", "version=%q: want a positive integer", q))
			return
		}
	}
	p, err := ev.Policy(r.Context(), r.PathValue("model"), version)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// listPolicies answers every version of a model's policy, newest first.
func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request) {
	ev, err := s.evaluation()
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	ps, err := ev.PolicyHistory(r.Context(), r.PathValue("model"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"policies": ps})
}

// listModelEvents answers a model's audit trail, newest first: ?limit=N (default 100, at
// most 1000), ?before=ID for the next page, ?action=rollback|retrain|promote|none.
func (s *Server) listModelEvents(w http.ResponseWriter, r *http.Request) {
	ev, err := s.evaluation()
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	q := r.URL.Query()
	var dq pulse.DecisionQuery
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"limit", nil}, {"before", &dq.BeforeID}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			writeError(w, r, s.log, pulse.FieldErrorf(pulse.EINVALID, p.name, "%s=%q: want a positive integer", p.name, v))
			return
		}
		if p.dst != nil {
			*p.dst = n
		} else {
			dq.Limit = int(min(n, 1<<30))
		}
	}
	switch a := q.Get("action"); a {
	case "", "rollback", "retrain", "promote", "none":
		dq.Action = a
	default:
		writeError(w, r, s.log, pulse.FieldErrorf(pulse.EINVALID, "action", "action=%q: want rollback, retrain, promote or none", a))
		return
	}
	ds, err := ev.Events(r.Context(), r.PathValue("model"), dq)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": ds})
}
