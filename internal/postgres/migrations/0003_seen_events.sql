-- 0003_seen_events: the event ids each consumer has applied, for idempotency across restarts.

CREATE TABLE seen_events (
    consumer text COLLATE "C" NOT NULL CHECK (consumer <> ''),
    event_id text COLLATE "C" NOT NULL CHECK (event_id <> ''),
    seen_at  timestamptz      NOT NULL,
    PRIMARY KEY (consumer, event_id)
);

CREATE INDEX seen_events_seen_at ON seen_events (seen_at);
