-- Set while a tenant is being removed (tenants.Catalog.Remove): from the
-- committed start of the removal until its data is dropped or archived,
-- and for good after a removal that failed half-way, until it is sent
-- again. Such a tenant is not served (503 tenant-removing).
ALTER TABLE {{table "tenants"}} ADD COLUMN IF NOT EXISTS removing boolean NOT NULL DEFAULT false;
