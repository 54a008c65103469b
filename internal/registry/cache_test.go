package registry

import (
	"fmt"
	"sync"
	"testing"
)

// TestVersionCacheKeepsRecentlyUsed: past max entries the least recently used (read or
// stored) go; set replaces without growing; concurrent use keeps the bound.
func TestVersionCacheKeepsRecentlyUsed(t *testing.T) {
	c := &versionCache[int]{max: 3}
	k := func(v int) versionKey { return versionKey{"m", v} }
	for v := 1; v <= 3; v++ {
		if got := c.add(k(v), v*10); got != v*10 {
			t.Fatalf("add %d: got %d", v, got)
		}
	}
	if got := c.add(k(2), 99); got != 20 {
		t.Errorf("add of a kept key: got %d, want the value kept, 20", got)
	}
	c.get(k(1)) // 2 is now the least recently used
	c.add(k(4), 40)
	if _, ok := c.get(k(2)); ok {
		t.Errorf("version 2, the least recently used, is still kept")
	}
	for _, v := range []int{1, 3, 4} {
		if got, ok := c.get(k(v)); !ok || got != v*10 {
			t.Errorf("version %d: got %d, %v, want %d", v, got, ok, v*10)
		}
	}
	c.set(k(4), 41)
	if got, _ := c.get(k(4)); got != 41 || c.len() != 3 {
		t.Errorf("after set: got %d with %d entries, want 41 with 3", got, c.len())
	}

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				key := versionKey{fmt.Sprint("model-", g), i % 50}
				if _, ok := c.get(key); !ok {
					c.add(key, i)
				}
			}
		})
	}
	wg.Wait()
	if n := c.len(); n != 3 {
		t.Errorf("after concurrent use: %d entries, want 3", n)
	}
	count := 0
	c.m.Range(func(any, any) bool { count++; return true })
	if count != 3 {
		t.Errorf("after concurrent use: the map holds %d entries, want 3", count)
	}
}
