package tenants

import (
	"context"
	"errors"
	"fmt"
	"math"

	"tenantry/fault"
)

// Upper bounds of a tenant's own limits. They only catch typing mistakes
// (a rate of 1e12 is no limit at all, and said so more plainly with 0 in
// the configuration); every real limit is far below them.
const (
	MaxRateLimit   = 1_000_000
	MaxRateBurst   = 1_000_000
	MaxConcurrency = 100_000
)

// Limits are a tenant's own limits, each overriding its configured
// default (tenancy.rate_limit, tenancy.rate_burst,
// tenancy.max_concurrent_per_tenant); a nil field has no override.
type Limits struct {
	// Rate is the requests per second the tenant may send, on average.
	Rate *float64
	// Burst is how many requests it may send at once above its rate.
	Burst *int
	// Concurrency is how many of its requests are served at once.
	Concurrency *int
}

// Limits returns t's own limits.
func (t *Tenant) Limits() Limits {
	return Limits{Rate: t.RateLimit, Burst: t.RateBurst, Concurrency: t.MaxConcurrent}
}

// LimitsChange changes some of a tenant's limits. A nil field leaves that
// limit as it is; a field pointing at 0 removes the tenant's override, so
// the configured default applies again; a positive value becomes the
// tenant's override.
type LimitsChange struct {
	Rate        *float64
	Burst       *int
	Concurrency *int
}

// Empty reports whether ch changes nothing.
func (ch LimitsChange) Empty() bool {
	return ch.Rate == nil && ch.Burst == nil && ch.Concurrency == nil
}

// ErrInvalidLimit means a limit is negative, not a number or too large.
// Valid returns copies that name the field ("rate", "burst",
// "concurrency") and what it accepts.
var ErrInvalidLimit = &fault.Error{Kind: fault.Invalid, Code: "invalid-limit", Title: "Invalid limit",
	Message: "a limit must be 0 (the configured default) or a positive number"}

// Valid reports every field of ch that is out of range, each as an
// ErrInvalidLimit naming it, joined with errors.Join.
func (ch LimitsChange) Valid() error {
	var errs []error
	if r := ch.Rate; r != nil && (*r < 0 || *r > MaxRateLimit || math.IsNaN(*r)) {
		errs = append(errs, ErrInvalidLimit.With("rate",
			fmt.Sprintf("must be 0 (the configured default) or a positive number of requests per second up to %d", MaxRateLimit), nil))
	}
	if b := ch.Burst; b != nil && (*b < 0 || *b > MaxRateBurst) {
		errs = append(errs, ErrInvalidLimit.With("burst",
			fmt.Sprintf("must be 0 (the configured default) or a whole number of requests up to %d", MaxRateBurst), nil))
	}
	if c := ch.Concurrency; c != nil && (*c < 0 || *c > MaxConcurrency) {
		errs = append(errs, ErrInvalidLimit.With("concurrency",
			fmt.Sprintf("must be 0 (the configured default) or a whole number of requests up to %d", MaxConcurrency), nil))
	}
	return errors.Join(errs...)
}

// orNull is what the catalog stores for an override: NULL for 0, since 0
// means "the configured default" and NULL is how the column says it.
func orNull[T int | float64](v T) any {
	if v == 0 {
		return nil
	}
	return v
}

// SetLimits changes the tenant's own limits as ch says and answers the
// tenant as it is now. Like every catalog change it is announced
// (OnChange), so every process's Limiter applies the new limits with the
// next request it serves for the tenant (within a second on other
// processes, as any catalog change). An empty change changes nothing and
// announces nothing.
func (c *Catalog) SetLimits(ctx context.Context, name string, ch LimitsChange) (*Tenant, error) {
	if err := ch.Valid(); err != nil {
		return nil, err
	}
	if ch.Empty() {
		return c.Get(ctx, name)
	}
	updates := map[string]any{}
	if ch.Rate != nil {
		updates["rate_limit"] = orNull(*ch.Rate)
	}
	if ch.Burst != nil {
		updates["rate_burst"] = orNull(*ch.Burst)
	}
	if ch.Concurrency != nil {
		updates["max_concurrent"] = orNull(*ch.Concurrency)
	}
	res := c.db.WithContext(ctx).Model(&Tenant{}).Where("name = ?", name).Updates(updates)
	if res.Error != nil {
		return nil, fmt.Errorf("set limits of %q: %w", name, res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, fmt.Errorf("tenant %q: %w", name, ErrNotFound)
	}
	c.changed(ctx)
	return c.Get(ctx, name)
}
