// Command labelgen is the tool of bench/feedback: it fills a data directory's lake with
// predictions, and sends labels for them, in process through feedback.Service or to a
// running `pulse serve` by POST /v1/feedback, then prints one JSON line per run.
//
//	labelgen prepare -dir D -predictions 1000000 -days 3
//	labelgen submit  -dir D -labels 200000 -batch 1000 -offset 0
//	labelgen post    -dir D -url http://127.0.0.1:8080 -labels 200000 -batch 1000 -clients 4 -offset 200000
//
// prepare writes the predictions as `pulse serve` would (UUIDv7 ids made at scoring time,
// features and response of a Cleveland patient) into D/lake through D/wal, spread evenly
// over the last -days days, one in -shadow-every also with a shadow challenger's row, and
// writes their ids in a random order (seeded) to D/ids.txt. submit and post label the ids
// from position -offset of that file, so runs with different offsets label different,
// randomly chosen predictions: every label is a first label, and all days are hit.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/cloudmedical/pulse/internal/blobstore"
	"github.com/cloudmedical/pulse/internal/feedback"
	"github.com/cloudmedical/pulse/internal/lake"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: labelgen prepare|submit|post [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "prepare":
		err = prepare(os.Args[2:])
	case "submit":
		err = submit(os.Args[2:])
	case "post":
		err = post(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want prepare, submit or post", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "labelgen:", err)
		os.Exit(1)
	}
}

const (
	features = `{"age":63.0,"sex":1.0,"cp":1.0,"trestbps":145.0,"chol":233.0,"fbs":1.0,"restecg":2.0,"thalach":150.0,"exang":0.0,"oldpeak":2.3,"slope":3.0,"ca":0.0,"thal":6.0,"patient":"p-000123"}`
	model    = "heart-disease"
)

// idAt returns a UUIDv7 of time t with random bits r, as uuid.NewV7 makes them.
func idAt(t time.Time, r uint64) string {
	hi := uint64(t.UnixMilli())<<16 | 0x7000 | r>>52
	lo := 0x8000000000000000 | r&0x0fffffffffffffff
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", hi>>32, hi>>16&0xffff, hi&0xffff, lo>>48, lo&0xffffffffffff)
}

func openLake(ctx context.Context, dir string, segmentMB int) (*lake.Lake, *blobstore.Store, error) {
	st, err := blobstore.Open(ctx, blobstore.FileURL(filepath.Join(dir, "lake")))
	if err != nil {
		return nil, nil, err
	}
	l, err := lake.Open(ctx, lake.Config{WALDir: filepath.Join(dir, "wal"), Store: st, MaxSegmentBytes: int64(segmentMB) << 20})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return l, st, nil
}

