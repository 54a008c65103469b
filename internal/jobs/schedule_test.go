package jobs

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

func TestGate(t *testing.T) {
	e := newEnv(t)
	s := e.open(t, Config{Workers: 1})
	ctx := context.Background()
	train := func(g *Gate, seed uint64) *Job {
		t.Helper()
		req := goodRequest()
		req.Seed = seed
		j, _, err := s.Enqueue(ctx, "heart", req, EnqueueOptions{Gate: g})
		if err != nil {
			t.Fatal(err)
		}
		done := wait(t, s, j.ID)
		if done.State != "completed" {
			t.Fatalf("job: got state %s problem %+v errors %+v", done.State, done.Problem, done.Errors)
		}
		return done
	}
	aliases := func() map[string]int {
		m, err := e.reg.Model(ctx, "heart")
		if err != nil {
			t.Fatal(err)
		}
		return m.Aliases
	}
	// The first version is champion whatever the gate says.
	j1 := train(&Gate{MinGain: 1}, 1)
	if d := j1.GateDecision; d == nil || d.Alias != "champion" || d.Metric != "roc_auc" || d.Source != "cv" || d.Value <= 0.5 {
		t.Errorf("first version: got decision %+v", j1.GateDecision)
	}
	// A gain of a whole unit of ROC AUC is impossible: challenger. Both versions are
	// evaluated on the challenger's fresh holdout: its value is its own holdout ROC AUC.
	j2 := train(&Gate{MinGain: 1}, 2)
	v2, err := e.reg.Version(ctx, "heart", 2)
	if err != nil {
		t.Fatal(err)
	}
	if d := j2.GateDecision; d == nil || d.Alias != "challenger" || d.ChampionVersion != 1 || d.Source != "fresh_holdout" ||
		d.Rows != v2.Metrics.Holdout.N || math.Abs(d.Value-v2.Metrics.Holdout.ROCAUC) > 1e-9 || d.ChampionValue <= 0.5 || !strings.Contains(d.Reason, "short of 1.0000") {
		t.Errorf("impossible gain: got decision %+v", j2.GateDecision)
	}
	cmp, err := e.reg.CompareOnHoldout(ctx, "heart", 1, 2)
	if err != nil || cmp.Champion.ROCAUC != j2.GateDecision.ChampionValue {
		t.Errorf("the champion's value is its ROC AUC on the challenger's holdout: got %v (err %v), want %+v", j2.GateDecision.ChampionValue, err, cmp)
	}
	if a := aliases(); a["champion"] != 1 || a["challenger"] != 2 {
		t.Errorf("after an impossible gain: got aliases %v", a)
	}
	// A floor the challenger cannot reach keeps it challenger even when any loss is tolerated.
	floor := 0.999
	jf := train(&Gate{MinGain: -1, Floor: &floor}, 5)
	if d := jf.GateDecision; d == nil || d.Alias != "challenger" || !strings.Contains(d.Reason, "does not reach the floor 0.9990") {
		t.Errorf("unreachable floor: got decision %+v", jf.GateDecision)
	}
	// Tolerating any loss: champion. Lower-is-better metrics compare the other way.
	j3 := train(&Gate{Metric: "brier", MinGain: -1}, 3)
	if d := j3.GateDecision; d == nil || d.Alias != "champion" || d.Metric != "brier" || d.ChampionVersion != 1 {
		t.Errorf("any loss tolerated: got decision %+v", j3.GateDecision)
	}
	if a := aliases(); a["champion"] != 4 || a["challenger"] != 3 {
		t.Errorf("after promotion: got aliases %v", a)
	}
	if !strings.Contains(j3.Logs[0].Log, "msg=gate alias=champion metric=brier") {
		t.Errorf("log: got %q", j3.Logs[0].Log)
	}
	// A challenger gate: challenger even when any loss would be tolerated, with its numbers.
	jc := train(&Gate{MinGain: -1, Challenger: true}, 6)
	if d := jc.GateDecision; d == nil || d.Alias != "challenger" || d.ChampionVersion != 4 || d.Source != "fresh_holdout" || d.Value <= 0.5 || !strings.Contains(d.Reason, "proves itself on live traffic") {
		t.Errorf("challenger gate: got decision %+v", jc.GateDecision)
	}
	if a := aliases(); a["champion"] != 4 || a["challenger"] != 5 {
		t.Errorf("after a challenger gate: got aliases %v", a)
	}
	// No gate: the new version gets no alias.
	j4 := train(nil, 4)
	if j4.GateDecision != nil {
		t.Errorf("no gate: got decision %+v", j4.GateDecision)
	}
	if a := aliases(); a["champion"] != 4 || a["challenger"] != 5 {
		t.Errorf("without a gate: got aliases %v", a)
	}
	if _, _, err := s.Enqueue(ctx, "heart", goodRequest(), EnqueueOptions{Gate: &Gate{Metric: "vibes"}}); pulse.ErrorCode(err) != pulse.EINVALID {
		t.Errorf("bad gate metric: got %v, want %s", err, pulse.EINVALID)
	}
}

func TestScheduleRetrains(t *testing.T) {
	e := newEnv(t)
	// The version trained before the schedule is the champion to beat.
	if _, err := e.reg.Train(context.Background(), "heart", goodRequest()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "schedules.json")
	if err := os.WriteFile(path, []byte(`[{"model":"heart","cron":"@daily","run_on_start":true,
		"request":{"dataset":"cleveland","target":"num > 0","seed":9},"gate":{"metric":"roc_auc","min_gain":-1}}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	schedules, err := LoadSchedules(path)
	if err != nil {
		t.Fatal(err)
	}
	s := e.open(t, Config{Workers: 1, Schedules: schedules})
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	var done *Job
	for done == nil {
		js, err := s.List(ctx, Filter{Model: "heart", State: "completed"})
		if err != nil {
			t.Fatal(err)
		}
		if len(js) > 0 {
			done = js[0]
		}
		if time.Now().After(deadline) {
			t.Fatal("no scheduled job completed within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if done.Trigger != "schedule" || done.RequestedBy != "schedule @daily" || done.Version != 2 || done.GateDecision == nil || done.GateDecision.Alias != "champion" {
		t.Fatalf("scheduled job: got trigger %q by %q version %d decision %+v", done.Trigger, done.RequestedBy, done.Version, done.GateDecision)
	}
	v, err := e.reg.Version(ctx, "heart", 2)
	if err != nil {
		t.Fatal(err)
	}
	if v.Lineage.Trigger != "schedule" || v.Lineage.Seed != 9 {
		t.Errorf("lineage: got trigger %q seed %d", v.Lineage.Trigger, v.Lineage.Seed)
	}
}

func TestScheduleValidation(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		s    Schedule
		want string
	}{
		{Schedule{Model: "heart", Cron: "every day"}, `cron "every day"`},
		{Schedule{Model: "Bad Name", Cron: "@daily"}, "model name"},
		{Schedule{Model: "heart", Cron: "0 3 * * *", Gate: &Gate{Metric: "vibes"}}, `gate.metric "vibes"`},
	} {
		_, err := Open(context.Background(), Config{SQLitePath: filepath.Join(t.TempDir(), "jobs.db"), Registry: e.reg, Workers: 1, Schedules: []Schedule{tc.s}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error about %s", tc.s, err, tc.want)
		}
	}
	if _, err := LoadSchedules(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing schedules file: got no error")
	}
}
