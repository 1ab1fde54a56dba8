CREATE TABLE {{table "users"}} (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,
    email      text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX {{index "users_email_key"}} ON {{table "users"}} (email);
