-- 0001_init: datasets, models, model versions and aliases.
--
-- Timestamps are INTEGER microseconds since the Unix epoch, UTC. JSON documents are TEXT.
-- Tables are STRICT so that a value of the wrong type is an error, not a silent conversion.

CREATE TABLE datasets (
    id         TEXT    NOT NULL PRIMARY KEY CHECK (id <> ''),
    name       TEXT    NOT NULL CHECK (name <> ''),
    version    INTEGER NOT NULL CHECK (version > 0),
    sha256     TEXT    NOT NULL,
    rows       INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    format     TEXT    NOT NULL, -- JSON pulse.CSVFormat
    schema     TEXT    NOT NULL, -- JSON pulse.Schema
    location   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (name, version)
) STRICT;

CREATE INDEX datasets_name_sha256 ON datasets (name, sha256);

CREATE TABLE models (
    name       TEXT    NOT NULL PRIMARY KEY CHECK (name <> ''),
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE model_versions (
    model           TEXT    NOT NULL REFERENCES models (name),
    version         INTEGER NOT NULL CHECK (version > 0),
    algorithm       TEXT    NOT NULL,
    features        TEXT    NOT NULL, -- JSON []pulse.Column
    target          TEXT    NOT NULL,
    threshold       REAL    NOT NULL,
    artifact_key    TEXT    NOT NULL,
    artifact_sha256 TEXT    NOT NULL,
    artifact_bytes  INTEGER NOT NULL,
    metrics         TEXT    NOT NULL, -- JSON pulse.Metrics
    lineage         TEXT    NOT NULL, -- JSON pulse.Lineage
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (model, version)
) STRICT;

CREATE TABLE aliases (
    model      TEXT    NOT NULL,
    alias      TEXT    NOT NULL CHECK (alias <> ''),
    version    INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (model, alias),
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
) STRICT;
