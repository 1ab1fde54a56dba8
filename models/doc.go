// Package models holds the tenant-owned data types, the one place that
// decides what a valid value of each is, and the data operations on them.
//
// Every operation takes the *gorm.DB it runs on. Callers pass a session
// scoped to one tenant (see package tenants); nothing here knows about
// tenants, HTTP or configuration, so the JSON API and the HTML pages share
// exactly the same rules and the same errors.
package models
