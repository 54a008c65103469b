package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

var _ pulse.EventStore = (*DB)(nil)

// SeenEvent implements pulse.EventStore.
func (db *DB) SeenEvent(ctx context.Context, consumer, id string) (bool, error) {
	if err := pulse.CheckEventKey(consumer, id); err != nil {
		return false, err
	}
	var n int
	err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM seen_events WHERE consumer = $1 AND event_id = $2`, consumer, id).Scan(&n)
	if err != nil {
		return false, wrap("seen event", err)
	}
	return n > 0, nil
}

// MarkEvent implements pulse.EventStore.
func (db *DB) MarkEvent(ctx context.Context, consumer, id string, at time.Time) error {
	if err := pulse.CheckEventKey(consumer, id); err != nil {
		return err
	}
	_, err := db.sql.ExecContext(ctx, `INSERT INTO seen_events (consumer, event_id, seen_at) VALUES ($1, $2, $3)
		ON CONFLICT (consumer, event_id) DO NOTHING`, consumer, id, toMicros(normalTime(at)))
	return wrap("mark event", err)
}

// ForgetEventsBefore implements pulse.EventStore.
func (db *DB) ForgetEventsBefore(ctx context.Context, before time.Time) (int64, error) {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM seen_events WHERE seen_at < $1`, toMicros(normalTime(before)))
	if err != nil {
		return 0, wrap("forget events", err)
	}
	n, err := res.RowsAffected()
	return n, wrap("forget events", err)
}

// seenChunk bounds the ids of one IN list.
const seenChunk = 500

// SeenEvents implements pulse.EventStore.
func (db *DB) SeenEvents(ctx context.Context, consumer string, ids []string) (map[string]bool, error) {
	if err := pulse.CheckEventKeys(consumer, ids); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), seenChunk)]
		ids = ids[len(chunk):]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, consumer)
		for _, id := range chunk {
			args = append(args, id)
		}
		q := `SELECT event_id FROM seen_events WHERE consumer = ? AND event_id IN (?` + strings.Repeat(",?", len(chunk)-1) + `)`
		rows, err := db.sql.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, wrap("seen events", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, wrap("seen events", err)
			}
			seen[id] = true
		}
		if err := rows.Close(); err != nil {
			return nil, wrap("seen events", err)
		}
		if err := rows.Err(); err != nil {
			return nil, wrap("seen events", err)
		}
	}
	return seen, nil
}

// MarkEvents implements pulse.EventStore.
func (db *DB) MarkEvents(ctx context.Context, consumer string, ids []string, at time.Time) error {
	if err := pulse.CheckEventKeys(consumer, ids); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	seenAt := toMicros(normalTime(at))
	return wrap("mark events", db.inTx(ctx, false, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO seen_events (consumer, event_id, seen_at) VALUES ($1, $2, $3)
			ON CONFLICT (consumer, event_id) DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, id := range ids {
			if _, err := stmt.ExecContext(ctx, consumer, id, seenAt); err != nil {
				return err
			}
		}
		return nil
	}))
}
