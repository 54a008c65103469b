package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/serving"
	"github.com/cloudmedical/pulse/internal/tabular"
)

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeError(w, r, s.log, pulse.Errorf(pulse.EUNAVAILABLE, "shutting down"))
		return
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			s.log.WarnContext(r.Context(), "not ready", "err", err)
			writeError(w, r, s.log, pulse.Errorf(pulse.EUNAVAILABLE, "not ready: the metadata store does not answer"))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	writeRawJSON(w, http.StatusOK, openAPI)
}

func (s *Server) asyncapi(w http.ResponseWriter, r *http.Request) {
	if s.cfg.AsyncAPI == nil {
		writeError(w, r, s.log, pulse.Errorf(pulse.ENOTFOUND, "events are off on this server (--kafka-brokers off)"))
		return
	}
	writeRawJSON(w, http.StatusOK, s.cfg.AsyncAPI)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, s.log, pulse.Errorf(pulse.ENOTFOUND, "no route for %s %s", r.Method, r.URL.Path))
}

// readBody reads a bounded request body, turning the limit into a 413.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, pulse.Errorf(pulse.ETOOLARGE, "request body is over the limit of %d bytes", tooLarge.Limit)
	}
	if err != nil {
		return nil, pulse.Errorf(pulse.EINVALID, "read request body: %v", err)
	}
	return b, nil
}

// decodeJSON decodes a JSON request body into v, refusing unknown fields.
func decodeJSON(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return pulse.Errorf(pulse.EUNPROCESSABLE, "request body: got a JSON %s, want an object", te.Value)
			}
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, te.Field, "field %q: got a JSON %s, want %s", te.Field, te.Value, jsonType(te.Type))
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			field, _ := strconv.Unquote(name)
			return pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "field %s is not known here", name)
		}
		return pulse.Errorf(pulse.EINVALID, "request body: %v", err)
	}
	if dec.More() {
		return pulse.Errorf(pulse.EINVALID, "request body: want one JSON object, got more after it")
	}
	return nil
}

// jsonType names the JSON value that decodes into t, for messages to clients (who know JSON,
// not Go types).
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return jsonType(t.Elem())
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another type"
}

// createDataset registers a CSV upload. The body is the CSV itself (text/csv) or a multipart
// form whose "file" part is the CSV. Query parameters declare what inference cannot know:
// header=auto|true|false, columns=a,b,c, kinds=col:categorical,..., missing=?,NA.
func (s *Server) createDataset(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("name")
	opts, err := csvOptions(q)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	body := io.Reader(r.Body)
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case mt == "multipart/form-data":
		part, filename, err := filePart(multipart.NewReader(r.Body, params["boundary"]))
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		defer part.Close()
		body = part
		if name == "" {
			name = datasetNameFromFile(filename)
		}
	case mt == "" || mt == "text/csv" || mt == "text/plain" || mt == "application/octet-stream":
	default:
		writeError(w, r, s.log, pulse.Errorf(pulse.EINVALID, "Content-Type %q: want text/csv or multipart/form-data", mt))
		return
	}
	if name == "" {
		writeError(w, r, s.log, pulse.FieldErrorf(pulse.EINVALID, "name", "query parameter name is required"))
		return
	}
	d, created, err := s.cfg.Registry.RegisterDataset(r.Context(), registry.RegisterDatasetRequest{Name: name, Body: body, Options: opts})
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			err = pulse.Errorf(pulse.ETOOLARGE, "dataset upload is over the limit of %d bytes", tooLarge.Limit)
		}
		writeError(w, r, s.log, err)
		return
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	w.Header().Set("Location", "/v1/datasets/"+d.ID)
	writeJSON(w, status, d)
}

func filePart(mr *multipart.Reader) (*multipart.Part, string, error) {
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil, "", pulse.FieldErrorf(pulse.EINVALID, "file", "multipart body has no \"file\" part")
		}
		if err != nil {
			return nil, "", pulse.Errorf(pulse.EINVALID, "multipart body: %v", err)
		}
		if p.FormName() == "file" {
			return p, p.FileName(), nil
		}
		p.Close()
	}
}

// datasetNameFromFile turns "processed.cleveland.data" into "processed.cleveland".
func datasetNameFromFile(filename string) string {
	if i := strings.LastIndexByte(filename, '/'); i >= 0 {
		filename = filename[i+1:]
	}
	if i := strings.LastIndexByte(filename, '.'); i > 0 {
		filename = filename[:i]
	}
	return strings.ToLower(filename)
}

