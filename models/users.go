package models

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// UserPage is one page of a tenant's users, ordered by id.
type UserPage struct {
	Users  []User `json:"users"`
	Total  int64  `json:"total"`
	Limit  int    `json:"limit"`
	Offset int    `json:"offset"`
}

// Paging limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// ListUsers returns users ordered by id, with the total count.
//
// It is one statement: the page comes back with the tenant's user count
// beside every row (count(*) OVER (), which is computed before LIMIT and
// OFFSET apply). An empty page carries no row to read the count from, so
// then, and only then, a second statement counts: Total is the tenant's
// user count whatever the offset.
func ListUsers(ctx context.Context, db *gorm.DB, limit, offset int) (UserPage, error) {
	page := UserPage{Users: make([]User, 0, min(limit, 64)), Limit: limit, Offset: offset}
	// Rows and a plain Scan rather than Find: GORM's reflective scan was a
	// third of the list's CPU. The statement is still built, and its table
	// scoped, by GORM's callbacks.
	rows, err := db.WithContext(ctx).Model(&User{}).
		Select("id, name, email, created_at, updated_at, count(*) OVER () AS total").
		Order("id").Limit(limit).Offset(offset).Rows()
	if err != nil {
		return page, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u User
		if err := rows.Scan(&u.ID, &u.Name, &u.Email, &u.CreatedAt, &u.UpdatedAt, &page.Total); err != nil {
			return page, fmt.Errorf("list users: %w", rowsError(db, err))
		}
		page.Users = append(page.Users, u)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("list users: %w", rowsError(db, err))
	}
	if len(page.Users) == 0 {
		total, err := CountUsers(ctx, db)
		if err != nil {
			return page, err
		}
		page.Total = total
	}
	return page, nil
}

// CountUsers returns how many users db's tenant has.
func CountUsers(ctx context.Context, db *gorm.DB) (int64, error) {
	var n int64
	if err := db.WithContext(ctx).Model(&User{}).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// GetUser returns the user with id, or ErrNotFound.
func GetUser(ctx context.Context, db *gorm.DB, id uint64) (User, error) {
	var u User
	err := db.WithContext(ctx).Where("id = ?", id).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return u, fmt.Errorf("get user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("get user %d: %w", id, err)
	}
	return u, nil
}

// CreateUser validates in and stores a new user.
func CreateUser(ctx context.Context, db *gorm.DB, in UserInput) (User, error) {
	in = in.Normalized()
	if err := in.Validate(false); err != nil {
		return User{}, err
	}
	var u User
	in.Apply(&u)
	// A taken email inserts nothing (ON CONFLICT DO NOTHING) instead of
	// failing: on PostgreSQL a failed statement aborts the transaction
	// around it, and a keyed request (handlers/idempotency.go) runs in
	// one, whose form, shown again with the error, still lists the users.
	res := db.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "email"}}, DoNothing: true}).Create(&u)
	if res.Error != nil {
		return User{}, fmt.Errorf("create user: %w", translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return User{}, fmt.Errorf("create user: %w", ErrEmailTaken)
	}
	return u, nil
}

// UpdateUser changes the user with id. With partial unset, in must hold
// every field (a replace); with partial set, only the given fields change.
// Either way updated_at is stamped, even when no field is given, and the
// user is returned as stored.
//
// It is one statement, UPDATE ... RETURNING *: no row means no such user,
// and the row that comes back carries what the update did not set
// (created_at) straight from the database.
func UpdateUser(ctx context.Context, db *gorm.DB, id uint64, in UserInput, partial bool) (User, error) {
	in = in.Normalized()
	if err := in.Validate(partial); err != nil {
		return User{}, err
	}
	// A map sets exactly its keys; GORM adds updated_at, from its NowFunc,
	// to the SET.
	set := map[string]any{}
	if in.Name != nil {
		set["name"] = *in.Name
	}
	if in.Email != nil {
		set["email"] = *in.Email
	}
	var u User
	res := db.WithContext(ctx).Model(&u).Clauses(clause.Returning{}).Where("id = ?", id).Updates(set)
	if res.Error != nil {
		return User{}, fmt.Errorf("update user %d: %w", id, translate(res.Error))
	}
	if res.RowsAffected == 0 {
		return User{}, fmt.Errorf("update user %d: %w", id, ErrNotFound)
	}
	return u, nil
}

// DeleteUser removes the user with id, or returns ErrNotFound.
func DeleteUser(ctx context.Context, db *gorm.DB, id uint64) error {
	res := db.WithContext(ctx).Where("id = ?", id).Delete(&User{})
	if res.Error != nil {
		return fmt.Errorf("delete user %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("delete user %d: %w", id, ErrNotFound)
	}
	return nil
}

// translate maps a unique violation (translated by GORM's TranslateError)
// to the domain's sentinel.
func translate(err error) error {
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return ErrEmailTaken
	}
	return err
}

// rowsError passes an error met while reading rows by hand (a connection
// lost mid-result) through the dialector's translation, as GORM passes
// every error of its own: the pool's dialector classifies driver failures
// there (database.Classify), so this one is shown as an outage, not a 500.
func rowsError(db *gorm.DB, err error) error {
	if t, ok := db.Dialector.(gorm.ErrorTranslator); ok && db.TranslateError {
		return t.Translate(err)
	}
	return err
}
