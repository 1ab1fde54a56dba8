// Package benchdb holds what the benchmark programs in bench/ share: a
// scratch PostgreSQL database per run and a description of the machine.
package benchdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// DB is a scratch database: its URL and name, and Drop, which drops it
// (or, when it is to be kept, says where it is).
type DB struct {
	DSN, Name string
	Drop      func()
}

// Scratch creates a database named prefix plus a random suffix beside the
// one admin (a PostgreSQL URL) names.
func Scratch(ctx context.Context, admin, prefix string, keep bool) (DB, error) {
	u, err := url.Parse(admin)
	if err != nil {
		return DB{}, fmt.Errorf("-dsn: %w", err)
	}
	conn, err := sql.Open("pgx", admin)
	if err != nil {
		return DB{}, err
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if _, err := conn.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		_ = conn.Close()
		return DB{}, fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	drop := func() {
		defer conn.Close()
		if keep {
			fmt.Fprintln(os.Stderr, "kept database", name)
			return
		}
		// Not the run's context: the run may have been interrupted.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if _, err := conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "drop database %s: %v\n", name, err)
		}
	}
	return DB{DSN: u.String(), Name: name, Drop: drop}, nil
}

// CPUModel names the machine's processor, for the figures' headers.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// Memory is the machine's RAM, for the figures' headers.
func Memory() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown RAM"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
			var kB int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kB); err == nil {
				return fmt.Sprintf("%.0f GiB RAM", float64(kB)/(1<<20))
			}
		}
	}
	return "unknown RAM"
}
