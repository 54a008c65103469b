-- 0004_evaluation: continuous evaluation. Each model's versioned policy, the audit trail of
-- its decisions, and the history of alias moves (seeded with the aliases set now).

CREATE TABLE policies (
    model      TEXT    NOT NULL REFERENCES models (name),
    version    INTEGER NOT NULL CHECK (version > 0),
    policy     TEXT    NOT NULL, -- JSON object, monitor.Policy
    created_at INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    PRIMARY KEY (model, version)
) STRICT;

CREATE TABLE decisions (
    id             INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    model          TEXT    NOT NULL REFERENCES models (name),
    rule           TEXT    NOT NULL CHECK (rule <> ''),
    action         TEXT    NOT NULL CHECK (action <> ''),
    version        INTEGER NOT NULL,
    champion       INTEGER NOT NULL,
    policy_version INTEGER NOT NULL,
    guard          TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    numbers        TEXT    NOT NULL, -- JSON object of numbers
    result         TEXT    NOT NULL,
    error          TEXT    NOT NULL,
    job_id         INTEGER NOT NULL,
    at             INTEGER NOT NULL
);

CREATE INDEX decisions_model_id ON decisions (model, id);

CREATE TABLE alias_history (
    id       INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    model    TEXT    NOT NULL REFERENCES models (name),
    alias    TEXT    NOT NULL CHECK (alias <> ''),
    version  INTEGER NOT NULL, -- 0: deleted
    previous INTEGER NOT NULL, -- 0: not set before
    at       INTEGER NOT NULL
);

CREATE INDEX alias_history_model_alias_id ON alias_history (model, alias, id);

INSERT INTO alias_history (model, alias, version, previous, at)
    SELECT model, alias, version, 0, updated_at FROM aliases ORDER BY updated_at;
