-- Placements (issue 11): the database that holds the tenant's schema,
-- '' for the control database that holds this catalog. moving_to names
-- the database a move (tenants.Catalog.Move) is copying the tenant to;
-- while writes_paused is set the tenant's writes answer 503 and its reads
-- are served from database.
ALTER TABLE {{table "tenants"}} ADD COLUMN IF NOT EXISTS database text NOT NULL DEFAULT '';
ALTER TABLE {{table "tenants"}} ADD COLUMN IF NOT EXISTS moving_to text NOT NULL DEFAULT '';
ALTER TABLE {{table "tenants"}} ADD COLUMN IF NOT EXISTS writes_paused boolean NOT NULL DEFAULT false;