func prepare(args []string) error {
	fs := flag.NewFlagSet("prepare", flag.ExitOnError)
	dir := fs.String("dir", "", "data directory (its lake and wal)")
	n := fs.Int("predictions", 1_000_000, "predictions to store")
	days := fs.Int("days", 3, "days they span, ending now")
	shadowEvery := fs.Int("shadow-every", 10, "one prediction in this many also has a shadow challenger's row (0: none)")
	segmentMB := fs.Int("segment-mb", 64, "WAL segment size: one Parquet file per model and date per segment")
	fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("prepare: -dir is required")
	}
	ctx := context.Background()
	start := time.Now()
	l, st, err := openLake(ctx, *dir, *segmentMB)
	if err != nil {
		return err
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(7, 11))
	end := time.Now().Add(-time.Minute)
	first := end.Add(-time.Duration(*days) * 24 * time.Hour)
	step := end.Sub(first) / time.Duration(*n)
	ids := make([]string, 0, *n)
	batch := make([]lake.Prediction, 0, 1100)
	rows := 0
	for i := range *n {
		at := first.Add(time.Duration(i) * step)
		id := idAt(at.Add(300*time.Microsecond), rng.Uint64())
		p := rng.Float64()
		label := 0
		if p >= 0.5 {
			label = 1
		}
		resp := fmt.Sprintf(`%s,"prediction":{"label":%d,"probability":%v,"threshold":0.5},"model":{"name":%q,"version":1,"alias":"champion","metrics":{"accuracy":0.885,"roc_auc":0.938}},"prediction_id":%q,"scored_at":%q}`,
			features[:len(features)-1], label, p, model, id, at.UTC().Format(time.RFC3339Nano))
		batch = append(batch, lake.Prediction{
			PredictionID: id, ScoredAt: at, Model: model, Version: 1, Alias: "champion", Label: label,
			Probability: p, Threshold: 0.5, LatencyMicros: 150, RequestID: fmt.Sprintf("req-%d", i),
			Features: []byte(features), Response: []byte(resp),
		})
		if *shadowEvery > 0 && i%*shadowEvery == 0 {
			s := batch[len(batch)-1]
			s.Version, s.Alias, s.Shadow, s.Probability = 2, "challenger", true, rng.Float64()
			s.Label = 0
			if s.Probability >= 0.5 {
				s.Label = 1
			}
			batch = append(batch, s)
		}
		ids = append(ids, id)
		if len(batch) >= 1000 {
			if err := l.AppendPredictions(ctx, batch...); err != nil {
				return err
			}
			rows += len(batch)
			batch = batch[:0]
		}
	}
	if err := l.AppendPredictions(ctx, batch...); err != nil {
		return err
	}
	rows += len(batch)
	if err := l.Close(ctx); err != nil {
		return err
	}
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	f, err := os.Create(filepath.Join(*dir, "ids.txt"))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, id := range ids {
		w.WriteString(id + "\n")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	files, _ := filepath.Glob(filepath.Join(*dir, "lake", "predictions", "*", "*", "*.parquet"))
	return report(map[string]any{"run": "prepare", "predictions": *n, "rows": rows, "days": *days, "files": len(files),
		"seconds": round(time.Since(start).Seconds())})
}

func readIDs(dir string, offset, n int) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "ids.txt"))
	if err != nil {
		return nil, err
	}
	all := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	if offset+n > len(all) {
		return nil, fmt.Errorf("ids.txt has %d ids, want at least %d (offset %d + labels %d)", len(all), offset+n, offset, n)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = string(all[offset+i])
	}
	return ids, nil
}

// latencies summarises batch latencies in milliseconds.
func latencies(ds []time.Duration) map[string]float64 {
	slices.Sort(ds)
	at := func(q float64) float64 {
		return round(float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000)
	}
	return map[string]float64{"p50": at(0.5), "p99": at(0.99), "max": at(1)}
}

func submit(args []string) error {
	fs := flag.NewFlagSet("submit", flag.ExitOnError)
	dir := fs.String("dir", "", "data directory made by prepare")
	labels := fs.Int("labels", 200_000, "labels to send")
	batchN := fs.Int("batch", 1000, "labels per Submit")
	offset := fs.Int("offset", 0, "first id of ids.txt to label")
	workers := fs.Int("workers", 2, "goroutines calling Submit")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	fs.Parse(args)
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ids, err := readIDs(*dir, *offset, *labels)
	if err != nil {
		return err
	}
	ctx := context.Background()
	openStart := time.Now()
	l, st, err := openLake(ctx, *dir, 64)
	if err != nil {
		return err
	}
	defer st.Close()
	defer l.Close(ctx)
	openSeconds := time.Since(openStart).Seconds()
	svc, err := feedback.New(feedback.Config{Lake: l})
	if err != nil {
		return err
	}
	observed := time.Now().UTC().Format(time.RFC3339)
	batches := make(chan []string)
	var mu sync.Mutex
	var lat []time.Duration
	var sum feedback.Summary
	var firstBatch time.Duration
	var runErr error
	var cpu0 = cpuSeconds()
	start := time.Now()
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				items := make([]feedback.Feedback, len(b))
				for i, id := range b {
					items[i] = feedback.Feedback{PredictionID: id, Label: json.RawMessage([]string{"0", "1"}[i%2]), ObservedAt: observed, Source: feedback.SourceAPI, ID: "bench"}
				}
				t := time.Now()
				rs, err := svc.Submit(ctx, items)
				d := time.Since(t)
				mu.Lock()
				if err != nil && runErr == nil {
					runErr = err
				}
				if firstBatch == 0 {
					firstBatch = d
				}
				lat = append(lat, d)
				s := feedback.Summarize(rs)
				sum.Received += s.Received
				sum.Joined += s.Joined
				sum.Duplicate += s.Duplicate
				sum.Unknown += s.Unknown
				sum.Invalid += s.Invalid
				sum.Outcomes += s.Outcomes
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < len(ids); i += *batchN {
		batches <- ids[i:min(i+*batchN, len(ids))]
	}
	close(batches)
	wg.Wait()
	secs := time.Since(start).Seconds()
	if runErr != nil {
		return runErr
	}
	lm := latencies(lat)
	lm["first"] = round(float64(firstBatch.Microseconds()) / 1000)
	return report(map[string]any{"run": "submit", "labels": *labels, "batch": *batchN, "workers": *workers,
		"open_seconds": round(openSeconds), "seconds": round(secs), "labels_per_s": int(float64(*labels) / secs),
		"cpu_seconds": round(cpuSeconds() - cpu0), "batch_ms": lm, "summary": sum})
}

