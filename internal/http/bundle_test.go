package http

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"

	"github.com/cloudmedical/pulse/edge"
	"github.com/cloudmedical/pulse/internal/bundle"
)

func TestBundleRoutes(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := bundle.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(c *Config) { c.Signer, c.PulseVersion = signer, "9.8.7" })

	rec := ts.do("GET", "/v1/signing-keys", "", nil)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("signing keys: got %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var set edge.JWKSet
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil || len(set.Keys) != 1 || set.Keys[0].Kid != signer.KeyID() {
		t.Errorf("signing keys: got %s, want the one key %s", rec.Body, signer.KeyID())
	}
	keys, err := edge.ParseJWKSet(rec.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}

	rec = ts.do("GET", "/v1/models/m/versions/1/bundle", "", nil)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/zip" ||
		rec.Header().Get("Content-Disposition") != `attachment; filename="m-v1.pulse.zip"` || rec.Header().Get("X-Pulse-Key-Id") != signer.KeyID() {
		t.Fatalf("bundle: got %d, headers %v", rec.Code, rec.Header())
	}
	m, err := edge.Open(rec.Body.Bytes(), keys...)
	if err != nil {
		t.Fatalf("the bundle does not open with the served keys: %v", err)
	}
	if man := m.Manifest(); man.Model != "m" || man.Version != 1 || man.PulseVersion != "9.8.7" || man.KeyID != signer.KeyID() {
		t.Errorf("manifest: got %+v", man)
	}

	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/models/m/versions/7/bundle", 404, "not_found"},
		{"/v1/models/nope/versions/1/bundle", 404, "not_found"},
		{"/v1/models/m/versions/champion/bundle", 400, "invalid"},
		{"/v1/models/m/versions/0/bundle", 400, "invalid"},
	} {
		if p := problem(t, tc.path, ts.do("GET", tc.path, "", nil), tc.status); p.Code != tc.code {
			t.Errorf("%s: code %q, want %q", tc.path, p.Code, tc.code)
		}
	}

	// Without a key: no bundles, and an empty key set.
	ts = newTestServer(t, nil)
	if p := problem(t, "bundle without a key", ts.do("GET", "/v1/models/m/versions/1/bundle", "", nil), 503); p.Code != "unavailable" {
		t.Errorf("bundle without a key: code %q", p.Code)
	}
	if rec := ts.do("GET", "/v1/signing-keys", "", nil); rec.Code != 200 || rec.Body.String() != `{"keys":[]}`+"\n" {
		t.Errorf("signing keys without a key: got %d %s", rec.Code, rec.Body)
	}
}