// csvOptions reads the dataset declaration from query parameters.
func csvOptions(q map[string][]string) (tabular.Options, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	opts := tabular.Options{Header: get("header")}
	switch opts.Header {
	case "", "auto", "true", "false":
	default:
		return opts, pulse.FieldErrorf(pulse.EINVALID, "header", "header=%q: want auto, true or false", opts.Header)
	}
	if c := get("columns"); c != "" {
		for _, name := range strings.Split(c, ",") {
			opts.Columns = append(opts.Columns, strings.TrimSpace(name))
		}
	}
	if k := get("kinds"); k != "" {
		opts.Kinds = map[string]pulse.Kind{}
		for _, pair := range strings.Split(k, ",") {
			col, kind, ok := strings.Cut(pair, ":")
			if !ok || !pulse.Kind(strings.TrimSpace(kind)).Valid() {
				return opts, pulse.FieldErrorf(pulse.EINVALID, "kinds", "kinds entry %q: want column:numeric|categorical|binary", pair)
			}
			opts.Kinds[strings.TrimSpace(col)] = pulse.Kind(strings.TrimSpace(kind))
		}
	}
	if _, ok := q["missing"]; ok {
		opts.MissingMarkers = strings.Split(get("missing"), ",")
	}
	if d := get("delimiter"); d != "" {
		if d == `\t` || d == "tab" {
			d = "\t"
		}
		if len([]rune(d)) != 1 {
			return opts, pulse.FieldErrorf(pulse.EINVALID, "delimiter", "delimiter=%q: want one character", d)
		}
		opts.Delimiter = []rune(d)[0]
	}
	return opts, nil
}

func (s *Server) listDatasets(w http.ResponseWriter, r *http.Request) {
	ds, err := s.cfg.Registry.Datasets(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if ds == nil {
		ds = []*pulse.Dataset{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"datasets": ds})
}

func (s *Server) getDataset(w http.ResponseWriter, r *http.Request) {
	d, err := s.cfg.Registry.Dataset(r.Context(), r.PathValue("dataset"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	ms, err := s.cfg.Registry.Models(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if ms == nil {
		ms = []*pulse.Model{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": ms})
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	m, err := s.cfg.Registry.Model(r.Context(), r.PathValue("model"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request) {
	vs, err := s.cfg.Registry.Versions(r.Context(), r.PathValue("model"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if vs == nil {
		vs = []*pulse.ModelVersion{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": vs})
}

// getOnline answers the state of the model's online follower: 404 when none runs here.
func (s *Server) getOnline(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if s.cfg.Online != nil {
		if st, ok := s.cfg.Online(model); ok {
			writeJSON(w, http.StatusOK, st)
			return
		}
	}
	writeError(w, r, s.log, pulse.Errorf(pulse.ENOTFOUND, "model %q is not followed online by this server (see pulse serve --online)", model))
}

func pathVersion(r *http.Request) (int, error) {
	v, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || v < 1 {
		return 0, pulse.FieldErrorf(pulse.EINVALID, "version", "version %q: want a positive integer", r.PathValue("version"))
	}
	return v, nil
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) {
	n, err := pathVersion(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	v, err := s.cfg.Registry.Version(r.Context(), r.PathValue("model"), n)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) getArtifact(w http.ResponseWriter, r *http.Request) {
	n, err := pathVersion(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	data, v, err := s.cfg.Registry.Artifact(r.Context(), r.PathValue("model"), n)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Digest", "sha-256="+v.ArtifactSHA256)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", fmt.Sprintf("%s-v%d.json", v.Model, v.Version)))
	_, _ = w.Write(data)
}

func (s *Server) train(w http.ResponseWriter, r *http.Request) {
	var req registry.TrainRequest
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	req.Trigger = "api"
	if t := r.Header.Get("X-Pulse-Trigger"); t == "cli" {
		req.Trigger = t
	}
	wait, err := queryBool(r, "wait")
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if s.cfg.Jobs != nil {
		s.trainJob(w, r, r.PathValue("model"), req, wait)
		return
	}
	v, err := s.cfg.Registry.Train(r.Context(), r.PathValue("model"), req)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/v1/models/%s/versions/%d", v.Model, v.Version))
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) setAlias(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Version int `json:"version"`
	}
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if req.Version < 1 {
		writeError(w, r, s.log, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "version", "version: want a positive integer"))
		return
	}
	model, alias := r.PathValue("model"), r.PathValue("alias")
	prev, err := s.cfg.Registry.SetAlias(r.Context(), model, alias, req.Version)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	resp := map[string]any{"model": model, "alias": alias, "version": req.Version}
	if prev > 0 {
		resp["previous_version"] = prev
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) deleteAlias(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Registry.DeleteAlias(r.Context(), r.PathValue("model"), r.PathValue("alias")); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) predict(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := serving.Request{
		Model:     r.PathValue("model"),
		Alias:     q.Get("alias"),
		RequestID: requestID(r.Context()),
	}
	if v := q.Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, r, s.log, pulse.FieldErrorf(pulse.EINVALID, "version", "version=%q: want a positive integer", v))
			return
		}
		if req.Alias != "" {
			writeError(w, r, s.log, pulse.FieldErrorf(pulse.EINVALID, "version", "give version or alias, not both"))
			return
		}
		req.Version = n
	}
	switch q.Get("strict") {
	case "", "false":
	case "true":
		req.Strict = true
	default:
		writeError(w, r, s.log, pulse.FieldErrorf(pulse.EINVALID, "strict", "strict=%q: want true or false", q.Get("strict")))
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	req.Body = body
	out, err := s.cfg.Scorer.Predict(r.Context(), req)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeRawJSON(w, http.StatusOK, out)
}
