package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cloudmedical/pulse/internal/registry/registrytest"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gocloud.dev/blob"

	"github.com/cloudmedical/pulse/internal/blobstore"
	"github.com/cloudmedical/pulse/internal/lake"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/serving"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// recordingSink keeps the records appended to it.
type recordingSink struct {
	mu   sync.Mutex
	recs []lake.Prediction
}

func (s *recordingSink) AppendPredictions(ctx context.Context, recs ...lake.Prediction) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, recs...)
	return nil
}

// smallCSV is a dataset with a numeric and a categorical input and a 0/1 target.
func smallCSV() string {
	var b strings.Builder
	b.WriteString("x,g,y\n")
	for i := range 40 {
		y := 0
		if i%5 > 1 {
			y = 1
		}
		fmt.Fprintf(&b, "%d,%c,%d\n", i%7+y, 'a'+byte(i%3), y)
	}
	return b.String()
}

type testServer struct {
	srv     *Server
	h       http.Handler
	reg     *registry.Service
	sink    *recordingSink
	lake    *blobstore.Store
	metrics *prometheus.Registry
}

// newTestServer returns a server over real stores in a temp dir, with dataset "small" and
// model "m" (version 1, champion) registered. edit may change the config before New.
func newTestServer(t *testing.T, edit func(*Config)) *testServer {
	t.Helper()
	ctx := context.Background()
	st := registrytest.New(t)
	db, blobs, lakeSt := st.DB, st.Blobs, st.Lake
	reg, err := registry.New(ctx, registry.Config{Store: db, Blobs: blobs, Lake: lakeSt})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.RegisterDataset(ctx, registry.RegisterDatasetRequest{Name: "small", Body: strings.NewReader(smallCSV()), Options: tabular.Options{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Train(ctx, "m", registry.TrainRequest{Dataset: "small", Target: "y", CVFolds: -1}); err != nil {
		t.Fatal(err)
	}
	sink := &recordingSink{}
	scorer, err := serving.New(serving.Config{Models: reg, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Addr: "127.0.0.1:0", Registry: reg, Scorer: scorer, Metrics: prometheus.NewRegistry()}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{srv: s, h: s.Handler(), reg: reg, sink: sink, lake: lakeSt, metrics: cfg.Metrics}
}

// do serves one request in process.
func (ts *testServer) do(method, target, contentType string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	ts.h.ServeHTTP(rec, req)
	return rec
}

// problem checks that rec is a problem with the status and returns it.
func problem(t *testing.T, what string, rec *httptest.ResponseRecorder, status int) Problem {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("%s: got %d %s, want %d", what, rec.Code, rec.Body, status)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: Content-Type %q, want application/problem+json", what, ct)
	}
	var p Problem
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s: problem body: %v", what, err)
	}
	if p.Status != status || p.Type != "urn:pulse:problem:"+p.Code || p.Title != http.StatusText(status) || p.Detail == "" {
		t.Errorf("%s: got problem %+v", what, p)
	}
	if id := rec.Header().Get("X-Request-Id"); id == "" || p.RequestID != id {
		t.Errorf("%s: problem request_id %q, header %q, want the same", what, p.RequestID, id)
	}
	return p
}

// documentedStatuses reads the code -> status table of docs/API.md.
func documentedStatuses(t *testing.T) map[string]int {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "API.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([0-9]{3}) \\|")
	want := map[string]int{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		want[m[1]], _ = strconv.Atoi(m[2])
	}
	return want
}

func TestProblemForEveryCode(t *testing.T) {
	want := documentedStatuses(t)
	codes := []string{pulse.EINVALID, pulse.EUNPROCESSABLE, pulse.ENOTFOUND, pulse.ECONFLICT, pulse.ETOOLARGE, pulse.EUNAVAILABLE, pulse.EINTERNAL}
	if len(want) != len(codes) {
		t.Fatalf("docs/API.md lists %d codes (%v), want %d", len(want), want, len(codes))
	}
	// The OpenAPI document lists the same codes.
	var doc struct {
		Components struct {
			Schemas struct {
				Problem struct {
					Properties struct {
						Code struct {
							Enum []string `json:"enum"`
						} `json:"code"`
					} `json:"properties"`
				} `json:"Problem"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(slices.Values(doc.Components.Schemas.Problem.Properties.Code.Enum)); !slices.Equal(got, slices.Sorted(slices.Values(codes))) {
		t.Errorf("openapi.json problem codes: got %q, want %q", got, codes)
	}

	for _, code := range codes {
		status, ok := want[code]
		if !ok {
			t.Errorf("code %s is not documented", code)
			continue
		}
		for _, err := range []error{
			&pulse.Error{Code: code, Message: "row 3, column \"age\": bad", Field: "age", Row: 3},
			fmt.Errorf("wrapped: %w", &pulse.Error{Code: code, Message: "row 3, column \"age\": bad", Field: "age", Row: 3}),
		} {
			req := httptest.NewRequest("POST", "/v1/datasets?name=x", nil)
			req = req.WithContext(context.WithValue(req.Context(), requestIDKey, "rid-1"))
			rec := httptest.NewRecorder()
			rec.Header().Set("X-Request-Id", "rid-1")
			writeError(rec, req, slog.New(slog.DiscardHandler), err)
			p := problem(t, code, rec, status)
			if p.Code != code || p.Field != "age" || p.Row != 3 || p.Detail != `row 3, column "age": bad` || p.Instance != "/v1/datasets" {
				t.Errorf("%s: got %+v", code, p)
			}
			if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: no X-Content-Type-Options: nosniff", code)
			}
		}
	}

	// Any other error is a 500 whose text stays in the log.
	req := httptest.NewRequest("GET", "/v1/models", nil)
	rec := httptest.NewRecorder()
	var logged bytes.Buffer
	writeError(rec, req, slog.New(slog.NewTextHandler(&logged, nil)), errors.New("dial tcp 10.1.2.3:5432: secret-host refused"))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "secret-host") {
		t.Errorf("plain error: got %d %s, want 500 without the error's text", rec.Code, rec.Body)
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code != pulse.EINTERNAL || p.Detail != "internal error" || p.Field != "" || p.Row != 0 {
		t.Errorf("plain error: got %+v (err %v)", p, err)
	}
	if !strings.Contains(logged.String(), "secret-host") {
		t.Errorf("the internal error is not logged: %q", logged.String())
	}
}

func TestRouteProblems(t *testing.T) {
	ts := newTestServer(t, nil)
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormField("comment")
	fw.Write([]byte("no file here"))
	mw.Close()
	badCSV := strings.Replace(smallCSV(), "\n3,a,", "\nthree,a,", 1)
	badRow := slices.IndexFunc(strings.Split(badCSV, "\n"), func(l string) bool { return strings.HasPrefix(l, "three,") }) // header is line 0

	for _, tc := range []struct {
		method, target, contentType, body string
		status                            int
		code, field                       string
		row                               int
	}{
		{"GET", "/v1/models/nope", "", "", 404, pulse.ENOTFOUND, "", 0},
		{"GET", "/v1/models/nope/versions", "", "", 404, pulse.ENOTFOUND, "", 0},
		{"GET", "/v1/models/m/versions/x", "", "", 400, pulse.EINVALID, "version", 0},
		{"GET", "/v1/models/m/versions/0", "", "", 400, pulse.EINVALID, "version", 0},
		{"GET", "/v1/models/m/versions/2", "", "", 404, pulse.ENOTFOUND, "", 0},
		{"GET", "/v1/models/m/versions/-1/artifact", "", "", 400, pulse.EINVALID, "version", 0},
		{"GET", "/v1/models/m/versions/2/artifact", "", "", 404, pulse.ENOTFOUND, "", 0},
		{"GET", "/v1/datasets/nope", "", "", 404, pulse.ENOTFOUND, "", 0},
		{"GET", "/v1/datasets/small@x", "", "", 400, pulse.EINVALID, "", 0},
		{"POST", "/v1/models/m/train", "application/json", `{"dataset":1}`, 422, pulse.EUNPROCESSABLE, "dataset", 0},
		{"POST", "/v1/models/m/train", "application/json", `{"dataset":"small","target":"y","colour":1}`, 422, pulse.EUNPROCESSABLE, "colour", 0},
		{"POST", "/v1/models/m/train", "application/json", `{"dataset":"small","target":"y"} {}`, 400, pulse.EINVALID, "", 0},
		{"POST", "/v1/models/m/train", "application/json", `{"dataset":"small"`, 400, pulse.EINVALID, "", 0},
		{"POST", "/v1/models/m/train", "application/json", ``, 400, pulse.EINVALID, "", 0},
		{"POST", "/v1/models/m/train", "application/json", `{"dataset":"small","target":"nope"}`, 422, pulse.EUNPROCESSABLE, "target", 0},
		{"POST", "/v1/models/Bad%20Name/train", "application/json", `{"dataset":"small","target":"y"}`, 400, pulse.EINVALID, "model", 0},
		{"PUT", "/v1/models/m/aliases/challenger", "application/json", `{"version":0}`, 422, pulse.EUNPROCESSABLE, "version", 0},
		{"PUT", "/v1/models/m/aliases/challenger", "application/json", `{"version":"1"}`, 422, pulse.EUNPROCESSABLE, "version", 0},
		{"PUT", "/v1/models/m/aliases/challenger", "application/json", `{"version":9}`, 404, pulse.ENOTFOUND, "", 0},
		{"PUT", "/v1/models/m/aliases/Bad%20Alias", "application/json", `{"version":1}`, 400, pulse.EINVALID, "alias", 0},
		{"PUT", "/v1/models/m/aliases/challenger", "application/json", `[1]`, 422, pulse.EUNPROCESSABLE, "", 0},
		{"DELETE", "/v1/models/m/aliases/challenger", "", "", 404, pulse.ENOTFOUND, "", 0},
		{"POST", "/v1/models/m/predict?version=0", "application/json", `{}`, 400, pulse.EINVALID, "version", 0},
		{"POST", "/v1/models/m/predict?version=1&alias=champion", "application/json", `{}`, 400, pulse.EINVALID, "version", 0},
		{"POST", "/v1/models/m/predict?strict=yes", "application/json", `{}`, 400, pulse.EINVALID, "strict", 0},
		{"POST", "/v1/models/m/predict?alias=nope", "application/json", `{}`, 404, pulse.ENOTFOUND, "alias", 0},
		{"POST", "/v1/models/m/predict", "application/json", `{"x":"seven"}`, 422, pulse.EUNPROCESSABLE, "x", 0},
		{"POST", "/v1/models/m/predict", "application/json", `{"x":`, 400, pulse.EINVALID, "", 0},
		{"POST", "/v1/datasets?name=broken&kinds=x:numeric", "text/csv", badCSV, 422, pulse.EUNPROCESSABLE, "x", badRow},
		{"POST", "/v1/datasets", "text/csv", smallCSV(), 400, pulse.EINVALID, "name", 0},
		{"POST", "/v1/datasets?name=Bad%20Name", "text/csv", smallCSV(), 400, pulse.EINVALID, "name", 0},
		{"POST", "/v1/datasets?name=x", "application/json", `{}`, 400, pulse.EINVALID, "", 0},
		{"POST", "/v1/datasets?name=x", mw.FormDataContentType(), mp.String(), 400, pulse.EINVALID, "file", 0},
		{"POST", "/v1/datasets?name=x", "multipart/form-data; boundary=zzz", "garbage", 400, pulse.EINVALID, "", 0},
	} {
		what := tc.method + " " + tc.target + " " + tc.body
		rec := ts.do(tc.method, tc.target, tc.contentType, []byte(tc.body))
		if rec.Code != tc.status {
			t.Errorf("%s: got %d %s, want %d", what, rec.Code, rec.Body, tc.status)
			continue
		}
		p := problem(t, what, rec, tc.status)
		u, _ := url.Parse(tc.target)
		if p.Code != tc.code || p.Field != tc.field || p.Row != tc.row || p.Instance != u.Path {
			t.Errorf("%s: got %+v, want code %s field %q row %d", what, p, tc.code, tc.field, tc.row)
		}
	}
	if _, err := ts.reg.Dataset(context.Background(), "broken"); pulse.ErrorCode(err) != pulse.ENOTFOUND {
		t.Errorf("a refused upload was recorded (err %v)", err)
	}
}

func TestUnknownRoute(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/nope"},
		{"POST", "/v1/nothing"},
		{"DELETE", "/v1/models"},
		{"GET", "/v1/models/m/predict"},
		{"GET", "/v1/models/m/versions/1/artifact/extra"},
	} {
		rec := ts.do(tc.method, tc.path, "", nil)
		p := problem(t, tc.method+" "+tc.path, rec, 404)
		if p.Code != pulse.ENOTFOUND || p.Instance != tc.path || !strings.Contains(p.Detail, tc.method+" "+tc.path) {
			t.Errorf("%s %s: got %+v", tc.method, tc.path, p)
		}
	}
}

func TestPanicRecovered(t *testing.T) {
	ts := newTestServer(t, nil)
	s := ts.srv
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boom", func(w http.ResponseWriter, r *http.Request) { panic("secret state") })
	mux.HandleFunc("GET /abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("GET /ok", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	hs := httptest.NewServer(s.chain(mux))
	defer hs.Close()

	resp, err := http.Get(hs.URL + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var p Problem
	if resp.StatusCode != 500 || resp.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(body, &p) != nil {
		t.Fatalf("panic: got %d %q %s, want a 500 problem", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if p.Code != pulse.EINTERNAL || p.Detail != "internal error" || strings.Contains(string(body), "secret") || p.RequestID != resp.Header.Get("X-Request-Id") || p.RequestID == "" {
		t.Errorf("panic problem: got %s", body)
	}
	// http.ErrAbortHandler still aborts the response, as net/http intends.
	if resp, err := http.Get(hs.URL + "/abort"); err == nil {
		resp.Body.Close()
		t.Errorf("ErrAbortHandler: got a response %d, want the connection aborted", resp.StatusCode)
	}
	for range 2 {
		resp, err := http.Get(hs.URL + "/ok")
		if err != nil {
			t.Fatalf("after the panic: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("after the panic: got %d, want 200", resp.StatusCode)
		}
	}
	// The recovered panic is counted like any other 500.
	if got := counter(t, ts.metrics, "pulse_http_requests_total", map[string]string{"method": "GET", "route": "GET /boom", "code": "500"}); got != 1 {
		t.Errorf("pulse_http_requests_total for the panic: got %v, want 1", got)
	}
	if got := counter(t, ts.metrics, "pulse_http_requests_total", map[string]string{"method": "GET", "route": "GET /ok", "code": "200"}); got != 2 {
		t.Errorf("pulse_http_requests_total for /ok: got %v, want 2", got)
	}
}

// counter returns the value of the counter with exactly these labels, or -1.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

func TestBodyLimit(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxBodyBytes = 256; c.MaxUploadBytes = 2048 })
	pad := func(n int) []byte {
		return []byte(`{"x":1,"pad":"` + strings.Repeat("p", n-len(`{"x":1,"pad":""}`)) + `"}`)
	}
	medium := []byte(smallCSV() + strings.Repeat("3,c,1\n", 50)) // over MaxBodyBytes, under MaxUploadBytes
	big := []byte(strings.Repeat("1,a,0\n", 600))                // 3600 bytes
	big = append([]byte("x,g,y\n"), big...)
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "big.csv")
	fw.Write(big)
	mw.Close()

	for _, tc := range []struct {
		name, target, contentType string
		body                      []byte
		chunked                   bool
		status                    int
	}{
		{"predict at the limit", "/v1/models/m/predict", "application/json", pad(256), false, 200},
		{"predict over the limit", "/v1/models/m/predict", "application/json", pad(257), false, 413},
		{"predict over the limit, chunked", "/v1/models/m/predict", "application/json", pad(257), true, 413},
		{"train over the limit, chunked", "/v1/models/m/train", "application/json", pad(300), true, 413},
		{"alias over the limit", "/v1/models/m/aliases/x", "application/json", pad(300), false, 413},
		{"upload over the body limit, under the upload limit", "/v1/datasets?name=medium", "text/csv", medium, true, 201},
		{"upload over the upload limit", "/v1/datasets?name=big", "text/csv", big, false, 413},
		{"upload over the upload limit, chunked", "/v1/datasets?name=big", "text/csv", big, true, 413},
		{"multipart upload over the upload limit, chunked", "/v1/datasets?name=big", mw.FormDataContentType(), mp.Bytes(), true, 413},
	} {
		method := "POST"
		if strings.Contains(tc.target, "aliases") {
			method = "PUT"
		}
		req := httptest.NewRequest(method, tc.target, bytes.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.contentType)
		if tc.chunked {
			req.ContentLength = -1
		}
		rec := httptest.NewRecorder()
		ts.h.ServeHTTP(rec, req)
		if tc.status != 413 {
			if rec.Code != tc.status {
				t.Errorf("%s: got %d %s, want %d", tc.name, rec.Code, rec.Body, tc.status)
			}
			continue
		}
		if p := problem(t, tc.name, rec, 413); p.Code != pulse.ETOOLARGE {
			t.Errorf("%s: got %+v", tc.name, p)
		}
	}
	it := ts.lake.Bucket.List(&blob.ListOptions{Prefix: "datasets/name=big/"})
	if obj, err := it.Next(context.Background()); err != io.EOF {
		t.Errorf("an upload over the limit left an object: %v %v", obj, err)
	}
}

func TestRequestID(t *testing.T) {
	ts := newTestServer(t, nil)
	hex24 := regexp.MustCompile(`^[0-9a-f]{24}$`)
	seen := map[string]bool{}
	for _, tc := range []struct {
		name, sent string
		echoed     bool
	}{
		{"none", "", false},
		{"none again", "", false},
		{"client's own", "req-7f3a", true},
		{"128 characters", strings.Repeat("a", 128), true},
		{"too long", strings.Repeat("a", 129), false},
	} {
		for _, target := range []string{"/healthz", "/v1/models/nope"} {
			req := httptest.NewRequest("GET", target, nil)
			if tc.sent != "" {
				req.Header.Set("X-Request-Id", tc.sent)
			}
			rec := httptest.NewRecorder()
			ts.h.ServeHTTP(rec, req)
			got := rec.Header().Get("X-Request-Id")
			switch {
			case tc.echoed && got != tc.sent:
				t.Errorf("%s %s: got %q, want %q echoed", tc.name, target, got, tc.sent)
			case !tc.echoed && (!hex24.MatchString(got) || seen[got]):
				t.Errorf("%s %s: got %q, want a new 24-hex-digit id", tc.name, target, got)
			}
			seen[got] = true
			if rec.Code == 404 {
				if p := problem(t, tc.name, rec, 404); p.RequestID != got {
					t.Errorf("%s: problem request_id %q, header %q", tc.name, p.RequestID, got)
				}
			}
		}
	}
	// The id reaches the lake record of a prediction.
	req := httptest.NewRequest("POST", "/v1/models/m/predict", strings.NewReader(`{"x":3}`))
	req.Header.Set("X-Request-Id", "trace-42")
	rec := httptest.NewRecorder()
	ts.h.ServeHTTP(rec, req)
	if rec.Code != 200 || len(ts.sink.recs) != 1 || ts.sink.recs[0].RequestID != "trace-42" {
		t.Errorf("predict: got %d, records %+v, want one with request id trace-42", rec.Code, ts.sink.recs)
	}
}

func TestReadyz(t *testing.T) {
	var readyErr error
	ts := newTestServer(t, func(c *Config) {
		c.Ready = func(ctx context.Context) error { return readyErr }
	})
	status := func() (int, string) {
		rec := ts.do("GET", "/readyz", "", nil)
		if rec.Code != 200 {
			p := problem(t, "readyz", rec, rec.Code)
			return rec.Code, p.Code + ": " + p.Detail
		}
		return rec.Code, rec.Body.String()
	}
	if code, body := status(); code != 200 || body != "{\"status\":\"ready\"}\n" {
		t.Errorf("ready: got %d %s", code, body)
	}
	readyErr = errors.New("database is locked")
	if code, body := status(); code != 503 || !strings.HasPrefix(body, pulse.EUNAVAILABLE+": not ready") {
		t.Errorf("Ready failing: got %d %s, want 503 unavailable", code, body)
	}
	readyErr = nil
	if code, _ := status(); code != 200 {
		t.Errorf("Ready recovered: got %d, want 200", code)
	}
	if rec := ts.do("GET", "/healthz", "", nil); rec.Code != 200 || rec.Body.String() != "{\"status\":\"ok\"}\n" {
		t.Errorf("healthz: got %d %s", rec.Code, rec.Body)
	}
	if err := ts.srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, body := status(); code != 503 || body != pulse.EUNAVAILABLE+": shutting down" {
		t.Errorf("after Close: got %d %s, want 503 shutting down", code, body)
	}
	if rec := ts.do("GET", "/healthz", "", nil); rec.Code != 200 {
		t.Errorf("healthz after Close: got %d, want 200 (the process is up)", rec.Code)
	}
}

func TestOpenClose(t *testing.T) {
	ts := newTestServer(t, nil)
	if err := ts.srv.Open(); err != nil {
		t.Fatal(err)
	}
	base := "http://" + ts.srv.Addr()
	if strings.HasSuffix(base, ":0") {
		t.Fatalf("Addr: got %s, want the bound port", base)
	}
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("readyz: got %d", resp.StatusCode)
	}
	resp, err = http.Get(base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !bytes.Equal(bytes.TrimSpace(doc), bytes.TrimSpace(OpenAPI())) || !json.Valid(doc) {
		t.Errorf("openapi.json: got %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	http.DefaultClient.CloseIdleConnections()
	if err := ts.srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("after Close: got %d, want no listener", resp.StatusCode)
	}
}

func TestCSVOptions(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, tc := range []struct {
		query string
		want  tabular.Options
		field string
	}{
		{"", tabular.Options{}, ""},
		{"header=true&columns=a,+b+,c&kinds=a:numeric,+b+:+binary&missing=?,-&delimiter=%3B", tabular.Options{
			Header: "true", Columns: []string{"a", "b", "c"}, Kinds: map[string]pulse.Kind{"a": pulse.Numeric, "b": pulse.Binary},
			MissingMarkers: []string{"?", "-"}, Delimiter: ';'}, ""},
		{"header=auto&delimiter=tab", tabular.Options{Header: "auto", Delimiter: '\t'}, ""},
		{`header=false&delimiter=\t`, tabular.Options{Header: "false", Delimiter: '\t'}, ""},
		{"delimiter=%C2%A7", tabular.Options{Delimiter: '§'}, ""},
		{"missing=", tabular.Options{MissingMarkers: []string{""}}, ""},
		{"header=yes", tabular.Options{}, "header"},
		{"header=TRUE", tabular.Options{}, "header"},
		{"kinds=age", tabular.Options{}, "kinds"},
		{"kinds=age:number", tabular.Options{}, "kinds"},
		{"kinds=age:numeric,", tabular.Options{}, "kinds"},
		{"delimiter=%3B%3B", tabular.Options{}, "delimiter"},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := csvOptions(q)
		if tc.field != "" {
			var pe *pulse.Error
			if !errors.As(err, &pe) || pe.Code != pulse.EINVALID || pe.Field != tc.field || !strings.Contains(pe.Message, tc.field) {
				t.Errorf("%s: got %v, want an invalid error naming %q", tc.query, err, tc.field)
			}
			// And through the route, before the body is read.
			p := problem(t, tc.query, ts.do("POST", "/v1/datasets?name=q&"+tc.query, "text/csv", []byte(smallCSV())), 400)
			if p.Field != tc.field {
				t.Errorf("%s: problem field %q, want %q", tc.query, p.Field, tc.field)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.query, err)
			continue
		}
		if got.Header != tc.want.Header || !slices.Equal(got.Columns, tc.want.Columns) || !equalKinds(got.Kinds, tc.want.Kinds) ||
			!slices.Equal(got.MissingMarkers, tc.want.MissingMarkers) || got.Delimiter != tc.want.Delimiter {
			t.Errorf("%s: got %+v, want %+v", tc.query, got, tc.want)
		}
	}
}

func equalKinds(a, b map[string]pulse.Kind) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestDatasetNameFromFile(t *testing.T) {
	for in, want := range map[string]string{
		"processed.cleveland.data": "processed.cleveland",
		"Heart.CSV":                "heart",
		"dir/sub/data.csv":         "data",
		"noext":                    "noext",
		".hidden":                  ".hidden",
	} {
		if got := datasetNameFromFile(in); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

func TestCreateDataset(t *testing.T) {
	ts := newTestServer(t, nil)
	data := []byte(smallCSV() + "3,c,1\n")
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("comment", "before the file")
	fw, _ := mw.CreateFormFile("file", "Weekly.Extract.csv")
	fw.Write(data)
	mw.Close()
	rec := ts.do("POST", "/v1/datasets?kinds=x:numeric", mw.FormDataContentType(), mp.Bytes())
	if rec.Code != 201 {
		t.Fatalf("multipart upload: got %d %s", rec.Code, rec.Body)
	}
	var d pulse.Dataset
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if d.Name != "weekly.extract" || d.Version != 1 || d.Rows != 41 || d.SHA256 != hex.EncodeToString(sum[:]) || rec.Header().Get("Location") != "/v1/datasets/"+d.ID {
		t.Errorf("multipart upload: got %+v, Location %q", d, rec.Header().Get("Location"))
	}
	// The same bytes as text/csv under the same name: 200 with the same dataset.
	rec = ts.do("POST", "/v1/datasets?name=weekly.extract", "text/csv; charset=utf-8", data)
	var again pulse.Dataset
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &again) != nil || again.ID != d.ID {
		t.Errorf("same bytes again: got %d %s, want 200 with id %s", rec.Code, rec.Body, d.ID)
	}
	rec = ts.do("GET", "/v1/datasets", "", nil)
	var list struct {
		Datasets []pulse.Dataset `json:"datasets"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &list) != nil || len(list.Datasets) != 2 {
		t.Errorf("list: got %d %s, want 2 datasets", rec.Code, rec.Body)
	}
}

func TestModelRoutes(t *testing.T) {
	ts := newTestServer(t, nil)
	rec := ts.do("GET", "/v1/models/m/versions/1/artifact", "", nil)
	v, err := ts.reg.Version(context.Background(), "m", 1)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(rec.Body.Bytes())
	if rec.Code != 200 || hex.EncodeToString(sum[:]) != v.ArtifactSHA256 || rec.Header().Get("Digest") != "sha-256="+v.ArtifactSHA256 ||
		rec.Header().Get("Content-Disposition") != `attachment; filename="m-v1.json"` {
		t.Errorf("artifact: got %d, headers %v", rec.Code, rec.Header())
	}

	for _, tc := range []struct{ header, want string }{{"cli", "cli"}, {"example", "api"}, {"", "api"}} {
		req := httptest.NewRequest("POST", "/v1/models/m/train", strings.NewReader(`{"dataset":"small","target":"y","cv_folds":-1}`))
		if tc.header != "" {
			req.Header.Set("X-Pulse-Trigger", tc.header)
		}
		rec := httptest.NewRecorder()
		ts.h.ServeHTTP(rec, req)
		var nv pulse.ModelVersion
		if rec.Code != 201 || json.Unmarshal(rec.Body.Bytes(), &nv) != nil || nv.Lineage.Trigger != tc.want ||
			rec.Header().Get("Location") != fmt.Sprintf("/v1/models/m/versions/%d", nv.Version) {
			t.Errorf("train with trigger %q: got %d %s, want 201 with trigger %q", tc.header, rec.Code, rec.Body, tc.want)
		}
	}

	rec = ts.do("PUT", "/v1/models/m/aliases/champion", "application/json", []byte(`{"version":2}`))
	if rec.Code != 200 || rec.Body.String() != `{"alias":"champion","model":"m","previous_version":1,"version":2}`+"\n" {
		t.Errorf("move champion: got %d %s", rec.Code, rec.Body)
	}
	rec = ts.do("PUT", "/v1/models/m/aliases/challenger", "application/json", []byte(`{"version":1}`))
	if rec.Code != 200 || rec.Body.String() != `{"alias":"challenger","model":"m","version":1}`+"\n" {
		t.Errorf("new alias: got %d %s", rec.Code, rec.Body)
	}
	rec = ts.do("POST", "/v1/models/m/predict?alias=challenger", "application/json", []byte(`{"x":2}`))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || !strings.HasPrefix(rec.Body.String(), `{"x":2,"prediction":`) ||
		!strings.Contains(rec.Body.String(), `"model":{"name":"m","version":1,"alias":"challenger"`) {
		t.Errorf("predict by alias: got %d %s", rec.Code, rec.Body)
	}
	if rec := ts.do("DELETE", "/v1/models/m/aliases/challenger", "", nil); rec.Code != 204 || rec.Body.Len() != 0 {
		t.Errorf("delete alias: got %d %s", rec.Code, rec.Body)
	}
	if rec := ts.do("POST", "/v1/models/m/predict?alias=challenger", "application/json", []byte(`{"x":2}`)); rec.Code != 404 {
		t.Errorf("predict with the deleted alias: got %d", rec.Code)
	}
	rec = ts.do("GET", "/v1/models/m", "", nil)
	var m pulse.Model
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &m) != nil || m.LatestVersion != 4 || len(m.Aliases) != 1 || m.Aliases["champion"] != 2 {
		t.Errorf("model: got %d %s", rec.Code, rec.Body)
	}
	rec = ts.do("GET", "/v1/models/m/versions", "", nil)
	var vs struct {
		Versions []pulse.ModelVersion `json:"versions"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &vs) != nil || len(vs.Versions) != 4 || !slices.Equal(vs.Versions[1].Aliases, []string{"champion"}) {
		t.Errorf("versions: got %d %s", rec.Code, rec.Body)
	}
	rec = ts.do("GET", "/v1/models", "", nil)
	if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), `{"models":[{"name":"m"`) {
		t.Errorf("models: got %d %s", rec.Code, rec.Body)
	}
}

func TestNewRequires(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without Registry and Scorer: got no error")
	}
}

func TestJSONTypeErrors(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, tc := range []struct {
		method, target, body, field, detail string
	}{
		{"POST", "/v1/models/m/train", `{"dataset":"small","target":"y","seed":"x"}`, "seed", `field "seed": got a JSON string, want a non-negative integer`},
		{"POST", "/v1/models/m/train", `{"dataset":"small","target":"y","seed":-1}`, "seed", `field "seed": got a JSON number -1, want a non-negative integer`},
		{"POST", "/v1/models/m/train", `{"dataset":"small","target":"y","holdout":"x"}`, "holdout", `field "holdout": got a JSON string, want a number`},
		{"POST", "/v1/models/m/train", `{"dataset":"small","target":"y","params":[1]}`, "params", `field "params": got a JSON array, want an object`},
		{"POST", "/v1/models/m/train", `{"dataset":"small","target":"y","features":"x"}`, "features", `field "features": got a JSON string, want an array`},
		{"POST", "/v1/models/m/train", `{"dataset":true,"target":"y"}`, "dataset", `field "dataset": got a JSON bool, want a string`},
		{"POST", "/v1/models/m/train", `"small"`, "", `request body: got a JSON string, want an object`},
		{"PUT", "/v1/models/m/aliases/x", `{"version":1.5}`, "version", `field "version": got a JSON number 1.5, want an integer`},
		{"PUT", "/v1/models/m/aliases/x", `[1]`, "", `request body: got a JSON array, want an object`},
	} {
		p := problem(t, tc.body, ts.do(tc.method, tc.target, "application/json", []byte(tc.body)), 422)
		if p.Code != pulse.EUNPROCESSABLE || p.Field != tc.field || p.Detail != tc.detail {
			t.Errorf("%s: got field %q detail %q, want %q %q", tc.body, p.Field, p.Detail, tc.field, tc.detail)
		}
	}
}
