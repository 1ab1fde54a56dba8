CREATE TABLE {{table "users"}} (
    id         integer PRIMARY KEY AUTOINCREMENT,
    name       text NOT NULL,
    email      text NOT NULL,
    created_at datetime NOT NULL,
    updated_at datetime NOT NULL
);
CREATE UNIQUE INDEX {{index "users_email_key"}} ON {{table "users"}} (email);
