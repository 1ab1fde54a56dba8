-- Placements (issue 11) exist on PostgreSQL only; the columns keep the
-- catalog's shape the same on both databases, and stay at their defaults.
ALTER TABLE {{table "tenants"}} ADD COLUMN database text NOT NULL DEFAULT '';
ALTER TABLE {{table "tenants"}} ADD COLUMN moving_to text NOT NULL DEFAULT '';
ALTER TABLE {{table "tenants"}} ADD COLUMN writes_paused boolean NOT NULL DEFAULT 0;
