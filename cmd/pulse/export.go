package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/cloudmedical/pulse/edge"
	"github.com/cloudmedical/pulse/internal/bundle"
	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/onnx"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/sqlexport"
)

// maxArtifactBytes bounds an artifact read from a file or the server.
const maxArtifactBytes = 256 << 20

// runExport writes a model version in another format: SQL (a CREATE VIEW that scores a table of
// the model's raw inputs in the database), ONNX (for ONNX Runtime) or a signed bundle (for
// phones and other edge devices, see package edge).
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("export", stderr)
	format := fs.String("format", "sql", "output format: sql, onnx or bundle (a signed zip for edge devices)")
	dialect := fs.String("dialect", "postgres", "SQL dialect: postgres, sqlite or duckdb")
	model := fs.String("model", "", "model name (with --server)")
	version := fs.Int("version", 0, "export this version")
	alias := fs.String("alias", "", "export the version this alias points at (default champion)")
	artifact := fs.String("artifact", "", "read the model artifact from this file instead of the server")
	table := fs.String("table", "", "table holding the model's inputs, one column per input (default: the model name, '-' as '_')")
	view := fs.String("view", "", "name of the view created (default: TABLE_scored)")
	out := fs.String("out", "", "write to this file instead of stdout (onnx and bundle: default MODEL-vVERSION.onnx or .pulse.zip; - for stdout)")
	signingKey := fs.String("signing-key", "", "bundle with --artifact: sign with this Ed25519 private key (PKCS#8 PEM); without --artifact the server signs")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("export: unexpected argument %q", pos[0])
	}
	switch *format {
	case "sql":
		if *signingKey != "" {
			return fmt.Errorf("export: --signing-key signs bundles, not SQL")
		}
	case "onnx", "bundle":
		return exportBinary(ctx, cf, binaryExport{
			format: *format, model: *model, version: *version, alias: *alias,
			artifact: *artifact, signingKey: *signingKey, out: *out,
		}, stdout)
	default:
		return fmt.Errorf("export: --format %q is not supported, want sql, onnx or bundle", *format)
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
	version, err := resolveVersion(ctx, cf, model, version, alias)
	if err != nil {
		return nil, 0, err
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

// resolveVersion returns version when given, else the version that alias (default champion)
// points at on the server.
func resolveVersion(ctx context.Context, cf *clientFlags, model string, version int, alias string) (int, error) {
	if version != 0 {
		return version, nil
	}
	if alias == "" {
		alias = pulse.AliasChampion
	}
	mod, err := cf.client().Model(ctx, model)
	if err != nil {
		return 0, err
	}
	n, ok := mod.Aliases[alias]
	if !ok {
		return 0, fmt.Errorf("model %q has no alias %q: give --version or --alias", model, alias)
	}
	return n, nil
}

// binaryExport is what `pulse export --format onnx|bundle` writes and from where.
type binaryExport struct {
	format               string // onnx or bundle
	model                string
	version              int
	alias                string
	artifact, signingKey string
	out                  string
}

// exportBinary writes a version as an ONNX file or a signed bundle. A bundle comes from the
// server (which holds the signing key), verified with the server's published keys before it is
// written; with --artifact it is built and signed here with --signing-key.
func exportBinary(ctx context.Context, cf *clientFlags, o binaryExport, stdout io.Writer) error {
	if o.version != 0 && o.alias != "" {
		return fmt.Errorf("export: give --version or --alias, not both")
	}
	if o.signingKey != "" && (o.format != "bundle" || o.artifact == "") {
		return fmt.Errorf("export: --signing-key signs a bundle built from --artifact; without --artifact the server signs")
	}
	var data []byte
	var n int
	var signedBy string
	switch {
	case o.artifact != "":
		b, err := readLimited(o.artifact)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		m, err := ml.Decode(b, "")
		if err != nil {
			return fmt.Errorf("export: %s: %w", o.artifact, err)
		}
		n = o.version
		if o.format == "onnx" {
			if data, err = onnx.Export(m, onnx.Meta{Model: o.model, Version: n, PulseVersion: Version}); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			break
		}
		if o.signingKey == "" || o.model == "" || o.version < 1 {
			return fmt.Errorf("export: --format bundle with --artifact needs --signing-key FILE, and --model and --version for the manifest")
		}
		s, err := bundle.LoadSigner(o.signingKey)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		v := &pulse.ModelVersion{Model: o.model, Version: n, Algorithm: m.Algorithm(), Target: m.Target(), Threshold: m.Threshold(), Features: m.Inputs()}
		if data, err = bundle.Build(v, b, s, bundle.Meta{PulseVersion: Version}); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		signedBy = s.KeyID()
	case o.model != "" && o.format == "onnx":
		m, version, err := fetchModel(ctx, cf, o.model, o.version, o.alias)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		n = version
		if data, err = onnx.Export(m, onnx.Meta{Model: o.model, Version: n, PulseVersion: Version}); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	case o.model != "":
		var err error
		if data, n, signedBy, err = fetchBundle(ctx, cf, o.model, o.version, o.alias); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	default:
		return fmt.Errorf("export: give --model (and --server) or --artifact")
	}
	out := o.out
	if out == "" {
		if o.model == "" {
			return fmt.Errorf("export: give --out FILE (or - for stdout) with --artifact and no --model")
		}
		ext := ".onnx"
		if o.format == "bundle" {
			ext = ".pulse.zip"
		}
		out = fmt.Sprintf("%s-v%d%s", o.model, n, ext)
	}
	if out == "-" {
		_, err := stdout.Write(data)
		return err
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	msg := fmt.Sprintf("wrote %s: %d bytes", out, len(data))
	if signedBy != "" {
		msg += ", signed by key " + signedBy
	}
	_, err := fmt.Fprintln(stdout, msg)
	return err
}

// fetchBundle downloads the signed bundle of a version and verifies it with the keys the server
// publishes. It returns the bundle, the version and the signing key's id.
func fetchBundle(ctx context.Context, cf *clientFlags, model string, version int, alias string) ([]byte, int, string, error) {
	version, err := resolveVersion(ctx, cf, model, version, alias)
	if err != nil {
		return nil, 0, "", err
	}
	base := strings.TrimRight(cf.server, "/")
	b, err := getBytes(ctx, base+"/v1/models/"+url.PathEscape(model)+"/versions/"+fmt.Sprint(version)+"/bundle", edge.MaxBundleBytes)
	if err != nil {
		return nil, 0, "", fmt.Errorf("bundle of %s version %d: %w", model, version, err)
	}
	set, err := getBytes(ctx, base+"/v1/signing-keys", 1<<20)
	if err != nil {
		return nil, 0, "", fmt.Errorf("signing keys: %w", err)
	}
	keys, err := edge.ParseJWKSet(set)
	if err != nil {
		return nil, 0, "", fmt.Errorf("signing keys of %s: %w", base, err)
	}
	m, err := edge.Open(b, keys...)
	if err != nil {
		return nil, 0, "", fmt.Errorf("the bundle of %s version %d does not verify with the server's keys: %w", model, version, err)
	}
	return b, version, m.Manifest().KeyID, nil
}

// getBytes GETs a URL and returns its body (at most limit bytes) when the status is 200.
func getBytes(ctx context.Context, u string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %.300s", resp.Status, b)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}
