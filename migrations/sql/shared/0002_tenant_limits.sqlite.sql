-- A tenant's own limits (tenants.Limiter). NULL takes the configured
-- default (tenancy.rate_limit, tenancy.rate_burst,
-- tenancy.max_concurrent_per_tenant); the catalog stores an override of 0
-- as NULL, so a stored value is always positive.
ALTER TABLE {{table "tenants"}} ADD COLUMN rate_limit real CHECK (rate_limit > 0);
ALTER TABLE {{table "tenants"}} ADD COLUMN rate_burst integer CHECK (rate_burst > 0);
ALTER TABLE {{table "tenants"}} ADD COLUMN max_concurrent integer CHECK (max_concurrent > 0);
