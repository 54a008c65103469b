-- 0001_init: datasets, models, model versions and aliases; the same tables as SQLite's.
--
-- Timestamps are timestamptz (microseconds, stored in UTC). JSON documents are jsonb. Names,
-- ids and aliases compare byte by byte (COLLATE "C"), so that they sort as in SQLite and Go.

CREATE TABLE datasets (
    id         text COLLATE "C" NOT NULL CHECK (id <> ''),
    name       text COLLATE "C" NOT NULL CHECK (name <> ''),
    version    bigint           NOT NULL CHECK (version > 0),
    sha256     text             NOT NULL,
    rows       bigint           NOT NULL,
    bytes      bigint           NOT NULL,
    format     jsonb            NOT NULL, -- pulse.CSVFormat
    schema     jsonb            NOT NULL, -- pulse.Schema
    location   text             NOT NULL,
    created_at timestamptz      NOT NULL,
    CONSTRAINT datasets_pkey PRIMARY KEY (id),
    CONSTRAINT datasets_name_version_key UNIQUE (name, version)
);

CREATE INDEX datasets_name_sha256 ON datasets (name, sha256);

CREATE TABLE models (
    name       text COLLATE "C" NOT NULL CHECK (name <> ''),
    created_at timestamptz      NOT NULL,
    CONSTRAINT models_pkey PRIMARY KEY (name)
);

CREATE TABLE model_versions (
    model           text COLLATE "C" NOT NULL REFERENCES models (name),
    version         bigint           NOT NULL CHECK (version > 0),
    algorithm       text             NOT NULL,
    features        jsonb            NOT NULL, -- []pulse.Column
    target          text             NOT NULL,
    threshold       double precision NOT NULL,
    artifact_key    text             NOT NULL,
    artifact_sha256 text             NOT NULL,
    artifact_bytes  bigint           NOT NULL,
    metrics         jsonb            NOT NULL, -- pulse.Metrics
    lineage         jsonb            NOT NULL, -- pulse.Lineage
    created_at      timestamptz      NOT NULL,
    CONSTRAINT model_versions_pkey PRIMARY KEY (model, version)
);

CREATE TABLE aliases (
    model      text COLLATE "C" NOT NULL,
    alias      text COLLATE "C" NOT NULL CHECK (alias <> ''),
    version    bigint           NOT NULL,
    updated_at timestamptz      NOT NULL,
    CONSTRAINT aliases_pkey PRIMARY KEY (model, alias),
    FOREIGN KEY (model, version) REFERENCES model_versions (model, version)
);
