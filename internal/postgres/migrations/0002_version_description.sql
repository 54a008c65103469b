-- 0002_version_description: the algorithm's human-readable description of a version
-- (coefficients in original units, feature importance, convergence), JSON.

ALTER TABLE model_versions ADD COLUMN description jsonb NOT NULL DEFAULT 'null';
