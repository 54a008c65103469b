package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// Continuous evaluation: policies (versioned), the audit trail of decisions, and the alias
// history that SetAlias and DeleteAlias record.

func newPolicy(model, doc string) *pulse.PolicyDocument {
	return &pulse.PolicyDocument{Model: model, Policy: json.RawMessage(doc), CreatedBy: "storetest"}
}

var policyTests = []test{
	{"VersionsAndHistory", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 1)
		docs := []string{
			`{"rollback": {"below": 0.7}}`,
			`{"format": 1, "rollback": {"below": 0.75, "min_labels": 300}, "shadow": false}`,
			`{}`,
		}
		t0 := time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)
		var put []*pulse.PolicyDocument
		for i, d := range docs {
			p := newPolicy("heart", d)
			p.CreatedAt = t0.Add(time.Duration(i) * time.Minute)
			if err := s.PutPolicy(ctx, p); err != nil {
				t.Fatalf("PutPolicy %d: %v", i, err)
			}
			if p.Version != i+1 {
				t.Errorf("PutPolicy %d: got version %d, want %d", i, p.Version, i+1)
			}
			put = append(put, p)
		}
		latest, err := s.GetPolicy(ctx, "heart", 0)
		if err != nil {
			t.Fatalf("GetPolicy latest: %v", err)
		}
		assertEqual(t, "latest policy", latest, put[2])
		second, err := s.GetPolicy(ctx, "heart", 2)
		if err != nil {
			t.Fatalf("GetPolicy 2: %v", err)
		}
		assertEqual(t, "policy version 2", second, put[1])
		if string(second.Policy) != docs[1] {
			t.Errorf("policy document: got %s, want the bytes put, %s", second.Policy, docs[1])
		}
		list, err := s.ListPolicies(ctx, "heart")
		if err != nil {
			t.Fatalf("ListPolicies: %v", err)
		}
		assertEqual(t, "policy history, newest first", list, []*pulse.PolicyDocument{put[2], put[1], put[0]})
	}},
	{"CreatedAtDefaultsToNow", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 1)
		p := newPolicy("heart", `{}`)
		before := time.Now().Truncate(time.Microsecond)
		if err := s.PutPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
		assertRecentUTC(t, p.CreatedAt, before, time.Now())
		got, err := s.GetPolicy(ctx, "heart", 1)
		if err != nil {
			t.Fatal(err)
		}
		assertEqual(t, "policy", got, p)
	}},
	{"NoPolicy", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 1)
		_, err := s.GetPolicy(ctx, "heart", 0)
		assertCode(t, "GetPolicy of a model without a policy", err, pulse.ENOTFOUND)
		assertMentions(t, "GetPolicy", err, `"heart"`)
		list, err := s.ListPolicies(ctx, "heart")
		if err != nil || list == nil || len(list) != 0 {
			t.Errorf("ListPolicies without a policy: got %v, %v; want empty, non-nil", list, err)
		}
		if err := s.PutPolicy(ctx, newPolicy("heart", `{}`)); err != nil {
			t.Fatal(err)
		}
		_, err = s.GetPolicy(ctx, "heart", 2)
		assertCode(t, "GetPolicy of a missing version", err, pulse.ENOTFOUND)
		assertMentions(t, "GetPolicy of a missing version", err, `"heart"`)
	}},
	{"UnknownModel", func(ctx context.Context, t *testing.T, s Store) {
		err := s.PutPolicy(ctx, newPolicy("nope", `{}`))
		assertCode(t, "PutPolicy", err, pulse.ENOTFOUND)
		assertMentions(t, "PutPolicy", err, `"nope"`)
		_, err = s.GetPolicy(ctx, "nope", 0)
		assertCode(t, "GetPolicy", err, pulse.ENOTFOUND)
		assertMentions(t, "GetPolicy", err, `"nope"`)
		_, err = s.ListPolicies(ctx, "nope")
		assertCode(t, "ListPolicies", err, pulse.ENOTFOUND)
	}},
	{"Invalid", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 1)
		for _, p := range []*pulse.PolicyDocument{nil, newPolicy("", `{}`), newPolicy("heart", `[1]`), newPolicy("heart", `{"a":`), newPolicy("heart", ``)} {
			err := s.PutPolicy(ctx, p)
			assertCode(t, fmt.Sprintf("PutPolicy(%+v)", p), err, pulse.EINVALID)
		}
		_, err := s.GetPolicy(ctx, "heart", -1)
		assertCode(t, "GetPolicy version -1", err, pulse.EINVALID)
		list, err := s.ListPolicies(ctx, "heart")
		if err != nil || len(list) != 0 {
			t.Errorf("after invalid puts: got %d policies, %v; want 0", len(list), err)
		}
	}},
	{"CurrentPolicies", func(ctx context.Context, t *testing.T, s Store) {
		for _, m := range []string{"b-model", "a-model", "c-model"} {
			createVersions(ctx, t, s, m, 1)
		}
		cur, err := s.CurrentPolicies(ctx)
		if err != nil || cur == nil || len(cur) != 0 {
			t.Fatalf("CurrentPolicies of none: got %v, %v; want empty, non-nil", cur, err)
		}
		var want []*pulse.PolicyDocument
		for _, put := range []struct{ model, doc string }{
			{"b-model", `{"rollback": {"below": 0.5}}`},
			{"a-model", `{}`},
			{"b-model", `{"rollback": {"below": 0.6}}`},
		} {
			p := newPolicy(put.model, put.doc)
			if err := s.PutPolicy(ctx, p); err != nil {
				t.Fatal(err)
			}
			if put.doc != `{"rollback": {"below": 0.5}}` {
				want = append(want, p)
			}
		}
		cur, err = s.CurrentPolicies(ctx)
		if err != nil {
			t.Fatal(err)
		}
		assertEqual(t, "current policies, by model", cur, want) // a-model v1, b-model v2; c-model has none
	}},
	{"ConcurrentPutsAreConsecutive", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 1)
		versions := make([]int, concurrency)
		var wg sync.WaitGroup
		for i := range concurrency {
			wg.Go(func() {
				p := newPolicy("heart", fmt.Sprintf(`{"live_metric_min_labels": %d}`, i+1))
				if err := s.PutPolicy(ctx, p); err != nil {
					t.Errorf("PutPolicy %d: %v", i, err)
					return
				}
				versions[i] = p.Version
			})
		}
		wg.Wait()
		assertOneToN(t, "policy versions", versions, concurrency)
	}},
}

