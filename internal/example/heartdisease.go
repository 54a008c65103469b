// Package example sets up Pulse's showcase, the heart-disease alert: it registers the UCI Heart
// Disease (Cleveland) data as a dataset, trains the model "heart-disease" on the target
// "num > 0" and makes it champion, unless the model exists already.
package example

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/registry"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// Names of the showcase's dataset and model.
const (
	HeartDisease = "heart-disease"
	Target       = "num > 0"
	Seed         = 7
)

// DefaultURL is where the original, headerless UCI file is published.
const DefaultURL = "https://archive.ics.uci.edu/ml/machine-learning-databases/heart-disease/processed.cleveland.data"

// DefaultDataPath is where a checkout of Pulse finds the shared copy of the data.
var DefaultDataPath = filepath.Join("..", "shared", "datasets", "heart-disease", "processed.cleveland.data")

// Columns are the UCI attribute names, in file order.
var Columns = []string{"age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak", "slope", "ca", "thal", "num"}

// Kinds declares what inference cannot know: coded categories and 0/1 flags.
var Kinds = map[string]pulse.Kind{
	"sex": pulse.Binary, "fbs": pulse.Binary, "exang": pulse.Binary,
	"cp": pulse.Categorical, "restecg": pulse.Categorical, "slope": pulse.Categorical, "thal": pulse.Categorical,
	"age": pulse.Numeric, "trestbps": pulse.Numeric, "chol": pulse.Numeric, "thalach": pulse.Numeric,
	"oldpeak": pulse.Numeric, "ca": pulse.Numeric, "num": pulse.Numeric,
}

// Options say where the data comes from.
type Options struct {
	// DataPath is a local copy of processed.cleveland.data. When empty, DefaultDataPath is used
	// if it exists, then a previous download in DataDir, then a download from URL.
	DataPath string
	DataDir  string
	URL      string
	HTTP     *http.Client
	Logger   *slog.Logger
}

// Ensure makes sure the heart-disease model exists and returns its champion version.
func Ensure(ctx context.Context, reg *registry.Service, opts Options) (*pulse.ModelVersion, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if v, ok := reg.Resolve(HeartDisease, pulse.AliasChampion); ok {
		return reg.Version(ctx, HeartDisease, v)
	}
	path, err := locate(ctx, opts)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("example: %w", err)
	}
	defer f.Close()
	d, _, err := reg.RegisterDataset(ctx, registry.RegisterDatasetRequest{
		Name: HeartDisease,
		Body: f,
		Options: tabular.Options{
			Header:  "auto",
			Columns: Columns,
			Kinds:   Kinds,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("example: register %s: %w", path, err)
	}
	opts.Logger.Info("example dataset ready", "dataset", d.Name, "id", d.ID, "rows", d.Rows, "source", path)
	v, err := reg.Train(ctx, HeartDisease, registry.TrainRequest{
		Dataset: d.ID,
		Target:  Target,
		Seed:    Seed,
		Trigger: "example",
	})
	if err != nil {
		return nil, fmt.Errorf("example: train: %w", err)
	}
	return v, nil
}

// locate finds the data file, downloading the original once when there is no local copy.
func locate(ctx context.Context, opts Options) (string, error) {
	if opts.DataPath != "" {
		if _, err := os.Stat(opts.DataPath); err != nil {
			return "", fmt.Errorf("example: --example-data: %w", err)
		}
		return opts.DataPath, nil
	}
	if _, err := os.Stat(DefaultDataPath); err == nil {
		return DefaultDataPath, nil
	}
	if opts.DataDir == "" {
		return "", errors.New("example: no local copy of the data and no data dir to download it into")
	}
	dst := filepath.Join(opts.DataDir, "downloads", "processed.cleveland.data")
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("example: %w", err)
	}
	url := opts.URL
	if url == "" {
		url = DefaultURL
	}
	opts.Logger.Info("downloading the UCI Heart Disease data once", "url", url, "to", dst)
	if err := download(ctx, opts.HTTP, url, dst); err != nil {
		return "", err
	}
	return dst, nil
}

// download fetches url into dst atomically (a temp file renamed into place).
func download(ctx context.Context, client *http.Client, url, dst string) error {
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Minute}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("example: download: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("example: download %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("example: download %s: got status %s, want 200 OK", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("example: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".download-*")
	if err != nil {
		return fmt.Errorf("example: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, io.LimitReader(resp.Body, 64<<20)); err != nil {
		tmp.Close()
		return fmt.Errorf("example: download %s: %w", url, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("example: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("example: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("example: %w", err)
	}
	return nil
}
