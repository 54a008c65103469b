package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/sqlexport"
)

// maxArtifactBytes bounds an artifact read from a file or the server.
const maxArtifactBytes = 256 << 20

// runExport writes a model version in another format: today SQL, a CREATE VIEW that scores a
// table of the model's raw inputs in the database.
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("export", stderr)
	format := fs.String("format", "sql", "output format: sql")
	dialect := fs.String("dialect", "postgres", "SQL dialect: postgres, sqlite or duckdb")
	model := fs.String("model", "", "model name (with --server)")
	version := fs.Int("version", 0, "export this version")
	alias := fs.String("alias", "", "export the version this alias points at (default champion)")
	artifact := fs.String("artifact", "", "read the model artifact from this file instead of the server")
	table := fs.String("table", "", "table holding the model's inputs, one column per input (default: the model name, '-' as '_')")
	view := fs.String("view", "", "name of the view created (default: TABLE_scored)")
	out := fs.String("out", "", "write to this file instead of stdout")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("export: unexpected argument %q", pos[0])
	}
	if *format != "sql" {
		return fmt.Errorf("export: --format %q is not supported, want sql", *format)
	}
	d, err := sqlexport.ParseDialect(*dialect)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if *version != 0 && *alias != "" {
		return fmt.Errorf("export: give --version or --alias, not both")
	}
	var m *ml.Model
	what := *artifact
	switch {
	case *artifact != "":
		b, err := readLimited(*artifact)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if m, err = ml.Decode(b, ""); err != nil {
			return fmt.Errorf("export: %s: %w", *artifact, err)
		}
	case *model != "":
		var n int
		m, n, err = fetchModel(ctx, cf, *model, *version, *alias)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		what = fmt.Sprintf("%s version %d", *model, n)
	default:
		return fmt.Errorf("export: give --model (and --server) or --artifact")
	}
	if *table == "" {
		if *model == "" {
			return fmt.Errorf("export: --table is required with --artifact and no --model")
		}
		*table = strings.ReplaceAll(*model, "-", "_")
	}
	if *view == "" {
		*view = *table + "_scored"
	}
	sql, err := sqlexport.View(m, d, *table, *view)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	sql = fmt.Sprintf("-- Exported by pulse from %s for %s.\n%s", what, d, sql)
	if *out == "" {
		_, err = io.WriteString(stdout, sql)
		return err
	}
	if err := os.WriteFile(*out, []byte(sql), 0o644); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// readLimited reads a file of at most maxArtifactBytes.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxArtifactBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxArtifactBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxArtifactBytes)
	}
	return b, nil
}

// fetchModel resolves the version (given, or that of alias, default champion) of a model on
// the server, downloads its artifact and decodes it, checking its SHA-256.
func fetchModel(ctx context.Context, cf *clientFlags, model string, version int, alias string) (*ml.Model, int, error) {
	c := cf.client()
	if version == 0 {
		if alias == "" {
			alias = pulse.AliasChampion
		}
		mod, err := c.Model(ctx, model)
		if err != nil {
			return nil, 0, err
		}
		n, ok := mod.Aliases[alias]
		if !ok {
			return nil, 0, fmt.Errorf("model %q has no alias %q: give --version or --alias", model, alias)
		}
		version = n
	}
	v, err := c.Version(ctx, model, version)
	if err != nil {
		return nil, 0, err
	}
	u := strings.TrimRight(cf.server, "/") + "/v1/models/" + url.PathEscape(model) + "/versions/" + fmt.Sprint(version) + "/artifact"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxArtifactBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("artifact of %s version %d: %w", model, version, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("artifact of %s version %d: %s: %.200s", model, version, resp.Status, b)
	}
	if len(b) > maxArtifactBytes {
		return nil, 0, fmt.Errorf("artifact of %s version %d: larger than %d bytes", model, version, maxArtifactBytes)
	}
	m, err := ml.Decode(b, v.ArtifactSHA256)
	if err != nil {
		return nil, 0, fmt.Errorf("artifact of %s version %d: %w", model, version, err)
	}
	return m, version, nil
}
