// Package http is Pulse's REST API: the routes, the middleware chain every route goes through,
// RFC 9457 problem details, Prometheus metrics and the OpenAPI 3.1 document.
package http

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cloudmedical/pulse/internal/bundle"
	"github.com/cloudmedical/pulse/internal/evaluator"
	"github.com/cloudmedical/pulse/internal/jobs"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/serving"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 document that describes this API.
func OpenAPI() []byte { return openAPI }

// Config configures a Server.
type Config struct {
	Addr     string
	Registry *registry.Service
	Scorer   *serving.Scorer
	// Jobs, when set, runs training as jobs: POST /v1/models/{model}/train answers 202 with
	// the job (or waits for it with ?wait=true), and the /v1/jobs routes work. Without it,
	// training runs within the request.
	Jobs *jobs.Service
	// Ready reports whether the dependencies can serve (metadata store, lake); nil means ready.
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
	// Metrics is the Prometheus registry the server registers on and serves at /metrics.
	Metrics *prometheus.Registry
	// MaxBodyBytes bounds a request body (default 1 MiB); MaxUploadBytes a dataset upload
	// (default 1 GiB).
	MaxBodyBytes   int64
	MaxUploadBytes int64
	// AsyncAPI is the AsyncAPI document of the event backbone, served at /asyncapi.json;
	// nil when events are off.
	AsyncAPI []byte
	// Online, when set, reports the state of the online follower of a model (see
	// internal/online; the value is its Status), for GET /v1/models/{model}/online. nil when
	// no follower runs in this process.
	Online func(model string) (status any, ok bool)
	// Signer signs the model bundles of GET /v1/models/{model}/versions/{version}/bundle
	// (503 without it); its public key is served at GET /v1/signing-keys.
	Signer *bundle.Signer
	// PulseVersion is recorded in bundles.
	PulseVersion string
	// Feedback, when set, takes ground truth at POST /v1/feedback (feedback.go); 503 without it.
	Feedback Feedback
	// Evaluation, when set, serves live metrics, drift, policies and the audit trail
	// (evaluation.go); 503 without it.
	Evaluation *evaluator.Evaluator
}

// Server serves the API.
type Server struct {
	cfg      Config
	log      *slog.Logger
	srv      *http.Server
	ln       net.Listener
	metrics  *httpMetrics
	draining atomic.Bool
}

// New returns a Server; Open starts it.
func New(cfg Config) (*Server, error) {
	if cfg.Registry == nil || cfg.Scorer == nil {
		return nil, fmt.Errorf("http: Registry and Scorer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = 1 << 30
	}
	m, err := newHTTPMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: m}
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handler returns the routes wrapped in the middleware chain.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /openapi.json", s.openapi)
	mux.HandleFunc("GET /asyncapi.json", s.asyncapi)

	mux.HandleFunc("POST /v1/datasets", s.createDataset)
	mux.HandleFunc("GET /v1/datasets", s.listDatasets)
	mux.HandleFunc("GET /v1/datasets/{dataset}", s.getDataset)

	mux.HandleFunc("GET /v1/models", s.listModels)
	mux.HandleFunc("GET /v1/models/{model}", s.getModel)
	mux.HandleFunc("GET /v1/models/{model}/versions", s.listVersions)
	mux.HandleFunc("GET /v1/models/{model}/versions/{version}", s.getVersion)
	mux.HandleFunc("GET /v1/models/{model}/versions/{version}/artifact", s.getArtifact)
	mux.HandleFunc("POST /v1/models/{model}/train", s.train)
	mux.HandleFunc("PUT /v1/models/{model}/aliases/{alias}", s.setAlias)
	mux.HandleFunc("DELETE /v1/models/{model}/aliases/{alias}", s.deleteAlias)
	mux.HandleFunc("POST /v1/models/{model}/predict", s.predict)
	mux.HandleFunc("GET /v1/models/{model}/online", s.getOnline)
	mux.HandleFunc("GET /v1/models/{model}/versions/{version}/bundle", s.getBundle) // bundle.go
	mux.HandleFunc("GET /v1/signing-keys", s.signingKeys)

	mux.HandleFunc("GET /v1/jobs", s.listJobs)
	mux.HandleFunc("GET /v1/jobs/{id}", s.getJob)
	mux.HandleFunc("POST /v1/jobs/{id}/cancel", s.cancelJob)
	mux.HandleFunc("POST /v1/models/{model}/score-jobs", s.scoreJob)
	mux.HandleFunc("POST /v1/feedback", s.submitFeedback) // feedback.go

	mux.HandleFunc("GET /v1/models/{model}/versions/{version}/live", s.getLive) // evaluation.go
	mux.HandleFunc("GET /v1/models/{model}/policy", s.getPolicy)
	mux.HandleFunc("PUT /v1/models/{model}/policy", s.putPolicy)
	mux.HandleFunc("GET /v1/models/{model}/policy/versions", s.listPolicies)
	mux.HandleFunc("GET /v1/models/{model}/events", s.listModelEvents)

	mux.HandleFunc("/", s.notFound)
	return s.chain(mux)
}

// Open listens on the configured address and serves in the background.
func (s *Server) Open() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("http: listen: %w", err)
	}
	s.ln = ln
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
	return nil
}

// Addr is the address the server listens on (useful with port 0).
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.cfg.Addr
	}
	return s.ln.Addr().String()
}

// Close stops accepting requests, lets those in flight finish (until ctx ends) and returns.
func (s *Server) Close(ctx context.Context) error {
	s.draining.Store(true)
	return s.srv.Shutdown(ctx)
}
