package postgres

import (
	"context"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

var _ pulse.EventStore = (*DB)(nil)

// SeenEvent implements pulse.EventStore.
func (db *DB) SeenEvent(ctx context.Context, consumer, id string) (bool, error) {
	if err := pulse.CheckEventKey(consumer, id); err != nil {
		return false, err
	}
	var seen bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM seen_events WHERE consumer = $1 AND event_id = $2)`, consumer, id).Scan(&seen)
	if err != nil {
		return false, wrap("seen event", err)
	}
	return seen, nil
}

// MarkEvent implements pulse.EventStore.
func (db *DB) MarkEvent(ctx context.Context, consumer, id string, at time.Time) error {
	if err := pulse.CheckEventKey(consumer, id); err != nil {
		return err
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO seen_events (consumer, event_id, seen_at) VALUES ($1, $2, $3)
		ON CONFLICT (consumer, event_id) DO NOTHING`, consumer, id, at.UTC())
	return wrap("mark event", err)
}

// ForgetEventsBefore implements pulse.EventStore.
func (db *DB) ForgetEventsBefore(ctx context.Context, before time.Time) (int64, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM seen_events WHERE seen_at < $1`, before.UTC())
	if err != nil {
		return 0, wrap("forget events", err)
	}
	return tag.RowsAffected(), nil
}

// SeenEvents implements pulse.EventStore.
func (db *DB) SeenEvents(ctx context.Context, consumer string, ids []string) (map[string]bool, error) {
	if err := pulse.CheckEventKeys(consumer, ids); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	if len(ids) == 0 {
		return seen, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT event_id FROM seen_events WHERE consumer = $1 AND event_id = ANY($2)`, consumer, ids)
	if err != nil {
		return nil, wrap("seen events", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, wrap("seen events", err)
		}
		seen[id] = true
	}
	return seen, wrap("seen events", rows.Err())
}

// MarkEvents implements pulse.EventStore.
func (db *DB) MarkEvents(ctx context.Context, consumer string, ids []string, at time.Time) error {
	if err := pulse.CheckEventKeys(consumer, ids); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO seen_events (consumer, event_id, seen_at)
		SELECT $1, id, $3 FROM unnest($2::text[]) AS id
		ON CONFLICT (consumer, event_id) DO NOTHING`, consumer, ids, at.UTC())
	return wrap("mark events", err)
}
