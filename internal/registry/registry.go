// Package registry is Pulse's model registry: it registers datasets in the lake, trains model
// versions from them, keeps every version's artifact in the blob store, moves aliases, and hands
// the serving layer loaded, verified models. It holds the business rules (the first version
// becomes champion, an alias moves only to a loadable version); the stores only persist.
package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/cloudmedical/pulse/internal/blobstore"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/monitor"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// Store is what the registry needs from the metadata store.
type Store interface {
	pulse.DatasetStore
	pulse.ModelStore
}

// Config configures a Service.
type Config struct {
	Store  Store
	Blobs  *blobstore.Store // model artifacts
	Lake   *blobstore.Store // registered dataset files
	Logger *slog.Logger
	// Build identifies the running Pulse for lineage.
	PulseVersion string
	GitCommit    string
	// MaxDatasetBytes bounds an uploaded dataset (default 1 GiB): training reads it whole.
	MaxDatasetBytes int64
	// Now returns the current time (default time.Now); tests may fix it.
	Now func() time.Time
	// Notifier, when set, hears of every registered version and moved alias (pulse serve
	// publishes them on the model.events topic).
	Notifier Notifier
	// MaxLoadedVersions bounds the versions kept loaded (and their training profiles), the
	// least recently used going first; a version dropped is read and verified again when
	// next used. Default DefaultMaxLoadedVersions.
	MaxLoadedVersions int
}

// DefaultMaxLoadedVersions is Config.MaxLoadedVersions' default: room for the champions,
// challengers and recent snapshots of many models.
const DefaultMaxLoadedVersions = 256

// Notifier receives the registry's domain events after they are stored. It must not block:
// a slow or failing notifier does not fail the operation.
type Notifier interface {
	VersionRegistered(ctx context.Context, v *pulse.ModelVersion)
	AliasMoved(ctx context.Context, model, alias string, version, previous int)
}

// Service is the registry. Its methods are safe for concurrent use.
type Service struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex // guards loads in flight and alias moves
	loaded *versionCache[*Loaded]
	// aliases maps model name -> map[alias]version, replaced whole on every change so that
	// readers never lock.
	aliases atomic.Pointer[map[string]map[string]int]
	// aliasGen counts the alias moves made here (under mu), so that a reader who fetched
	// aliases from the store before a move does not write them back over it.
	aliasGen atomic.Uint64
	// regMu serialises the check-and-create of RegisterDataset, so that concurrent uploads of
	// the same bytes under the same name record one dataset.
	regMu sync.Mutex
	// live maps model name -> *Loaded: the live model an online follower publishes.
	live sync.Map
	// profiles are the training profiles read (they never change).
	profiles *versionCache[*monitor.Profile]
}

// Loaded is a version with its artifact decoded and verified, ready to score.
type Loaded struct {
	Version *pulse.ModelVersion
	Model   *ml.Model
}

type versionKey struct {
	model   string
	version int
}

