// Package client is a Go client for Pulse's REST API. The pulse command line uses it, and so
// can any Go program that trains, registers or scores models on a Pulse server.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Client talks to one Pulse server.
type Client struct {
	BaseURL string
	HTTP    *http.Client
	// Trigger, when set, is sent as X-Pulse-Trigger and recorded in the lineage of versions
	// this client trains (the command line sends "cli").
	Trigger string
}

// New returns a client for the server at baseURL ("http://127.0.0.1:8080").
func New(baseURL string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: &http.Client{Timeout: 10 * time.Minute}}
}

// Error is a problem (RFC 9457) answered by the server.
type Error struct {
	Status int
	Code   string `json:"code"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
	Row    int    `json:"row"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Title, e.Detail)
}

func (c *Client) do(ctx context.Context, method, path string, contentType string, body io.Reader, out any) error {
	_, err := c.send(ctx, method, path, contentType, body, out)
	return err
}

// send makes a request, decodes a successful answer into out (*[]byte takes it raw) and
// returns its status; an error status becomes an *Error.
func (c *Client) send(ctx context.Context, method, path string, contentType string, body io.Reader, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Trigger != "" {
		req.Header.Set("X-Pulse-Trigger", c.Trigger)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("client: read response: %w", err)
	}
	if resp.StatusCode >= 400 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Detail == "" {
			e.Title = http.StatusText(resp.StatusCode)
			e.Detail = strings.TrimSpace(string(data))
		}
		return 0, e
	}
	switch o := out.(type) {
	case nil:
		return resp.StatusCode, nil
	case *[]byte:
		*o = data
		return resp.StatusCode, nil
	default:
		if err := json.Unmarshal(data, out); err != nil {
			return 0, fmt.Errorf("client: decode response of %s %s: %w", method, path, err)
		}
		return resp.StatusCode, nil
	}
}

func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	_, err := c.doStatus(ctx, method, path, in, out)
	return err
}

// doStatus is doJSON that also returns the (successful) status.
func (c *Client) doStatus(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("client: %w", err)
		}
		body = bytes.NewReader(b)
	}
	return c.send(ctx, method, path, "application/json", body, out)
}

// DatasetOptions declare what schema inference cannot know about a CSV file.
type DatasetOptions struct {
	Header  string            // auto, true or false
	Columns []string          // names, required for a file without a header
	Kinds   map[string]string // column -> numeric, categorical or binary
	Missing []string          // missing-value markers (default "", "?", "NA")
}

// AddDataset uploads a CSV file as a new dataset (or finds the same content already
// registered under name).
func (c *Client) AddDataset(ctx context.Context, name string, csv io.Reader, opts DatasetOptions) (*pulse.Dataset, error) {
	q := url.Values{"name": {name}}
	if opts.Header != "" {
		q.Set("header", opts.Header)
	}
	if len(opts.Columns) > 0 {
		q.Set("columns", strings.Join(opts.Columns, ","))
	}
	if len(opts.Kinds) > 0 {
		var kinds []string
		for k, v := range opts.Kinds {
			kinds = append(kinds, k+":"+v)
		}
		q.Set("kinds", strings.Join(kinds, ","))
	}
	if opts.Missing != nil {
		q.Set("missing", strings.Join(opts.Missing, ","))
	}
	var d pulse.Dataset
	return &d, c.do(ctx, http.MethodPost, "/v1/datasets?"+q.Encode(), "text/csv", csv, &d)
}

// Datasets lists every dataset version.
func (c *Client) Datasets(ctx context.Context) ([]*pulse.Dataset, error) {
	var out struct {
		Datasets []*pulse.Dataset `json:"datasets"`
	}
	return out.Datasets, c.doJSON(ctx, http.MethodGet, "/v1/datasets", nil, &out)
}

