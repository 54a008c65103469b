-- 0004_evaluation: continuous evaluation; the same tables as SQLite's. Each model's versioned
-- policy, the audit trail of its decisions, and the history of alias moves (seeded with the
-- aliases set now).

CREATE TABLE policies (
    model      text COLLATE "C" NOT NULL REFERENCES models (name),
    version    bigint           NOT NULL CHECK (version > 0),
    policy     text             NOT NULL, -- JSON object as given, monitor.Policy
    created_at timestamptz      NOT NULL,
    created_by text             NOT NULL,
    CONSTRAINT policies_pkey PRIMARY KEY (model, version)
);

CREATE TABLE decisions (
    id             bigint GENERATED ALWAYS AS IDENTITY,
    model          text COLLATE "C" NOT NULL REFERENCES models (name),
    rule           text             NOT NULL CHECK (rule <> ''),
    action         text             NOT NULL CHECK (action <> ''),
    version        bigint           NOT NULL,
    champion       bigint           NOT NULL,
    policy_version bigint           NOT NULL,
    guard          text             NOT NULL,
    reason         text             NOT NULL,
    numbers        jsonb            NOT NULL,
    result         text             NOT NULL,
    error          text             NOT NULL,
    job_id         bigint           NOT NULL,
    at             timestamptz      NOT NULL,
    CONSTRAINT decisions_pkey PRIMARY KEY (id)
);

CREATE INDEX decisions_model_id ON decisions (model, id);

CREATE TABLE alias_history (
    id       bigint GENERATED ALWAYS AS IDENTITY,
    model    text COLLATE "C" NOT NULL REFERENCES models (name),
    alias    text COLLATE "C" NOT NULL CHECK (alias <> ''),
    version  bigint           NOT NULL, -- 0: deleted
    previous bigint           NOT NULL, -- 0: not set before
    at       timestamptz      NOT NULL,
    CONSTRAINT alias_history_pkey PRIMARY KEY (id)
);

CREATE INDEX alias_history_model_alias_id ON alias_history (model, alias, id);

INSERT INTO alias_history (model, alias, version, previous, at)
    SELECT model, alias, version, 0, updated_at FROM aliases ORDER BY updated_at;
