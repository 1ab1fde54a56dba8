package models

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
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
func ListUsers(ctx context.Context, db *gorm.DB, limit, offset int) (UserPage, error) {
	page := UserPage{Users: []User{}, Limit: limit, Offset: offset}
	total, err := CountUsers(ctx, db)
	if err != nil {
		return page, err
	}
	page.Total = total
	if page.Total > int64(offset) {
		if err := db.WithContext(ctx).Order("id").Limit(limit).Offset(offset).Find(&page.Users).Error; err != nil {
			return page, fmt.Errorf("list users: %w", err)
		}
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
	if err := db.WithContext(ctx).Create(&u).Error; err != nil {
		return User{}, fmt.Errorf("create user: %w", translate(err))
	}
	return u, nil
}

// UpdateUser changes the user with id. With partial unset, in must hold
// every field (a replace); with partial set, only the given fields change.
func UpdateUser(ctx context.Context, db *gorm.DB, id uint64, in UserInput, partial bool) (User, error) {
	in = in.Normalized()
	if err := in.Validate(partial); err != nil {
		return User{}, err
	}
	var u User
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("id = ?", id).Take(&u).Error; err != nil {
			return err
		}
		in.Apply(&u)
		return tx.Select("name", "email", "updated_at").Save(&u).Error
	})
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return User{}, fmt.Errorf("update user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("update user %d: %w", id, translate(err))
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