// Dataset returns a dataset by id, name or name@version.
func (c *Client) Dataset(ctx context.Context, ref string) (*pulse.Dataset, error) {
	var d pulse.Dataset
	return &d, c.doJSON(ctx, http.MethodGet, "/v1/datasets/"+url.PathEscape(ref), nil, &d)
}

// TrainRequest asks for a new version; see the API documentation for each field.
type TrainRequest struct {
	Dataset   string         `json:"dataset"`
	Target    string         `json:"target"`
	Algorithm string         `json:"algorithm,omitempty"`
	Params    map[string]any `json:"params,omitempty"`
	Features  []string       `json:"features,omitempty"`
	Seed      uint64         `json:"seed,omitempty"`
	Holdout   *float64       `json:"holdout,omitempty"`
	CVFolds   int            `json:"cv_folds,omitempty"`
	// Search is a hyperparameter search, e.g. {"method":"grid","grid":{"C":[0.01,0.1,1]}}.
	Search map[string]any `json:"search,omitempty"`
}

// Train trains a new version of model and waits for it. A server that queues training runs
// it as a job and answers when the job is done; if an attempt fails on an infrastructure
// error and the job will be retried, Train returns a *JobPendingError naming the job.
func (c *Client) Train(ctx context.Context, model string, req TrainRequest) (*pulse.ModelVersion, error) {
	var raw []byte
	status, err := c.doStatus(ctx, http.MethodPost, "/v1/models/"+url.PathEscape(model)+"/train?wait=true", req, &raw)
	if err != nil {
		return nil, err
	}
	if status == http.StatusAccepted {
		var j Job
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("client: decode job: %w", err)
		}
		return nil, &JobPendingError{Job: &j}
	}
	var v pulse.ModelVersion
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("client: decode version: %w", err)
	}
	return &v, nil
}

// JobPendingError says that a training job has not finished: an attempt failed and it will
// run again.
type JobPendingError struct {
	Job *Job
}

func (e *JobPendingError) Error() string {
	msg := fmt.Sprintf("training job %d is %s", e.Job.ID, e.Job.State)
	if n := len(e.Job.Errors); n > 0 {
		msg += fmt.Sprintf(" after attempt %d failed: %s", e.Job.Errors[n-1].Attempt, e.Job.Errors[n-1].Error)
	}
	return msg + fmt.Sprintf("; follow it with `pulse jobs show %d`", e.Job.ID)
}

// TrainAsync enqueues the training of a new version of model and returns the job at once.
func (c *Client) TrainAsync(ctx context.Context, model string, req TrainRequest) (*Job, error) {
	var j Job
	status, err := c.doStatus(ctx, http.MethodPost, "/v1/models/"+url.PathEscape(model)+"/train", req, &j)
	if err != nil {
		return nil, err
	}
	if status != http.StatusAccepted {
		return nil, fmt.Errorf("client: train: got status %d, want 202 (does this server queue training?)", status)
	}
	return &j, nil
}

// Job is a queued job (training) as the server shows it.
type Job struct {
	ID          int64          `json:"id"`
	Kind        string         `json:"kind"`
	State       string         `json:"state"`
	Model       string         `json:"model,omitempty"`
	Trigger     string         `json:"trigger,omitempty"`
	RequestedBy string         `json:"requested_by,omitempty"`
	EventID     string         `json:"event_id,omitempty"`
	Attempt     int            `json:"attempt"`
	MaxAttempts int            `json:"max_attempts"`
	CreatedAt   time.Time      `json:"created_at"`
	ScheduledAt time.Time      `json:"scheduled_at"`
	AttemptedAt *time.Time     `json:"attempted_at,omitempty"`
	AttemptedBy []string       `json:"attempted_by"`
	FinalizedAt *time.Time     `json:"finalized_at,omitempty"`
	Request     map[string]any `json:"request,omitempty"`
	Errors      []struct {
		Attempt int       `json:"attempt"`
		At      time.Time `json:"at"`
		Error   string    `json:"error"`
	} `json:"errors"`
	Logs []struct {
		Attempt int    `json:"attempt"`
		Log     string `json:"log"`
	} `json:"logs"`
	Progress   string `json:"progress"`
	Version    int    `json:"version,omitempty"`
	VersionURL string `json:"version_url,omitempty"`
	Problem    *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
		Row     int    `json:"row,omitempty"`
	} `json:"problem,omitempty"`
}

