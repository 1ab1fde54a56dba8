package tenants

import "context"

// Hold takes one of t's concurrency slots as an admitted request would,
// so that a test can keep a tenant busy without a slow handler; release
// frees the slot. It fails as admission would (rate, concurrency).
func (l *Limiter) Hold(ctx context.Context, t *Tenant) (release func(), err error) {
	tk, err := l.admit(ctx, t)
	if err != nil {
		return nil, err
	}
	return func() { l.release(tk) }, nil
}

// Waiting returns how many requests of the tenant with id wait for a
// slot.
func (l *Limiter) Waiting(id uint64) int {
	s := &l.shards[id%limiterShards]
	s.mu.RLock()
	defer s.mu.RUnlock()
	if e := s.m[id]; e != nil {
		return int(e.waiting.Load())
	}
	return 0
}

// AdmitAndRelease admits one request of t, as the middleware does, and
// releases its slot at once.
func (l *Limiter) AdmitAndRelease(ctx context.Context, t *Tenant) error {
	tk, err := l.admit(ctx, t)
	l.release(tk)
	return err
}
