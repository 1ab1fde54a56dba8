-- A tenant's own limits (tenants.Limiter). NULL takes the configured
-- default (tenancy.rate_limit, tenancy.rate_burst,
-- tenancy.max_concurrent_per_tenant); the catalog stores an override of 0
-- as NULL, so a stored value is always positive.
ALTER TABLE {{table "tenants"}}
    ADD COLUMN IF NOT EXISTS rate_limit     double precision CHECK (rate_limit > 0),
    ADD COLUMN IF NOT EXISTS rate_burst     integer CHECK (rate_burst > 0),
    ADD COLUMN IF NOT EXISTS max_concurrent integer CHECK (max_concurrent > 0);