// New returns a Service. It loads the current aliases from the store.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Blobs == nil || cfg.Lake == nil {
		return nil, fmt.Errorf("registry: Store, Blobs and Lake are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxDatasetBytes <= 0 {
		cfg.MaxDatasetBytes = 1 << 30
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxLoadedVersions <= 0 {
		cfg.MaxLoadedVersions = DefaultMaxLoadedVersions
	}
	s := &Service{cfg: cfg, log: cfg.Logger,
		loaded:   &versionCache[*Loaded]{max: cfg.MaxLoadedVersions},
		profiles: &versionCache[*monitor.Profile]{max: cfg.MaxLoadedVersions}}
	if err := s.reloadAliases(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// RefreshAliases reloads every alias from the store, so that a process sees the aliases that
// other processes (workers, other servers) moved. pulse serve calls it every few seconds.
func (s *Service) RefreshAliases(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadAliases(ctx)
}

func (s *Service) reloadAliases(ctx context.Context) error {
	models, err := s.cfg.Store.ListModels(ctx)
	if err != nil {
		return fmt.Errorf("registry: load aliases: %w", err)
	}
	m := make(map[string]map[string]int, len(models))
	for _, md := range models {
		a := make(map[string]int, len(md.Aliases))
		for k, v := range md.Aliases {
			a[k] = v
		}
		m[md.Name] = a
	}
	s.aliases.Store(&m)
	return nil
}

// setAliasCache records alias -> version for model (version 0 deletes it), copying the map.
func (s *Service) setAliasCache(model, alias string, version int) {
	old := *s.aliases.Load()
	m := make(map[string]map[string]int, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	a := make(map[string]int, len(old[model])+1)
	for k, v := range old[model] {
		a[k] = v
	}
	if version == 0 {
		delete(a, alias)
	} else {
		a[alias] = version
	}
	m[model] = a
	s.aliases.Store(&m)
}

// RegisterDatasetRequest describes an upload.
type RegisterDatasetRequest struct {
	Name    string
	Body    io.Reader
	Options tabular.Options
}

// RegisterDataset validates a CSV file, stores it immutably in the lake under its SHA-256 and
// records it. Registering the same bytes under the same name again returns the existing
// dataset with created=false. A malformed file is refused before anything is written.
func (s *Service) RegisterDataset(ctx context.Context, req RegisterDatasetRequest) (d *pulse.Dataset, created bool, err error) {
	if !pulse.ValidName(req.Name) {
		return nil, false, pulse.FieldErrorf(pulse.EINVALID, "name", "dataset name %q: want 1-64 characters of a-z, 0-9, '-', '_', '.'", req.Name)
	}
	data, err := io.ReadAll(io.LimitReader(req.Body, s.cfg.MaxDatasetBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("registry: read dataset: %w", err)
	}
	if int64(len(data)) > s.cfg.MaxDatasetBytes {
		return nil, false, pulse.Errorf(pulse.ETOOLARGE, "dataset is larger than %d bytes", s.cfg.MaxDatasetBytes)
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	if existing, err := s.cfg.Store.FindDatasetBySHA(ctx, req.Name, hash); err == nil {
		return existing, false, nil
	} else if pulse.ErrorCode(err) != pulse.ENOTFOUND {
		return nil, false, err
	}
	tbl, err := tabular.ReadCSV(bytes.NewReader(data), req.Options)
	if err != nil {
		return nil, false, err
	}
	key := fmt.Sprintf("datasets/name=%s/sha256=%s/data.csv", req.Name, hash)
	if err := s.writeBlob(ctx, s.cfg.Lake, key, data, "text/csv"); err != nil {
		return nil, false, err
	}
	// Check again under the lock: a concurrent upload of the same bytes may have been recorded
	// meanwhile (the object written above has the same key and content).
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if existing, err := s.cfg.Store.FindDatasetBySHA(ctx, req.Name, hash); err == nil {
		return existing, false, nil
	} else if pulse.ErrorCode(err) != pulse.ENOTFOUND {
		return nil, false, err
	}
	d = &pulse.Dataset{
		ID:        "ds-" + uuid.Must(uuid.NewV7()).String(),
		Name:      req.Name,
		SHA256:    hash,
		Rows:      tbl.Rows,
		Bytes:     int64(len(data)),
		Format:    tbl.Format,
		Schema:    tbl.Schema,
		Location:  key,
		CreatedAt: s.cfg.Now().UTC(),
	}
	if err := s.cfg.Store.CreateDataset(ctx, d); err != nil {
		return nil, false, err
	}
	s.log.Info("dataset registered", "name", d.Name, "version", d.Version, "id", d.ID, "rows", d.Rows, "sha256", d.SHA256, "location", key)
	return d, true, nil
}

// writeBlob writes data under key and makes it durable.
func (s *Service) writeBlob(ctx context.Context, st *blobstore.Store, key string, data []byte, contentType string) error {
	if err := st.Bucket.WriteAll(ctx, key, data, &blob.WriterOptions{ContentType: contentType}); err != nil {
		return fmt.Errorf("registry: write %s: %w", key, err)
	}
	if err := st.Sync(ctx, key); err != nil {
		return fmt.Errorf("registry: sync %s: %w", key, err)
	}
	return nil
}

// Dataset returns a dataset by id, name or name@version.
func (s *Service) Dataset(ctx context.Context, ref string) (*pulse.Dataset, error) {
	return s.cfg.Store.FindDataset(ctx, ref)
}

// Datasets lists every dataset version.
func (s *Service) Datasets(ctx context.Context) ([]*pulse.Dataset, error) {
	return s.cfg.Store.ListDatasets(ctx)
}

// LoadTable reads a registered dataset back from the lake, parsed with the schema it was
// registered with.
func (s *Service) LoadTable(ctx context.Context, d *pulse.Dataset) (*tabular.Table, error) {
	data, err := s.cfg.Lake.Bucket.ReadAll(ctx, d.Location)
	if err != nil {
		return nil, fmt.Errorf("registry: read dataset %s: %w", d.ID, err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != d.SHA256 {
		return nil, pulse.Errorf(pulse.EINTERNAL, "dataset %s: stored file does not match its SHA-256", d.ID)
	}
	opts := tabular.Options{Header: "false", Delimiter: ','}
	if d.Format.Header {
		opts.Header = "true"
	}
	if d.Format.Delimiter != "" {
		opts.Delimiter = []rune(d.Format.Delimiter)[0]
	}
	opts.MissingMarkers = d.Schema.MissingMarkers
	opts.Kinds = make(map[string]pulse.Kind, len(d.Schema.Columns))
	for _, c := range d.Schema.Columns {
		opts.Columns = append(opts.Columns, c.Name)
		opts.Kinds[c.Name] = c.Kind
	}
	return tabular.ReadCSV(bytes.NewReader(data), opts)
}

// TrainRequest asks for a new version of a model.
type TrainRequest struct {
	Dataset   string         `json:"dataset"`
	Target    string         `json:"target"`
	Algorithm string         `json:"algorithm,omitempty"`
	Params    map[string]any `json:"params,omitempty"`
	Features  []string       `json:"features,omitempty"`
	Seed      uint64         `json:"seed,omitempty"`
	Holdout   *float64       `json:"holdout,omitempty"`
	CVFolds   int            `json:"cv_folds,omitempty"`
	// Search, when set, chooses params by stratified cross-validation inside the training split.
	Search  *ml.SearchSpec `json:"search,omitempty"`
	Trigger string         `json:"-"`
	// IngestWindow, when set ("90d", "720h"), adds to the dataset's rows the labelled records
	// ingested for the dataset within that window before now: the latest data.
	IngestWindow string `json:"ingest_window,omitempty"`
	// JobID is the job asking, when one does. Training is then idempotent per job: if a
	// version with this job id exists (an earlier attempt registered it and then died), it is
	// returned instead of training again.
	JobID int64 `json:"-"`
}

// Train trains a new version of model on a registered dataset, stores its artifact and
// metadata, and makes it champion when it is the model's first version.
func (s *Service) Train(ctx context.Context, model string, req TrainRequest) (*pulse.ModelVersion, error) {
	if !pulse.ValidName(model) {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "model", "model name %q: want 1-64 characters of a-z, 0-9, '-', '_', '.'", model)
	}
	if req.Dataset == "" {
		return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "dataset", "dataset is required")
	}
	if req.Target == "" {
		return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "target", "target is required, for example \"num > 0\"")
	}
	if req.Algorithm == "" {
		req.Algorithm = "logreg"
	}
	if req.JobID > 0 {
		v, err := s.versionOfJob(ctx, model, req.JobID)
		if err != nil {
			return nil, err
		}
		if v != nil {
			// The earlier attempt may have died between registering the model's first version
			// and making it champion.
			if v.Version == 1 && !slices.Contains(v.Aliases, pulse.AliasChampion) {
				if _, err := s.SetAlias(ctx, model, pulse.AliasChampion, 1); err != nil {
					return nil, err
				}
				v.Aliases = append(v.Aliases, pulse.AliasChampion)
			}
			return v, nil
		}
	}
	d, err := s.cfg.Store.FindDataset(ctx, req.Dataset)
	if err != nil {
		if pulse.ErrorCode(err) == pulse.ENOTFOUND {
			return nil, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "dataset", "dataset %q not found", req.Dataset)
		}
		return nil, err
	}
	tbl, err := s.LoadTable(ctx, d)
	if err != nil {
		return nil, err
	}
	var ingestSince *time.Time
	ingested := 0
	if req.IngestWindow != "" {
		window, err := parseWindow(req.IngestWindow)
		if err != nil {
			return nil, err
		}
		since := s.cfg.Now().UTC().Add(-window)
		if ingested, err = s.appendIngested(ctx, tbl, d.Name, req.Target, since); err != nil {
			return nil, err
		}
		ingestSince = &since
	}
	spec := ml.Spec{
		Target:    req.Target,
		Algorithm: req.Algorithm,
		Params:    req.Params,
		Features:  req.Features,
		Seed:      req.Seed,
		CVFolds:   req.CVFolds,
		Search:    req.Search,
	}
	// An explicit holdout of 0 means none; absent means the default.
	if req.Holdout != nil {
		spec.Holdout = *req.Holdout
		if spec.Holdout == 0 {
			spec.Holdout = ml.NoHoldout
		}
	}
	start := time.Now()
	res, err := ml.Train(ctx, tbl, spec)
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	artifact, err := ml.Encode(res.Model)
	if err != nil {
		return nil, fmt.Errorf("registry: encode model: %w", err)
	}
	sum := sha256.Sum256(artifact)
	hash := hex.EncodeToString(sum[:])
	key := fmt.Sprintf("models/%s/sha256-%s.json", model, hash)
	if err := s.writeBlob(ctx, s.cfg.Blobs, key, artifact, "application/json"); err != nil {
		return nil, err
	}
	if err := s.writeProfile(ctx, key, res.Model, tbl); err != nil {
		return nil, err
	}
	trigger := req.Trigger
	if trigger == "" {
		trigger = "api"
	}
	now := s.cfg.Now().UTC()
	v := &pulse.ModelVersion{
		Model:          model,
		Algorithm:      req.Algorithm,
		Features:       res.Model.Inputs(),
		Target:         res.Model.Target(),
		Threshold:      res.Model.Threshold(),
		ArtifactKey:    key,
		ArtifactSHA256: hash,
		ArtifactBytes:  int64(len(artifact)),
		Metrics:        res.Metrics,
		Description:    res.Model.Describe(),
		Lineage: pulse.Lineage{
			DatasetID:     d.ID,
			DatasetName:   d.Name,
			DatasetSHA256: d.SHA256,
			Target:        res.Model.Target(),
			Algorithm:     req.Algorithm,
			Params:        res.Params,
			Seed:          req.Seed,
			Holdout:       res.Holdout,
			CVFolds:       res.CVFolds,
			TrainingRows:  res.TrainingRows,
			HoldoutRows:   res.HoldoutRows,
			PulseVersion:  s.cfg.PulseVersion,
			GitCommit:     s.cfg.GitCommit,
			Trigger:       trigger,
			TrainedAt:     now,
			DurationMS:    float64(took.Microseconds()) / 1000,
			Search:        res.Search,
			JobID:         req.JobID,
			IngestSince:   ingestSince,
			IngestedRows:  ingested,
		},
		CreatedAt: now,
	}
	if err := s.cfg.Store.CreateVersion(ctx, v); err != nil {
		return nil, err
	}
	s.loaded.set(versionKey{model, v.Version}, &Loaded{Version: v, Model: res.Model})
	s.log.Info("model version registered", "model", model, "version", v.Version, "algorithm", v.Algorithm,
		"dataset", d.ID, "artifact", key, "holdout_roc_auc", rocAUC(v.Metrics.Holdout), "cv_roc_auc", cvAUC(v.Metrics.CV))
	if s.cfg.Notifier != nil {
		s.cfg.Notifier.VersionRegistered(ctx, v)
	}
	if v.Version == 1 {
		if _, err := s.SetAlias(ctx, model, pulse.AliasChampion, 1); err != nil {
			return nil, err
		}
		v.Aliases = []string{pulse.AliasChampion}
	}
	return v, nil
}

// versionOfJob returns the version that job registered for model, or nil.
func (s *Service) versionOfJob(ctx context.Context, model string, job int64) (*pulse.ModelVersion, error) {
	vs, err := s.cfg.Store.ListVersions(ctx, model)
	if pulse.ErrorCode(err) == pulse.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].Lineage.JobID == job {
			s.log.Info("job already registered its version; not training again", "model", model, "version", vs[i].Version, "job", job)
			return vs[i], nil
		}
	}
	return nil, nil
}

func rocAUC(m *pulse.EvalMetrics) float64 {
	if m == nil {
		return 0
	}
	return m.ROCAUC
}

func cvAUC(m *pulse.CVMetrics) float64 {
	if m == nil {
		return 0
	}
	return m.ROCAUC
}

// Model returns a model with its aliases, as stored, and brings the in-memory aliases of the
// model up to date with them (another process may have moved one).
func (s *Service) Model(ctx context.Context, name string) (*pulse.Model, error) {
	gen := s.aliasGen.Load()
	m, err := s.cfg.Store.GetModel(ctx, name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aliasGen.Load() != gen {
		return m, nil // an alias moved here meanwhile: the cache is newer than what was read
	}
	old := *s.aliases.Load()
	if !maps.Equal(old[name], m.Aliases) {
		next := maps.Clone(old)
		next[name] = maps.Clone(m.Aliases)
		s.aliases.Store(&next)
	}
	return m, nil
}

// Models lists every model.
func (s *Service) Models(ctx context.Context) ([]*pulse.Model, error) {
	return s.cfg.Store.ListModels(ctx)
}

// Versions lists a model's versions.
func (s *Service) Versions(ctx context.Context, model string) ([]*pulse.ModelVersion, error) {
	return s.cfg.Store.ListVersions(ctx, model)
}

// Version returns one version's metadata.
func (s *Service) Version(ctx context.Context, model string, version int) (*pulse.ModelVersion, error) {
	return s.cfg.Store.GetVersion(ctx, model, version)
}

// SetAlias points alias at version. The version's artifact is loaded and verified first, so
// that serving switches atomically from one loaded model to the other and no request fails.
// It returns the version the alias pointed at before (0 if none).
func (s *Service) SetAlias(ctx context.Context, model, alias string, version int) (int, error) {
	if !pulse.ValidName(alias) {
		return 0, pulse.FieldErrorf(pulse.EINVALID, "alias", "alias %q: want 1-64 characters of a-z, 0-9, '-', '_', '.'", alias)
	}
	if _, err := s.Load(ctx, model, version); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, err := s.cfg.Store.SetAlias(ctx, model, alias, version)
	if err != nil {
		return 0, err
	}
	s.setAliasCache(model, alias, version)
	s.aliasGen.Add(1)
	s.log.Info("alias moved", "model", model, "alias", alias, "version", version, "previous", prev)
	if s.cfg.Notifier != nil {
		s.cfg.Notifier.AliasMoved(ctx, model, alias, version, prev)
	}
	return prev, nil
}

// DeleteAlias removes an alias.
func (s *Service) DeleteAlias(ctx context.Context, model, alias string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cfg.Store.DeleteAlias(ctx, model, alias); err != nil {
		return err
	}
	s.setAliasCache(model, alias, 0)
	s.aliasGen.Add(1)
	return nil
}

// Resolve returns the version an alias points at, from memory.
func (s *Service) Resolve(model, alias string) (int, bool) {
	v, ok := (*s.aliases.Load())[model][alias]
	return v, ok
}

// Load returns a loaded version, reading and verifying its artifact once.
func (s *Service) Load(ctx context.Context, model string, version int) (*Loaded, error) {
	k := versionKey{model, version}
	if l, ok := s.loaded.get(k); ok {
		return l, nil
	}
	v, err := s.cfg.Store.GetVersion(ctx, model, version)
	if err != nil {
		return nil, err
	}
	data, err := s.cfg.Blobs.Bucket.ReadAll(ctx, v.ArtifactKey)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, pulse.Errorf(pulse.EINTERNAL, "model %s version %d: artifact %s is missing", model, version, v.ArtifactKey)
		}
		return nil, fmt.Errorf("registry: read artifact: %w", err)
	}
	m, err := ml.Decode(data, v.ArtifactSHA256)
	if err != nil {
		// A stored artifact that does not verify is a fault of the store, not of the request.
		return nil, pulse.Errorf(pulse.EINTERNAL, "model %s version %d: artifact %s: %v", model, version, v.ArtifactKey, err)
	}
	return s.loaded.add(k, &Loaded{Version: v, Model: m}), nil
}

