package registry

import (
	"sync"
	"sync/atomic"
)

// versionCache keeps a value per model version, up to max of them: past that, the least
// recently used go. Reads take no lock; an insertion past max scans the entries once. Models
// rebuilt continuously (scheduled retraining, online snapshots) thus never grow a process's
// memory without end, and the versions in use (the ones aliases point at) stay.
type versionCache[V any] struct {
	max   int
	m     sync.Map // versionKey -> *cacheEntry[V]
	n     atomic.Int64
	clock atomic.Int64
	mu    sync.Mutex // one eviction at a time
}

type cacheEntry[V any] struct {
	v    V
	used atomic.Int64 // the cache's clock when last read or stored
}

// get returns k's value and marks it used.
func (c *versionCache[V]) get(k versionKey) (V, bool) {
	e, ok := c.m.Load(k)
	if !ok {
		var zero V
		return zero, false
	}
	ce := e.(*cacheEntry[V])
	ce.used.Store(c.clock.Add(1))
	return ce.v, true
}

// add keeps v for k unless k has a value already, and returns the value kept.
func (c *versionCache[V]) add(k versionKey, v V) V {
	e := &cacheEntry[V]{v: v}
	e.used.Store(c.clock.Add(1))
	actual, loaded := c.m.LoadOrStore(k, e)
	if loaded {
		return actual.(*cacheEntry[V]).v
	}
	c.grew()
	return v
}

// set keeps v for k, replacing any value.
func (c *versionCache[V]) set(k versionKey, v V) {
	e := &cacheEntry[V]{v: v}
	e.used.Store(c.clock.Add(1))
	if _, loaded := c.m.Swap(k, e); !loaded {
		c.grew()
	}
}

// grew counts a new entry and drops the least recently used ones past max.
func (c *versionCache[V]) grew() {
	if c.n.Add(1) <= int64(c.max) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.n.Load() > int64(c.max) {
		var oldest any
		least := int64(-1)
		c.m.Range(func(k, e any) bool {
			if u := e.(*cacheEntry[V]).used.Load(); least < 0 || u < least {
				oldest, least = k, u
			}
			return true
		})
		if oldest == nil {
			return
		}
		if _, deleted := c.m.LoadAndDelete(oldest); deleted {
			c.n.Add(-1)
		}
	}
}

// len returns the number of entries.
func (c *versionCache[V]) len() int { return int(c.n.Load()) }
