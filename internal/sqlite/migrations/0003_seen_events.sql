-- 0003_seen_events: the event ids each consumer has applied, for idempotency across restarts.

CREATE TABLE seen_events (
    consumer TEXT    NOT NULL CHECK (consumer <> ''),
    event_id TEXT    NOT NULL CHECK (event_id <> ''),
    seen_at  INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    PRIMARY KEY (consumer, event_id)
) STRICT;

CREATE INDEX seen_events_seen_at ON seen_events (seen_at);