// Artifact returns a version's stored artifact bytes.
func (s *Service) Artifact(ctx context.Context, model string, version int) ([]byte, *pulse.ModelVersion, error) {
	v, err := s.cfg.Store.GetVersion(ctx, model, version)
	if err != nil {
		return nil, nil, err
	}
	data, err := s.cfg.Blobs.Bucket.ReadAll(ctx, v.ArtifactKey)
	if err != nil {
		return nil, nil, fmt.Errorf("registry: read artifact: %w", err)
	}
	return data, v, nil
}

// SetLive publishes m as the live model of model (the alias "live" of serving), described by
// v: the version it descends from (its last snapshot, or its base version). m must not change
// afterwards; the follower publishes a frozen copy. A nil m withdraws the live model.
func (s *Service) SetLive(model string, m *ml.Model, v *pulse.ModelVersion) {
	if m == nil || v == nil {
		s.live.Delete(model)
		return
	}
	s.live.Store(model, &Loaded{Version: v, Model: m})
}

// Live returns the live model of model, if a follower in this process publishes one.
func (s *Service) Live(model string) (*Loaded, bool) {
	l, ok := s.live.Load(model)
	if !ok {
		return nil, false
	}
	return l.(*Loaded), true
}

// RegisterStreamVersion stores m, an ftrl model that kept learning from a stream after base,
// as a new version of base's model with trigger "stream" and stream lineage (where in the
// stream its state stands). The dataset lineage, target and algorithm are base's; the offline
// metrics are left empty (the stream's prequential metrics are in the lineage).
func (s *Service) RegisterStreamVersion(ctx context.Context, m *ml.Model, base *pulse.ModelVersion, stream *pulse.StreamLineage) (*pulse.ModelVersion, error) {
	if m == nil || base == nil || stream == nil {
		return nil, pulse.Errorf(pulse.EINVALID, "register stream version: model, base version and stream lineage are required")
	}
	model := base.Model
	artifact, err := ml.Encode(m)
	if err != nil {
		return nil, fmt.Errorf("registry: encode model: %w", err)
	}
	sum := sha256.Sum256(artifact)
	hash := hex.EncodeToString(sum[:])
	key := fmt.Sprintf("models/%s/sha256-%s.json", model, hash)
	if err := s.writeBlob(ctx, s.cfg.Blobs, key, artifact, "application/json"); err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC()
	lin := base.Lineage
	lin.Trigger = "stream"
	lin.TrainedAt = now
	lin.DurationMS = 0
	lin.JobID = 0
	lin.Search = nil
	lin.PulseVersion = s.cfg.PulseVersion
	lin.GitCommit = s.cfg.GitCommit
	lin.Stream = stream
	v := &pulse.ModelVersion{
		Model:          model,
		Algorithm:      m.Algorithm(),
		Features:       m.Inputs(),
		Target:         m.Target(),
		Threshold:      m.Threshold(),
		ArtifactKey:    key,
		ArtifactSHA256: hash,
		ArtifactBytes:  int64(len(artifact)),
		Description:    m.Describe(),
		Lineage:        lin,
		CreatedAt:      now,
	}
	if err := s.cfg.Store.CreateVersion(ctx, v); err != nil {
		return nil, err
	}
	s.loaded.set(versionKey{model, v.Version}, &Loaded{Version: v, Model: m})
	s.log.Info("stream snapshot registered", "model", model, "version", v.Version, "records", stream.Records,
		"topic", stream.Topic, "artifact", key)
	if s.cfg.Notifier != nil {
		s.cfg.Notifier.VersionRegistered(ctx, v)
	}
	return v, nil
}
