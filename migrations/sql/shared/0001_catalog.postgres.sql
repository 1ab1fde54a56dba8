CREATE TABLE IF NOT EXISTS {{table "tenants"}} (
    id             bigserial PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    schema         text NOT NULL UNIQUE,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    schema_version integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS {{table "tenant_hosts"}} (
    host       text PRIMARY KEY,
    tenant_id  bigint NOT NULL REFERENCES {{table "tenants"}} (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS tenant_hosts_tenant_id_idx ON {{table "tenant_hosts"}} (tenant_id);
