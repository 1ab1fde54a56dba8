-- The answers to requests sent with an Idempotency-Key (or a form's
-- one-time token), kept 24 hours so that a retry is answered as the first
-- request was. A row is inserted in the transaction of the change it
-- answers, so both commit together or not at all; the primary key is what
-- serialises two requests with the same key across processes.
CREATE TABLE {{table "idempotency_keys"}} (
    key         text NOT NULL PRIMARY KEY,
    fingerprint text NOT NULL,
    status      integer NOT NULL,
    header      text NOT NULL,
    body        blob NOT NULL,
    created_at  datetime NOT NULL,
    expires_at  datetime NOT NULL
);
CREATE INDEX {{index "idem_expires_at"}} ON {{table "idempotency_keys"}} (expires_at);
