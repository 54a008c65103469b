package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The continuous-evaluation scenario: a champion trained on Cleveland serves a stream of
// patients with the truth arriving as feedback. The same policy is used throughout:
const scenarioPolicy = `{
  "format": 1,
  "live_metric_min_labels": 50,
  "rollback": {"metric": "accuracy", "below": 0.6, "min_labels": 100, "cooldown": "1h"},
  "retrain":  {"drift_psi_above": 0.25, "min_records": 300, "cooldown": "1h"},
  "promote":  {"metric": "roc_auc", "min_gain": 0.05, "min_labels": 100}
}`

// decision is an entry of the audit trail, as the tests read it.
type decision struct {
	ID       int64              `json:"id"`
	Rule     string             `json:"rule"`
	Action   string             `json:"action"`
	Version  int                `json:"version"`
	Champion int                `json:"champion"`
	Guard    string             `json:"guard"`
	Reason   string             `json:"reason"`
	Numbers  map[string]float64 `json:"numbers"`
	Result   string             `json:"result"`
	Error    string             `json:"error"`
	JobID    int64              `json:"job_id"`
}

// patient is one Cleveland row: its features as JSON and its truth.
type patient struct {
	fields map[string]float64 // missing values left out
	label  int
}

func clevelandPatients(t *testing.T) []patient {
	t.Helper()
	names, rows := clevelandRows(t)
	var out []patient
	for _, row := range rows {
		p := patient{fields: map[string]float64{}}
		for j, v := range row {
			if v == "?" {
				continue
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			if names[j] == "num" {
				if f > 0 {
					p.label = 1
				}
				continue
			}
			p.fields[names[j]] = f
		}
		out = append(out, p)
	}
	return out
}

// shifted is the population after the change: older patients with a lower maximum heart rate
// (the inputs drift), for whom the old rule no longer holds: among men the truth is the
// opposite of what it was (the relation between inputs and label changed).
func shifted(p patient) patient {
	q := patient{fields: map[string]float64{}, label: p.label}
	for k, v := range p.fields {
		q.fields[k] = v
	}
	if v, ok := q.fields["thalach"]; ok {
		q.fields["thalach"] = v - 35
	}
	if v, ok := q.fields["age"]; ok {
		q.fields["age"] = v + 12
	}
	if q.fields["sex"] == 1 {
		q.label = 1 - q.label
	}
	return q
}

// jsonOf writes a patient's features with small noise on the continuous ones, so that a
// stream resampled from 303 rows does not repeat rows exactly.
func (p patient) jsonOf(rng *rand.Rand) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for _, k := range []string{"age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak", "slope", "ca", "thal"} {
		v, ok := p.fields[k]
		if !ok {
			continue
		}
		switch k {
		case "trestbps", "chol", "thalach":
			v += float64(rng.IntN(5) - 2)
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, "%q:%s", k, strconv.FormatFloat(v, 'f', -1, 64))
	}
	b.WriteByte('}')
	return b.String()
}

// csvOf writes patients as a dataset in Cleveland's layout (num: 0 or 1).
func csvOf(ps []patient) []byte {
	var b bytes.Buffer
	cols := []string{"age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak", "slope", "ca", "thal"}
	b.WriteString(strings.Join(cols, ",") + ",num\n")
	for _, p := range ps {
		for _, k := range cols {
			if v, ok := p.fields[k]; ok {
				b.WriteString(strconv.FormatFloat(v, 'f', -1, 64))
			} else {
				b.WriteString("?")
			}
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(p.label) + "\n")
	}
	return b.Bytes()
}

// streamer scores patients in batches through REST and sends their truth as feedback.
type streamer struct {
	t     *testing.T
	s     *server
	model string
	rng   *rand.Rand
	sent  int
}

// send scores n patients drawn from pop and labels them.
func (st *streamer) send(pop []patient, n int, transform func(patient) patient) {
	t := st.t
	for done := 0; done < n; {
		k := min(50, n-done)
		batch := make([]patient, k)
		var body strings.Builder
		body.WriteString(`{"instances":[`)
		for i := range batch {
			p := pop[st.rng.IntN(len(pop))]
			if transform != nil {
				p = transform(p)
			}
			batch[i] = p
			if i > 0 {
				body.WriteByte(',')
			}
			body.WriteString(p.jsonOf(st.rng))
		}
		body.WriteString(`]}`)
		r := st.s.postJSON("/v1/models/"+st.model+"/predict", body.String())
		if r.status != 200 {
			t.Fatalf("predict: got %d %s", r.status, r.body)
		}
		var resp struct {
			Predictions []struct {
				PredictionID string `json:"prediction_id"`
			} `json:"predictions"`
		}
		if err := json.Unmarshal(r.body, &resp); err != nil {
			t.Fatal(err)
		}
		// The truth comes later than the answer (in the clinic, hours or days): here 150 ms,
		// after the challenger's shadow prediction of the same request is stored (shadow
		// workers gather records for 50 ms). A label that arrives before the shadow prediction
		// is stored labels the champion's prediction only.
		time.Sleep(150 * time.Millisecond)
		var fb strings.Builder
		fb.WriteString(`{"feedback":[`)
		now := time.Now().UTC().Format(time.RFC3339Nano)
		for i, p := range resp.Predictions {
			if i > 0 {
				fb.WriteByte(',')
			}
			fmt.Fprintf(&fb, `{"prediction_id":%q,"label":%d,"observed_at":%q}`, p.PredictionID, batch[i].label, now)
		}
		fb.WriteString(`]}`)
		if r := st.s.postJSON("/v1/feedback", fb.String()); r.status != 200 {
			t.Fatalf("feedback: got %d %s", r.status, r.body)
		}
		done += k
		st.sent += k
	}
}