func newDecision(model, rule, action string, at time.Time) *pulse.Decision {
	return &pulse.Decision{
		Model: model, Rule: rule, Action: action, Version: 2, Champion: 3, PolicyVersion: 4,
		Guard: "", Reason: "champion version 3: accuracy 0.5123 (95% CI 0.4500-0.5700) over 250 labels",
		Numbers: map[string]float64{"labels": 250, "accuracy": 0.1 + 0.2, "accuracy_upper": math.SmallestNonzeroFloat64},
		Result:  "champion moved from 3 to 2", At: at,
	}
}

var decisionTests = []test{
	{"AppendAndList", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 3)
		createVersions(ctx, t, s, "other", 1)
		t0 := time.Date(2026, 11, 25, 10, 0, 0, 999999999, time.UTC)
		var all []*pulse.Decision
		for i, c := range []struct{ model, rule, action string }{
			{"heart", "rollback", "none"},
			{"heart", "retrain", "retrain"},
			{"other", "promote", "none"},
			{"heart", "rollback", "rollback"},
			{"heart", "promote", "none"},
		} {
			d := newDecision(c.model, c.rule, c.action, t0.Add(time.Duration(i)*time.Second))
			if c.action == "none" {
				d.Guard, d.Result = "too few labels: 37 < 200", ""
			}
			if c.action == "retrain" {
				d.JobID = 1 << 40
			}
			if err := s.AppendDecision(ctx, d); err != nil {
				t.Fatalf("AppendDecision %d: %v", i, err)
			}
			if d.ID <= 0 || (len(all) > 0 && d.ID <= all[len(all)-1].ID) {
				t.Errorf("decision %d: got id %d, want it above the previous", i, d.ID)
			}
			assertMicroseconds(t, d.At, t0.Add(time.Duration(i)*time.Second))
			all = append(all, d)
		}
		got, err := s.ListDecisions(ctx, "heart", pulse.DecisionQuery{})
		if err != nil {
			t.Fatal(err)
		}
		assertEqual(t, "heart's trail, newest first", got, []*pulse.Decision{all[4], all[3], all[1], all[0]})
		got, err = s.ListDecisions(ctx, "heart", pulse.DecisionQuery{Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		assertEqual(t, "limit 2", got, []*pulse.Decision{all[4], all[3]})
		got, err = s.ListDecisions(ctx, "heart", pulse.DecisionQuery{Limit: 2, BeforeID: all[3].ID})
		if err != nil {
			t.Fatal(err)
		}
		assertEqual(t, "the next page", got, []*pulse.Decision{all[1], all[0]})
		got, err = s.ListDecisions(ctx, "heart", pulse.DecisionQuery{Action: "rollback"})
		if err != nil {
			t.Fatal(err)
		}
		assertEqual(t, "rollbacks", got, []*pulse.Decision{all[3]})
		got, err = s.ListDecisions(ctx, "other", pulse.DecisionQuery{Action: "rollback"})
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("no match: got %v, %v; want empty, non-nil", got, err)
		}
	}},
	{"NilNumbersReadBackEmpty", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 1)
		d := &pulse.Decision{Model: "heart", Rule: "webhook", Action: "none", Error: "POST: connection refused"}
		before := time.Now().Truncate(time.Microsecond)
		if err := s.AppendDecision(ctx, d); err != nil {
			t.Fatal(err)
		}
		assertRecentUTC(t, d.At, before, time.Now())
		got, err := s.ListDecisions(ctx, "heart", pulse.DecisionQuery{})
		if err != nil || len(got) != 1 {
			t.Fatalf("ListDecisions: got %v, %v", got, err)
		}
		assertEqual(t, "decision", got[0], d)
		if d.Numbers == nil {
			t.Errorf("numbers: got nil, want an empty map written back")
		}
	}},
	{"UnknownModel", func(ctx context.Context, t *testing.T, s Store) {
		err := s.AppendDecision(ctx, newDecision("nope", "rollback", "none", time.Now()))
		assertCode(t, "AppendDecision", err, pulse.ENOTFOUND)
		assertMentions(t, "AppendDecision", err, `"nope"`)
		_, err = s.ListDecisions(ctx, "nope", pulse.DecisionQuery{})
		assertCode(t, "ListDecisions", err, pulse.ENOTFOUND)
		assertMentions(t, "ListDecisions", err, `"nope"`)
	}},
	{"Invalid", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 1)
		now := time.Now()
		assertCode(t, "nil", s.AppendDecision(ctx, nil), pulse.EINVALID)
		assertCode(t, "no model", s.AppendDecision(ctx, newDecision("", "rollback", "none", now)), pulse.EINVALID)
		assertCode(t, "no rule", s.AppendDecision(ctx, newDecision("heart", "", "none", now)), pulse.EINVALID)
		assertCode(t, "no action", s.AppendDecision(ctx, newDecision("heart", "rollback", "", now)), pulse.EINVALID)
		nan := newDecision("heart", "rollback", "none", now)
		nan.Numbers["gain"] = math.NaN()
		assertCode(t, "NaN number", s.AppendDecision(ctx, nan), pulse.EUNPROCESSABLE)
		for _, q := range []pulse.DecisionQuery{{Limit: -1}, {Limit: 1001}, {BeforeID: -5}} {
			_, err := s.ListDecisions(ctx, "heart", q)
			assertCode(t, fmt.Sprintf("ListDecisions(%+v)", q), err, pulse.EINVALID)
		}
		got, err := s.ListDecisions(ctx, "heart", pulse.DecisionQuery{})
		if err != nil || len(got) != 0 {
			t.Errorf("after invalid appends: got %d decisions, %v; want 0", len(got), err)
		}
	}},
}