// JobFilter selects jobs to list; zero fields select all.
type JobFilter struct {
	State, Model, Kind string
	Limit              int
}

// Jobs lists jobs, newest first.
func (c *Client) Jobs(ctx context.Context, f JobFilter) ([]*Job, error) {
	q := url.Values{}
	for k, v := range map[string]string{"state": f.State, "model": f.Model, "kind": f.Kind} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	path := "/v1/jobs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Jobs []*Job `json:"jobs"`
	}
	return out.Jobs, c.doJSON(ctx, http.MethodGet, path, nil, &out)
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, id int64) (*Job, error) {
	var j Job
	return &j, c.doJSON(ctx, http.MethodGet, "/v1/jobs/"+strconv.FormatInt(id, 10), nil, &j)
}

// CancelJob cancels a job and returns it as it is then (a running job ends as cancelled
// shortly after).
func (c *Client) CancelJob(ctx context.Context, id int64) (*Job, error) {
	var j Job
	return &j, c.doJSON(ctx, http.MethodPost, "/v1/jobs/"+strconv.FormatInt(id, 10)+"/cancel", nil, &j)
}

// Models lists every model.
func (c *Client) Models(ctx context.Context) ([]*pulse.Model, error) {
	var out struct {
		Models []*pulse.Model `json:"models"`
	}
	return out.Models, c.doJSON(ctx, http.MethodGet, "/v1/models", nil, &out)
}

// Model returns one model with its aliases.
func (c *Client) Model(ctx context.Context, name string) (*pulse.Model, error) {
	var m pulse.Model
	return &m, c.doJSON(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(name), nil, &m)
}

// Versions lists a model's versions.
func (c *Client) Versions(ctx context.Context, model string) ([]*pulse.ModelVersion, error) {
	var out struct {
		Versions []*pulse.ModelVersion `json:"versions"`
	}
	return out.Versions, c.doJSON(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/versions", nil, &out)
}

// Version returns one version.
func (c *Client) Version(ctx context.Context, model string, version int) (*pulse.ModelVersion, error) {
	var v pulse.ModelVersion
	return &v, c.doJSON(ctx, http.MethodGet, "/v1/models/"+url.PathEscape(model)+"/versions/"+strconv.Itoa(version), nil, &v)
}

// SetAlias points alias at version and returns the version it pointed at before (0 if none).
func (c *Client) SetAlias(ctx context.Context, model, alias string, version int) (int, error) {
	var out struct {
		Previous int `json:"previous_version"`
	}
	err := c.doJSON(ctx, http.MethodPut, "/v1/models/"+url.PathEscape(model)+"/aliases/"+url.PathEscape(alias), map[string]int{"version": version}, &out)
	return out.Previous, err
}

// DeleteAlias removes an alias.
func (c *Client) DeleteAlias(ctx context.Context, model, alias string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/models/"+url.PathEscape(model)+"/aliases/"+url.PathEscape(alias), nil, nil)
}

// Predict scores a JSON body (one object of features, or {"instances": [...]}) and returns the
// response body. version 0 and alias "" mean the champion.
func (c *Client) Predict(ctx context.Context, model string, version int, alias string, body []byte) ([]byte, error) {
	q := url.Values{}
	if version > 0 {
		q.Set("version", strconv.Itoa(version))
	}
	if alias != "" {
		q.Set("alias", alias)
	}
	path := "/v1/models/" + url.PathEscape(model) + "/predict"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out []byte
	return out, c.do(ctx, http.MethodPost, path, "application/json", bytes.NewReader(body), &out)
}
