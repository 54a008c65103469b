package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/cloudmedical/pulse/internal/feedback"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// Feedback takes ground truth; *feedback.Service implements it.
type Feedback interface {
	Submit(ctx context.Context, items []feedback.Feedback) ([]feedback.Result, error)
}

// feedbackAnswer is the answer to POST /v1/feedback: the counts, and a result for every item
// that was not joined.
type feedbackAnswer struct {
	feedback.Summary
	Results []feedbackResult `json:"results"`
}

type feedbackResult struct {
	Index        int    `json:"index"`
	PredictionID string `json:"prediction_id,omitempty"`
	Status       string `json:"status"`
	Field        string `json:"field,omitempty"`
	Reason       string `json:"reason"`
}

// feedbackItem is one item of the body; a field of the wrong JSON type makes the item
// invalid, not the request.
type feedbackItem struct {
	PredictionID json.RawMessage `json:"prediction_id"`
	Label        json.RawMessage `json:"label"`
	ObservedAt   json.RawMessage `json:"observed_at"`
}

// submitFeedback takes ground truth: one item {prediction_id, label, observed_at}, or
// {"feedback": [items]} with 1 to feedback.MaxItems items. It answers 200 with the counts and
// the items not joined (duplicate, unknown, invalid) with their reasons, once the outcomes
// are durable. A single item that is invalid answers 422 naming the field.
func (s *Server) submitFeedback(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Feedback == nil {
		writeError(w, r, s.log, pulse.Errorf(pulse.EUNAVAILABLE, "feedback is not enabled on this server"))
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	raws, single, err := feedbackItems(body)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	rid := requestID(r.Context())
	results := make([]feedback.Result, len(raws))
	ids := make([]string, len(raws))
	items := make([]feedback.Feedback, 0, len(raws))
	at := make([]int, 0, len(raws)) // the index of each item given to Submit
	for i, raw := range raws {
		f, field, err := decodeFeedbackItem(raw)
		ids[i] = f.PredictionID
		if err != nil {
			results[i] = feedback.Result{Status: feedback.Invalid, Field: field, Reason: err.Error()}
			continue
		}
		f.Source, f.ID = feedback.SourceAPI, rid
		items = append(items, f)
		at = append(at, i)
	}
	submitted, err := s.cfg.Feedback.Submit(r.Context(), items)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	for k, res := range submitted {
		results[at[k]] = res
	}
	if single && results[0].Status == feedback.Invalid {
		writeError(w, r, s.log, pulse.FieldErrorf(pulse.EUNPROCESSABLE, results[0].Field, "%s", results[0].Reason))
		return
	}
	ans := feedbackAnswer{Summary: feedback.Summarize(results), Results: []feedbackResult{}}
	for i, res := range results {
		if res.Status == feedback.Joined {
			continue
		}
		ans.Results = append(ans.Results, feedbackResult{Index: i, PredictionID: ids[i], Status: string(res.Status), Field: res.Field, Reason: res.Reason})
	}
	writeJSON(w, http.StatusOK, ans)
}

// feedbackItems splits the body into its items; single is true for the one-item form.
func feedbackItems(body []byte) (items []json.RawMessage, single bool, err error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, false, pulse.Errorf(pulse.EUNPROCESSABLE, "request body: got a JSON %s, want an object: one {prediction_id, label, observed_at} or {\"feedback\": [...]}", te.Value)
		}
		return nil, false, pulse.Errorf(pulse.EINVALID, "request body: %v", err)
	}
	if top == nil {
		return nil, false, pulse.Errorf(pulse.EUNPROCESSABLE, "request body: got null, want an object: one {prediction_id, label, observed_at} or {\"feedback\": [...]}")
	}
	list, ok := top["feedback"]
	if !ok {
		return []json.RawMessage{body}, true, nil
	}
	if len(top) > 1 {
		keys := make([]string, 0, len(top))
		for k := range top {
			if k != "feedback" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		return nil, false, pulse.FieldErrorf(pulse.EUNPROCESSABLE, keys[0], "field %q beside \"feedback\": send one item, or {\"feedback\": [...]} alone", keys[0])
	}
	if err := json.Unmarshal(list, &items); err != nil || items == nil {
		return nil, false, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "feedback", "field \"feedback\": want an array of 1 to %d items", feedback.MaxItems)
	}
	switch {
	case len(items) == 0:
		return nil, false, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "feedback", "field \"feedback\": got an empty array, want 1 to %d items", feedback.MaxItems)
	case len(items) > feedback.MaxItems:
		return nil, false, pulse.FieldErrorf(pulse.ETOOLARGE, "feedback", "field \"feedback\": got %d items, want at most %d", len(items), feedback.MaxItems)
	}
	return items, false, nil
}

// decodeFeedbackItem reads one item's fields; Submit checks their values. The error names the
// field at fault.
func decodeFeedbackItem(raw json.RawMessage) (feedback.Feedback, string, error) {
	var it feedbackItem
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	strictErr := dec.Decode(&it)
	if strictErr != nil {
		// Read what can be read, to name the item's prediction_id in the result.
		it = feedbackItem{}
		if err := json.Unmarshal(raw, &it); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return feedback.Feedback{}, "", pulse.Errorf(pulse.EUNPROCESSABLE, "item: got a JSON %s, want an object {prediction_id, label, observed_at}", te.Value)
			}
			return feedback.Feedback{}, "", pulse.Errorf(pulse.EUNPROCESSABLE, "item: %v", err)
		}
	}
	var f feedback.Feedback
	f.Label = it.Label
	if len(it.PredictionID) > 0 && string(it.PredictionID) != "null" {
		if err := json.Unmarshal(it.PredictionID, &f.PredictionID); err != nil {
			return f, "prediction_id", pulse.FieldErrorf(pulse.EUNPROCESSABLE, "prediction_id", "prediction_id: got %s, want a string (a UUID)", truncateJSON(it.PredictionID))
		}
	}
	if strictErr != nil {
		if name, ok := strings.CutPrefix(strictErr.Error(), "json: unknown field "); ok {
			field, _ := strconv.Unquote(name)
			return f, field, pulse.FieldErrorf(pulse.EUNPROCESSABLE, field, "field %s is not known here: want prediction_id, label and observed_at", name)
		}
		return f, "", pulse.Errorf(pulse.EUNPROCESSABLE, "item: %v", strictErr)
	}
	if len(it.ObservedAt) > 0 && string(it.ObservedAt) != "null" {
		if err := json.Unmarshal(it.ObservedAt, &f.ObservedAt); err != nil {
			return f, "observed_at", pulse.FieldErrorf(pulse.EUNPROCESSABLE, "observed_at", "observed_at: got %s, want an RFC 3339 time in a string", truncateJSON(it.ObservedAt))
		}
	}
	return f, "", nil
}

func truncateJSON(b json.RawMessage) string {
	if len(b) > 60 {
		return string(b[:60]) + "…"
	}
	return string(b)
}