var aliasHistoryTests = []test{
	{"RecordsMoves", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 3)
		before := time.Now().Truncate(time.Microsecond)
		mustSetAlias(ctx, t, s, "heart", "champion", 1)
		mustSetAlias(ctx, t, s, "heart", "challenger", 2)
		mustSetAlias(ctx, t, s, "heart", "champion", 2)
		mustSetAlias(ctx, t, s, "heart", "champion", 3)
		if _, err := s.SetAlias(ctx, "heart", "champion", 9); pulse.ErrorCode(err) != pulse.ENOTFOUND {
			t.Fatalf("SetAlias to a missing version: got %v, want ENOTFOUND", err)
		}
		if err := s.DeleteAlias(ctx, "heart", "challenger"); err != nil {
			t.Fatal(err)
		}
		after := time.Now()
		got, err := s.AliasHistory(ctx, "heart", "champion", 10)
		if err != nil {
			t.Fatal(err)
		}
		want := []pulse.AliasMove{
			{Model: "heart", Alias: "champion", Version: 3, Previous: 2},
			{Model: "heart", Alias: "champion", Version: 2, Previous: 1},
			{Model: "heart", Alias: "champion", Version: 1, Previous: 0},
		}
		if len(got) == len(want) {
			for i := range got {
				assertRecentUTC(t, got[i].At, before, after)
				if i > 0 && got[i].At.After(got[i-1].At) {
					t.Errorf("move %d at %v is after the newer move at %v", i, got[i].At, got[i-1].At)
				}
				want[i].At = got[i].At
			}
		}
		assertEqual(t, "champion history, newest first", got, want)
		got, err = s.AliasHistory(ctx, "heart", "champion", 1)
		if err != nil || len(got) != 1 || got[0].Version != 3 {
			t.Errorf("limit 1: got %v, %v", got, err)
		}
		got, err = s.AliasHistory(ctx, "heart", "challenger", 10)
		if err != nil || len(got) != 2 || got[0].Version != 0 || got[0].Previous != 2 || got[1].Version != 2 {
			t.Errorf("challenger history: got %+v, %v; want the deletion (0, previous 2), then 2", got, err)
		}
		got, err = s.AliasHistory(ctx, "heart", "never", 10)
		if err != nil || got == nil || len(got) != 0 {
			t.Errorf("an alias never set: got %v, %v; want empty, non-nil", got, err)
		}
	}},
	{"Errors", func(ctx context.Context, t *testing.T, s Store) {
		createVersions(ctx, t, s, "heart", 1)
		_, err := s.AliasHistory(ctx, "nope", "champion", 10)
		assertCode(t, "unknown model", err, pulse.ENOTFOUND)
		assertMentions(t, "unknown model", err, `"nope"`)
		for _, limit := range []int{0, -1, 1001} {
			_, err := s.AliasHistory(ctx, "heart", "champion", limit)
			assertCode(t, fmt.Sprintf("limit %d", limit), err, pulse.EINVALID)
		}
	}},
}