func trail(t *testing.T, s *server, model string) []decision {
	t.Helper()
	r := s.get("/v1/models/" + model + "/events?limit=1000")
	if r.status != 200 {
		t.Fatalf("audit trail: got %d %s", r.status, r.body)
	}
	var doc struct {
		Events []decision `json:"events"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("audit trail: %v: %s", err, r.body)
	}
	return doc.Events
}

func taken(ds []decision) []decision {
	var out []decision
	for _, d := range ds {
		if d.Action != "none" && d.Rule != "webhook" {
			out = append(out, d)
		}
	}
	return out
}

func champion(t *testing.T, s *server, model string) int {
	t.Helper()
	r := s.get("/v1/models/" + model)
	aliases, _ := r.json(t)["aliases"].(map[string]any)
	v, _ := aliases["champion"].(float64)
	return int(v)
}

// startScenarioServer runs pulse serve with an evaluation loop fast enough for a test, trains
// the champion (version 1) on Cleveland and sets the policy.
func startScenarioServer(t *testing.T, model string) *server {
	t.Helper()
	cwd, _ := os.Getwd()
	s := startServer(t, t.TempDir(), cwd, "--evaluate-interval", "200ms", "--drift-window", "400", "--live-window", "300")
	data, err := os.ReadFile(filepath.Join(sharedData, "processed.cleveland.data"))
	if err != nil {
		t.Fatal(err)
	}
	if r := s.do("POST", "/v1/datasets?name=cleveland", "text/csv", data); r.status != 201 {
		t.Fatalf("register: got %d %s", r.status, r.body)
	}
	if r := s.postJSON("/v1/models/"+model+"/train?wait=true", `{"dataset":"cleveland","target":"num > 0","seed":7}`); r.status != 201 {
		t.Fatalf("train: got %d %s", r.status, r.body)
	}
	if r := s.do("PUT", "/v1/models/"+model+"/policy", "application/json", []byte(scenarioPolicy)); r.status != 200 && r.status != 201 {
		t.Fatalf("policy: got %d %s", r.status, r.body)
	}
	return s
}

// TestEvaluationStableStream: with the truth flowing and the population unchanged, the policy
// never acts: no rollback, no retraining, no promotion on noise. The live accuracy Pulse
// reports equals the accuracy recomputed from the lake's outcome files with pyarrow.
func TestEvaluationStableStream(t *testing.T) {
	const model = "heart-stable"
	s := startScenarioServer(t, model)
	st := &streamer{t: t, s: s, model: model, rng: rand.New(rand.NewPCG(1, 2))}
	pop := clevelandPatients(t)
	st.send(pop, 1200, nil)
	time.Sleep(2 * time.Second) // ten evaluations of the loop after the last label

	if got := taken(trail(t, s, model)); len(got) != 0 {
		t.Errorf("a stable stream made the policy act: %+v", got)
	}
	if v := champion(t, s, model); v != 1 {
		t.Errorf("champion: got version %d, want 1", v)
	}
	r := s.get("/v1/jobs?model=" + model)
	var jobs struct{ Jobs []job }
	if err := json.Unmarshal(r.body, &jobs); err != nil || len(jobs.Jobs) != 1 {
		t.Errorf("jobs: got %s, want only the first training", r.body)
	}

	// The live report and the predict response show the live accuracy.
	live := s.get("/v1/models/" + model + "/versions/1/live")
	if live.status != 200 {
		t.Fatalf("live: got %d %s", live.status, live.body)
	}
	var rep struct {
		Live struct {
			N        int `json:"n"`
			Accuracy *struct {
				Value float64 `json:"value"`
			} `json:"accuracy"`
		} `json:"live"`
		Drift *struct {
			MaxPSI *float64 `json:"max_psi"`
		} `json:"drift"`
	}
	if err := json.Unmarshal(live.body, &rep); err != nil || rep.Live.Accuracy == nil {
		t.Fatalf("live: %v: %s", err, live.body)
	}
	if rep.Live.N != 300 {
		t.Errorf("live window: got %d labels, want the window's 300", rep.Live.N)
	}
	if rep.Drift == nil || rep.Drift.MaxPSI == nil || *rep.Drift.MaxPSI > 0.25 {
		t.Errorf("drift of a stable stream: got %s", live.body)
	}
	p := s.postJSON("/v1/models/"+model+"/predict", pop[0].jsonOf(st.rng))
	metrics, _ := p.json(t)["model"].(map[string]any)["metrics"].(map[string]any)
	if metrics["live_accuracy"] != rep.Live.Accuracy.Value {
		t.Errorf("predict response: live_accuracy %v, want %v (%s)", metrics["live_accuracy"], rep.Live.Accuracy.Value, p.body)
	}

	// Offline: the same accuracy from the outcome files (the last 300 labels of version 1).
	s.stop()
	script := `
import sys, pyarrow.dataset as ds, pyarrow.compute as pc
t = ds.dataset(sys.argv[1], format="parquet", partitioning="hive").to_table()
t = t.filter(pc.equal(t["model_version"], 1)).sort_by([("received_at", "ascending"), ("prediction_id", "ascending")])
n = t.num_rows
last = t.slice(max(0, n - 300))
right = pc.sum(pc.cast(pc.equal(last["predicted_label"], last["label"]), "int64")).as_py()
print(n, last.num_rows, right)
`
	out, err := exec.Command("python3", "-c", script, filepath.Join(s.dataDir, "lake", "outcomes", "model="+model)).CombinedOutput()
	if err != nil {
		t.Fatalf("pyarrow: %v\n%s", err, out)
	}
	var n, window, right int
	if _, err := fmt.Sscan(string(out), &n, &window, &right); err != nil {
		t.Fatalf("pyarrow output %q: %v", out, err)
	}
	if n != 1200 || window != 300 {
		t.Errorf("outcome files: got %d outcomes (%d in the window), want 1200 (300)", n, window)
	}
	if offline := float64(right) / float64(window); offline != rep.Live.Accuracy.Value {
		t.Errorf("live accuracy %v, recomputed from the lake's outcome files %v (%d of %d)", rep.Live.Accuracy.Value, offline, right, window)
	}
}

// TestEvaluationScenario: the population shifts. Pulse sees the inputs drift, retrains on the
// newest data (a dataset version the data pipeline delivered with the new population), runs
// the new version in shadow as challenger, and promotes it once it beats the champion on the
// same requests; the audit trail shows each step with its numbers.
func TestEvaluationScenario(t *testing.T) {
	const model = "heart-shift"
	s := startScenarioServer(t, model)
	st := &streamer{t: t, s: s, model: model, rng: rand.New(rand.NewPCG(3, 4))}
	pop := clevelandPatients(t)

	// Before the shift: nothing to do.
	st.send(pop, 400, nil)
	time.Sleep(time.Second)
	if got := taken(trail(t, s, model)); len(got) != 0 {
		t.Fatalf("before the shift the policy acted: %+v", got)
	}

	// The data pipeline delivers the new population's labelled records as a new version of
	// the dataset; the traffic shifts.
	var newData []patient
	for _, p := range pop {
		newData = append(newData, shifted(p))
	}
	if r := s.do("POST", "/v1/datasets?name=cleveland", "text/csv", csvOf(newData)); r.status != 201 {
		t.Fatalf("register the new data: got %d %s", r.status, r.body)
	}
	shiftAt := st.sent
	var retrain, promote *decision
	deadline := time.Now().Add(3 * time.Minute)
	for (retrain == nil || promote == nil) && time.Now().Before(deadline) {
		st.send(pop, 50, shifted)
		time.Sleep(100 * time.Millisecond)
		for _, d := range taken(trail(t, s, model)) {
			d := d
			switch {
			case d.Rule == "retrain" && retrain == nil:
				retrain = &d
				t.Logf("retrain after %d shifted records: %s %v (%s)", st.sent-shiftAt, d.Reason, d.Numbers, d.Result)
			case d.Rule == "promote" && promote == nil:
				promote = &d
				t.Logf("promote after %d shifted records: %s %v (%s)", st.sent-shiftAt, d.Reason, d.Numbers, d.Result)
			}
		}
	}
	if retrain == nil || promote == nil {
		t.Fatalf("after %d shifted records: retrain %+v, promote %+v; trail %+v", st.sent-shiftAt, retrain, promote, trail(t, s, model))
	}
	if retrain.Numbers["max_psi"] <= 0.25 && retrain.Numbers["drift_psi"] <= 0.25 {
		t.Errorf("retrain decided on %v, want a PSI above 0.25", retrain.Numbers)
	}
	if retrain.JobID == 0 {
		t.Errorf("retrain started no job: %+v", retrain)
	}
	if promote.Version != 2 {
		t.Errorf("promoted version %d, want the retrained 2", promote.Version)
	}
	if v := champion(t, s, model); v != 2 {
		t.Errorf("champion after the promotion: got %d, want 2", v)
	}
	// The retrained version learnt from the new data.
	v2 := s.get("/v1/models/" + model + "/versions/2").json(t)
	if lin := v2["lineage"].(map[string]any); lin["trigger"] != "policy" {
		t.Errorf("version 2 trigger: got %v, want policy", lin["trigger"])
	}
	if len(taken(trail(t, s, model))) > 3 {
		t.Errorf("more actions than the shift called for: %+v", taken(trail(t, s, model)))
	}
}
