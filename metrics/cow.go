package metrics

import (
	"maps"
	"sync/atomic"
)

// cow is a map read without a lock and written by copying it whole: for
// the maps Observe reads on every request and that change only when a
// tenant, or one of its routes, is seen for the first time. Writers must
// be serialised by a lock of the caller's; readers need none.
type cow[K comparable, V any] struct {
	p atomic.Pointer[map[K]V]
}

// get returns k's value.
func (c *cow[K, V]) get(k K) (V, bool) {
	var m map[K]V
	if p := c.p.Load(); p != nil {
		m = *p
	}
	v, ok := m[k]
	return v, ok
}

// all returns the whole map, which must not be changed.
func (c *cow[K, V]) all() map[K]V {
	if p := c.p.Load(); p != nil {
		return *p
	}
	return nil
}

// put sets k to v in a new copy of the map.
func (c *cow[K, V]) put(k K, v V) {
	cur := c.all()
	next := make(map[K]V, len(cur)+1)
	maps.Copy(next, cur)
	next[k] = v
	c.p.Store(&next)
}

// remove deletes keys in a new copy of the map.
func (c *cow[K, V]) remove(keys []K) {
	next := maps.Clone(c.all())
	for _, k := range keys {
		delete(next, k)
	}
	c.p.Store(&next)
}
