package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// IdempotencyKey is one tenant's record of a request sent with an
// idempotency key (the Idempotency-Key header of the IETF httpapi draft,
// or a form's one-time token) and of the answer it got, so that a retry
// with the same key gets the same answer instead of a second change.
//
// Keys are per tenant: the record lives in the tenant's own tables, like
// its users, so the same key sent to two tenants names two records.
//
// A record is inserted (claimed) in the transaction that makes the change
// and completed with the answer in that same transaction, so a change and
// its stored answer commit together or not at all. Status is 0 only
// inside that transaction: a committed record always holds an answer.
type IdempotencyKey struct {
	// Key is the client's key, 1 to MaxIdempotencyKeyLength printable
	// ASCII characters (the HTTP layer checks them).
	Key string `gorm:"primaryKey;not null"`
	// Fingerprint identifies the request the key was first sent with
	// (method, target and body); a retry must match it.
	Fingerprint string `gorm:"not null"`
	// Status, Header and Body are the answer as it was sent.
	Status int                 `gorm:"not null"`
	Header map[string][]string `gorm:"not null;serializer:json"`
	Body   []byte              `gorm:"not null"`
	// CreatedAt is when the key was first seen; from ExpiresAt on, the
	// record is deleted and the key may be used again.
	CreatedAt time.Time `gorm:"not null"`
	ExpiresAt time.Time `gorm:"not null"`
}

// TableName keeps the table's name independent of GORM's pluraliser.
func (IdempotencyKey) TableName() string { return "idempotency_keys" }

// Limits of idempotency keys.
const (
	// MaxIdempotencyKeyLength bounds a key; a UUID is 36 characters.
	MaxIdempotencyKeyLength = 255
	// IdempotencyTTL is how long an answer is kept and replayed.
	IdempotencyTTL = 24 * time.Hour
)

// ErrKeyBusy means a request holding the key was found to be still
// running, or its record vanished between two statements: the client
// should retry a moment later.
var ErrKeyBusy = errors.New("idempotency key in use by another request")

// BeginKeyed starts the transaction that a keyed request runs in: the
// claim of its key, the change and the answer.
//
// Nested db.Transaction calls inside it join it instead of opening a
// savepoint: a savepoint is raw SQL, which the tenant scope refuses, and
// a failure anywhere in a keyed request rolls the whole transaction back
// anyway.
func BeginKeyed(ctx context.Context, db *gorm.DB) (*gorm.DB, error) {
	tx := db.WithContext(ctx).Session(&gorm.Session{DisableNestedTransaction: true}).Begin()
	if tx.Error != nil {
		return nil, fmt.Errorf("begin keyed request: %w", tx.Error)
	}
	return tx, nil
}

// ClaimIdempotencyKey inserts rec, without an answer yet, unless a record
// for its key exists; it returns that record and false in that case.
//
// On PostgreSQL the insert waits while another transaction holds an
// uncommitted claim of the same key, then finds that transaction's record
// (it committed) or inserts its own (it rolled back): the primary key
// serialises two requests with one key even across processes. SQLite has
// one writer at a time, which serialises them as well.
func ClaimIdempotencyKey(ctx context.Context, tx *gorm.DB, rec IdempotencyKey) (IdempotencyKey, bool, error) {
	rec.Status, rec.Header, rec.Body = 0, map[string][]string{}, []byte{}
	res := tx.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "key"}}, DoNothing: true}).Create(&rec)
	if res.Error != nil {
		return IdempotencyKey{}, false, fmt.Errorf("claim idempotency key: %w", res.Error)
	}
	if res.RowsAffected == 1 {
		return rec, true, nil
	}
	var prior IdempotencyKey
	err := tx.WithContext(ctx).Where("key = ?", rec.Key).Take(&prior).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		// Deleted (expired) between the two statements.
		return IdempotencyKey{}, false, fmt.Errorf("claim idempotency key: %w", ErrKeyBusy)
	case err != nil:
		return IdempotencyKey{}, false, fmt.Errorf("read idempotency key: %w", err)
	case prior.Status == 0:
		// Never committed so (see IdempotencyKey); kept as a guard.
		return IdempotencyKey{}, false, fmt.Errorf("claim idempotency key: %w", ErrKeyBusy)
	}
	return prior, false, nil
}

// CompleteIdempotencyKey stores the answer on the key that tx claimed.
func CompleteIdempotencyKey(ctx context.Context, tx *gorm.DB, key string, status int, header map[string][]string, body []byte) error {
	if header == nil {
		header = map[string][]string{}
	}
	if body == nil {
		body = []byte{}
	}
	res := tx.WithContext(ctx).Model(&IdempotencyKey{}).Where("key = ?", key).
		Select("status", "header", "body").
		Updates(&IdempotencyKey{Status: status, Header: header, Body: body})
	if res.Error != nil {
		return fmt.Errorf("store answer of idempotency key: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return fmt.Errorf("store answer of idempotency key: %w", ErrKeyBusy)
	}
	return nil
}

// SaveIdempotencyKey stores a complete record in one statement, unless
// the key is taken (then it returns false). It is for answers that
// changed nothing, whose transaction was rolled back: a validation error,
// a missing user, an email already used.
func SaveIdempotencyKey(ctx context.Context, db *gorm.DB, rec IdempotencyKey) (bool, error) {
	if rec.Header == nil {
		rec.Header = map[string][]string{}
	}
	if rec.Body == nil {
		rec.Body = []byte{}
	}
	res := db.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "key"}}, DoNothing: true}).Create(&rec)
	if res.Error != nil {
		return false, fmt.Errorf("save idempotency key: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// SweepIdempotencyKeys deletes, in one statement, the record of key if it
// has expired by now and at most limit other expired records, oldest
// first, so that the work a request does for the sweep stays bounded.
//
// On PostgreSQL rows another sweep is deleting are skipped (FOR UPDATE
// SKIP LOCKED) rather than waited for: two requests sweeping at once
// never queue or deadlock on each other's rows.
func SweepIdempotencyKeys(ctx context.Context, db *gorm.DB, key string, now time.Time, limit int) (int64, error) {
	expired := db.WithContext(ctx).Model(&IdempotencyKey{}).Select("key").
		Where("expires_at <= ?", now).Order("expires_at").Limit(limit)
	if db.Dialector.Name() == "postgres" {
		expired = expired.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate, Options: clause.LockingOptionsSkipLocked})
	}
	res := db.WithContext(ctx).Where("expires_at <= ? AND (key = ? OR key IN (?))", now, key, expired).
		Delete(&IdempotencyKey{})
	if res.Error != nil {
		return 0, fmt.Errorf("sweep idempotency keys: %w", res.Error)
	}
	return res.RowsAffected, nil
}
