package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"gocloud.dev/gcerrors"

	"github.com/cloudmedical/pulse/internal/ml"
	"github.com/cloudmedical/pulse/internal/monitor"
	"github.com/cloudmedical/pulse/internal/pulse"
	"github.com/cloudmedical/pulse/internal/tabular"
)

// ProfileKey is where the training profile of the version whose artifact is at artifactKey
// is stored in the blob store: beside the artifact, "models/M/sha256-H.profile.json". The
// key follows from the artifact's, so the version's metadata needs no new field; a version
// trained before profiles were recorded has none.
func ProfileKey(artifactKey string) string {
	return strings.TrimSuffix(artifactKey, ".json") + ".profile.json"
}

// writeProfile computes the training profile of m over t (every row of the data it was
// trained from: the training split, the holdout and any ingested rows) and stores it beside
// the artifact. A profile that cannot be computed (an input without a single value) is
// logged and left out: drift is then unavailable for the version, and training goes on.
func (s *Service) writeProfile(ctx context.Context, artifactKey string, m *ml.Model, t *tabular.Table) error {
	p, err := monitor.BuildProfile(m, t)
	if err != nil {
		s.log.Warn("no training profile for the new version; drift will be unavailable", "artifact", artifactKey, "err", err)
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("registry: encode profile: %w", err)
	}
	return s.writeBlob(ctx, s.cfg.Blobs, ProfileKey(artifactKey), b, "application/json")
}

// Profile returns the training profile of a version (see monitor.Profile): the reference
// distribution that drift compares recent traffic with. ENOTFOUND when the version does not
// exist or has no profile (it was trained before profiles were recorded, or is a snapshot of
// an online follower). Profiles never change, so each is read once and kept (as loaded versions
// are: Config.MaxLoadedVersions of them).
func (s *Service) Profile(ctx context.Context, model string, version int) (*monitor.Profile, error) {
	k := versionKey{model, version}
	if p, ok := s.profiles.get(k); ok {
		return p, nil
	}
	v, err := s.cfg.Store.GetVersion(ctx, model, version)
	if err != nil {
		return nil, err
	}
	key := ProfileKey(v.ArtifactKey)
	b, err := s.cfg.Blobs.Bucket.ReadAll(ctx, key)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, pulse.Errorf(pulse.ENOTFOUND, "version %d of model %q has no training profile (trained before profiles were recorded, or an online snapshot)", version, model)
		}
		return nil, fmt.Errorf("registry: read profile %s: %w", key, err)
	}
	var p monitor.Profile
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, pulse.Errorf(pulse.EINTERNAL, "model %s version %d: profile %s: %v", model, version, key, err)
	}
	if err := p.Validate(); err != nil {
		return nil, pulse.Errorf(pulse.EINTERNAL, "model %s version %d: profile %s: %v", model, version, key, err)
	}
	return s.profiles.add(k, &p), nil
}