func post(args []string) error {
	fs := flag.NewFlagSet("post", flag.ExitOnError)
	dir := fs.String("dir", "", "data directory made by prepare (for ids.txt)")
	url := fs.String("url", "", "base URL of pulse serve")
	labels := fs.Int("labels", 200_000, "labels to send")
	batchN := fs.Int("batch", 1000, "labels per request")
	offset := fs.Int("offset", 0, "first id of ids.txt to label")
	clients := fs.Int("clients", 4, "concurrent HTTP clients")
	fs.Parse(args)
	ids, err := readIDs(*dir, *offset, *labels)
	if err != nil {
		return err
	}
	observed := time.Now().UTC().Format(time.RFC3339)
	var bodies [][]byte
	for i := 0; i < len(ids); i += *batchN {
		var b bytes.Buffer
		b.WriteString(`{"feedback":[`)
		for k, id := range ids[i:min(i+*batchN, len(ids))] {
			if k > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"prediction_id":%q,"label":%d,"observed_at":%q}`, id, k%2, observed)
		}
		b.WriteString(`]}`)
		bodies = append(bodies, b.Bytes())
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients}}
	work := make(chan []byte)
	var mu sync.Mutex
	var lat []time.Duration
	var sum feedback.Summary
	var runErr error
	var maxBody int
	start := time.Now()
	var wg sync.WaitGroup
	for range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range work {
				t := time.Now()
				resp, err := client.Post(*url+"/v1/feedback", "application/json", bytes.NewReader(body))
				var ans feedback.Summary
				if err == nil {
					raw, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("POST /v1/feedback: %d %s", resp.StatusCode, raw)
					} else {
						err = json.Unmarshal(raw, &ans)
					}
				}
				d := time.Since(t)
				mu.Lock()
				if err != nil && runErr == nil {
					runErr = err
				}
				lat = append(lat, d)
				maxBody = max(maxBody, len(body))
				sum.Received += ans.Received
				sum.Joined += ans.Joined
				sum.Duplicate += ans.Duplicate
				sum.Unknown += ans.Unknown
				sum.Invalid += ans.Invalid
				sum.Outcomes += ans.Outcomes
				mu.Unlock()
			}
		}()
	}
	for _, b := range bodies {
		work <- b
	}
	close(work)
	wg.Wait()
	secs := time.Since(start).Seconds()
	if runErr != nil {
		return runErr
	}
	return report(map[string]any{"run": "post", "labels": *labels, "batch": *batchN, "clients": *clients, "max_body_bytes": maxBody,
		"seconds": round(secs), "labels_per_s": int(float64(*labels) / secs), "labelgen_cpu_seconds": round(cpuSeconds()),
		"request_ms": latencies(lat), "summary": sum})
}

func report(v map[string]any) error {
	v["gomaxprocs"] = runtime.GOMAXPROCS(0)
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

func round(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// cpuSeconds is the CPU time (user and system) this process used so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
