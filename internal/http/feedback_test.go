package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/cloudmedical/pulse/internal/feedback"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// fakeFeedback answers by prediction id: "dup" is a duplicate, "unknown" unknown, "bad" has
// an invalid label; every other id is joined. It records what it was given.
type fakeFeedback struct {
	got []feedback.Feedback
	err error
}

func (f *fakeFeedback) Submit(_ context.Context, items []feedback.Feedback) ([]feedback.Result, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.got = append(f.got, items...)
	out := make([]feedback.Result, len(items))
	for i, it := range items {
		switch it.PredictionID {
		case "dup":
			out[i] = feedback.Result{Status: feedback.Duplicate, Reason: "prediction_id: labelled before"}
		case "unknown":
			out[i] = feedback.Result{Status: feedback.Unknown, Reason: "prediction_id: no stored prediction has this id"}
		case "bad":
			out[i] = feedback.Result{Status: feedback.Invalid, Field: "label", Reason: "label: got 2, want 0 or 1"}
		default:
			out[i] = feedback.Result{Status: feedback.Joined, Model: "m", Version: 1, Outcomes: 1}
		}
	}
	return out, nil
}

func TestFeedbackRoute(t *testing.T) {
	fake := &fakeFeedback{}
	ts := newTestServer(t, func(c *Config) { c.Feedback = fake })
	item := func(id string) string {
		return fmt.Sprintf(`{"prediction_id":%q,"label":1,"observed_at":"2026-11-30T09:00:00Z"}`, id)
	}

	rec := ts.do("POST", "/v1/feedback", "application/json", []byte(item("p1")))
	if rec.Code != http.StatusOK {
		t.Fatalf("one item: got %d %s, want 200", rec.Code, rec.Body)
	}
	var ans feedbackAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
		t.Fatal(err)
	}
	if ans.Received != 1 || ans.Joined != 1 || ans.Outcomes != 1 || len(ans.Results) != 0 {
		t.Errorf("one item: got %+v, want one joined and no results", ans)
	}
	if len(fake.got) != 1 || fake.got[0].PredictionID != "p1" || string(fake.got[0].Label) != "1" || fake.got[0].ObservedAt != "2026-11-30T09:00:00Z" ||
		fake.got[0].Source != feedback.SourceAPI || fake.got[0].ID == "" || fake.got[0].ID != rec.Header().Get("X-Request-Id") {
		t.Errorf("submitted: got %+v, want p1 from the api with the request id", fake.got)
	}

	body := `{"feedback":[` + strings.Join([]string{
		item("p2"), item("dup"), item("unknown"), item("bad"), `[1]`,
		`{"prediction_id":"p3","label":1,"observed_at":"2026-11-30T09:00:00Z","extra":1}`,
		`{"prediction_id":7,"label":1,"observed_at":"2026-11-30T09:00:00Z"}`,
		`{"prediction_id":"p4","label":1,"observed_at":20261130}`,
		item("p5"),
	}, ",") + `]}`
	fake.got = nil
	rec = ts.do("POST", "/v1/feedback", "application/json", []byte(body))
	if rec.Code != http.StatusOK {
		t.Fatalf("batch: got %d %s, want 200", rec.Code, rec.Body)
	}
	ans = feedbackAnswer{}
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ans); err != nil {
		t.Fatal(err)
	}
	if ans.Summary != (feedback.Summary{Received: 9, Joined: 2, Duplicate: 1, Unknown: 1, Invalid: 5, Outcomes: 2}) {
		t.Errorf("batch counts: got %+v", ans.Summary)
	}
	want := []feedbackResult{
		{Index: 1, PredictionID: "dup", Status: "duplicate"},
		{Index: 2, PredictionID: "unknown", Status: "unknown"},
		{Index: 3, PredictionID: "bad", Status: "invalid", Field: "label"},
		{Index: 4, Status: "invalid"},
		{Index: 5, PredictionID: "p3", Status: "invalid", Field: "extra"},
		{Index: 6, Status: "invalid", Field: "prediction_id"},
		{Index: 7, PredictionID: "p4", Status: "invalid", Field: "observed_at"},
	}
	if len(ans.Results) != len(want) {
		t.Fatalf("batch results: got %+v, want %d", ans.Results, len(want))
	}
	for i, w := range want {
		g := ans.Results[i]
		if g.Index != w.Index || g.PredictionID != w.PredictionID || g.Status != w.Status || g.Field != w.Field || g.Reason == "" {
			t.Errorf("result %d: got %+v, want %+v with a reason", i, g, w)
		}
	}
	if len(fake.got) != 5 || fake.got[4].PredictionID != "p5" {
		t.Errorf("submitted: got %d items, want the 5 well-formed ones", len(fake.got))
	}

	// One invalid item is refused as the request.
	p := problem(t, "one invalid item", ts.do("POST", "/v1/feedback", "application/json", []byte(item("bad"))), http.StatusUnprocessableEntity)
	if p.Field != "label" || !strings.Contains(p.Detail, "want 0 or 1") {
		t.Errorf("one invalid item: got %+v, want field label", p)
	}
	p = problem(t, "unknown field", ts.do("POST", "/v1/feedback", "application/json", []byte(`{"prediction_id":"p","label":1,"observed_at":"x","note":"hi"}`)), http.StatusUnprocessableEntity)
	if p.Field != "note" {
		t.Errorf("unknown field: got %+v, want field note", p)
	}
	// An unknown or duplicate single item is an answer, not an error.
	rec = ts.do("POST", "/v1/feedback", "application/json", []byte(item("unknown")))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status":"unknown"`) {
		t.Errorf("one unknown item: got %d %s, want 200 with its result", rec.Code, rec.Body)
	}

	many := make([]string, feedback.MaxItems+1)
	for i := range many {
		many[i] = `{}`
	}
	for _, c := range []struct {
		name, body string
		status     int
		field      string
	}{
		{"not JSON", `{"prediction_id":`, 400, ""},
		{"an array", `[` + item("p") + `]`, 422, ""},
		{"null", `null`, 422, ""},
		{"feedback not an array", `{"feedback":{}}`, 422, "feedback"},
		{"empty feedback", `{"feedback":[]}`, 422, "feedback"},
		{"feedback beside a field", `{"feedback":[` + item("p") + `],"label":1}`, 422, "label"},
		{"too many items", `{"feedback":[` + strings.Join(many, ",") + `]}`, 413, "feedback"},
	} {
		p := problem(t, c.name, ts.do("POST", "/v1/feedback", "application/json", []byte(c.body)), c.status)
		if p.Field != c.field {
			t.Errorf("%s: field got %q, want %q", c.name, p.Field, c.field)
		}
	}

	fake.err = pulse.Errorf(pulse.EUNAVAILABLE, "feedback: the outcomes could not be stored durably")
	problem(t, "lake down", ts.do("POST", "/v1/feedback", "application/json", []byte(item("p"))), http.StatusServiceUnavailable)

	off := newTestServer(t, nil)
	problem(t, "feedback off", off.do("POST", "/v1/feedback", "application/json", []byte(item("p"))), http.StatusServiceUnavailable)
}
