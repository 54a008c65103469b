package events

import (
	"container/list"
	"context"
	"sync"
)

// Seen remembers which event ids have had their effect, so that a redelivered event (after a
// crash before the offset commit, or a producer retry) is not applied twice.
//
// The Consumer calls Seen before the handler and Mark after it succeeded. A durable
// implementation belongs to the metadata store, ideally marking the id in the same
// transaction as the handler's effect (then Mark may be a no-op); MemorySeen only filters
// duplicates within one process's lifetime.
type Seen interface {
	Seen(ctx context.Context, id string) (bool, error)
	Mark(ctx context.Context, id string) error
}

// SeenMany is what a Seen may also offer: Seen and Mark for the events of a whole poll at
// once (one query, one transaction), which a consumer with a BatchHandler then uses.
type SeenMany interface {
	// SeenMany returns the ids among ids that were marked.
	SeenMany(ctx context.Context, ids []string) (map[string]bool, error)
	MarkMany(ctx context.Context, ids []string) error
}

// MemorySeen is an in-memory Seen that keeps the most recently marked ids (an LRU of a fixed
// capacity). It is safe for concurrent use.
type MemorySeen struct {
	mu    sync.Mutex
	cap   int
	order *list.List // front: most recent; values are ids
	ids   map[string]*list.Element
}

// NewMemorySeen returns a MemorySeen keeping up to capacity ids (100000 when capacity < 1).
func NewMemorySeen(capacity int) *MemorySeen {
	if capacity < 1 {
		capacity = 100_000
	}
	return &MemorySeen{cap: capacity, order: list.New(), ids: make(map[string]*list.Element)}
}

// Seen reports whether id was marked and is still remembered.
func (m *MemorySeen) Seen(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.ids[id]
	if ok {
		m.order.MoveToFront(el)
	}
	return ok, nil
}

// Mark remembers id, forgetting the least recently used id when full.
func (m *MemorySeen) Mark(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.ids[id]; ok {
		m.order.MoveToFront(el)
		return nil
	}
	m.ids[id] = m.order.PushFront(id)
	if m.order.Len() > m.cap {
		oldest := m.order.Back()
		m.order.Remove(oldest)
		delete(m.ids, oldest.Value.(string))
	}
	return nil
}

// Len returns how many ids are remembered.
func (m *MemorySeen) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}
