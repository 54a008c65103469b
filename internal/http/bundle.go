package http

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/cloudmedical/pulse/edge"
	"github.com/cloudmedical/pulse/internal/bundle"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// signingKeys answers the public keys that verify bundles, as a JSON Web Key Set (RFC 7517,
// RFC 8037); empty when the server has no signing key.
func (s *Server) signingKeys(w http.ResponseWriter, r *http.Request) {
	set := edge.JWKSet{Keys: []edge.JWK{}}
	if s.cfg.Signer != nil {
		set = s.cfg.Signer.JWKSet()
	}
	writeJSON(w, http.StatusOK, set)
}

// getBundle answers the signed bundle of a version (see package edge): a zip file named
// <model>-v<version>.pulse.zip, built on each request.
func (s *Server) getBundle(w http.ResponseWriter, r *http.Request) {
	n, err := pathVersion(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if s.cfg.Signer == nil {
		writeError(w, r, s.log, pulse.Errorf(pulse.EUNAVAILABLE, "this server has no signing key, so it cannot sign bundles"))
		return
	}
	data, v, err := s.cfg.Registry.Artifact(r.Context(), r.PathValue("model"), n)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	b, err := bundle.Build(v, data, s.cfg.Signer, bundle.Meta{PulseVersion: s.cfg.PulseVersion})
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", fmt.Sprintf("%s-v%d.pulse.zip", v.Model, v.Version)))
	w.Header().Set("X-Pulse-Key-Id", s.cfg.Signer.KeyID())
	_, _ = w.Write(b)
}
