package models_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"gorm.io/gorm"

	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/models"
)

// keyRows reads the tenant's idempotency records straight from the
// database, bypassing the scope, keyed by key.
func (s *store) keyRows(t *testing.T, tenant string) map[string]models.IdempotencyKey {
	t.Helper()
	var recs []models.IdempotencyKey
	q := "SELECT * FROM " + migrations.Quote(s.layout.Table(tenant, "idempotency_keys"))
	if err := s.db.Raw(q).Scan(&recs).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out := map[string]models.IdempotencyKey{}
	for _, r := range recs {
		out[r.Key] = r
	}
	return out
}

// keyRecord is a record as a keyed request claims it at now.
func keyRecord(key, fp string, now time.Time) models.IdempotencyKey {
	return models.IdempotencyKey{Key: key, Fingerprint: fp, CreatedAt: now, ExpiresAt: now.Add(models.IdempotencyTTL)}
}

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// TestIdempotencyKeyClaim: a claimed key, completed and committed with
// its change, is found by the next claim with its answer; a claim rolled
// back leaves neither the change nor the key; the same key in another
// tenant is another record.
func TestIdempotencyKeyClaim(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, driver, true, "acme", "globex")
			ctx, db := s.session(t, "acme")

			// A change and its answer, committed together.
			tx, err := models.BeginKeyed(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if _, claimed, err := models.ClaimIdempotencyKey(ctx, tx, keyRecord("k1", "fp1", t0)); err != nil || !claimed {
				t.Fatalf("first claim: claimed %v, %v", claimed, err)
			}
			if _, err := models.CreateUser(ctx, tx, input("Ada", "ada@example.com")); err != nil {
				t.Fatal(err)
			}
			header := map[string][]string{"Location": {"/api/users/1"}, "Content-Type": {"application/json; charset=utf-8"}}
			if err := models.CompleteIdempotencyKey(ctx, tx, "k1", 201, header, []byte(`{"id":1}`)); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit().Error; err != nil {
				t.Fatal(err)
			}

			// The same key again: not claimed, the stored answer comes back.
			tx, err = models.BeginKeyed(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			prior, claimed, err := models.ClaimIdempotencyKey(ctx, tx, keyRecord("k1", "fp2", t0.Add(time.Minute)))
			tx.Rollback()
			if err != nil || claimed {
				t.Fatalf("second claim: claimed %v, %v; want the stored record", claimed, err)
			}
			if prior.Status != 201 || string(prior.Body) != `{"id":1}` || prior.Fingerprint != "fp1" ||
				!slices.Equal(prior.Header["Location"], []string{"/api/users/1"}) || !prior.ExpiresAt.Equal(t0.Add(models.IdempotencyTTL)) {
				t.Errorf("stored record %+v", prior)
			}

			// A claim rolled back: the user and the key are gone with it.
			tx, err = models.BeginKeyed(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if _, claimed, err := models.ClaimIdempotencyKey(ctx, tx, keyRecord("k2", "fp", t0)); err != nil || !claimed {
				t.Fatalf("claim k2: claimed %v, %v", claimed, err)
			}
			if _, err := models.CreateUser(ctx, tx, input("Bob", "bob@example.com")); err != nil {
				t.Fatal(err)
			}
			if err := tx.Rollback().Error; err != nil {
				t.Fatal(err)
			}

			// The same key in globex is globex's own.
			gctx, gdb := s.session(t, "globex")
			tx, err = models.BeginKeyed(gctx, gdb)
			if err != nil {
				t.Fatal(err)
			}
			if _, claimed, err := models.ClaimIdempotencyKey(gctx, tx, keyRecord("k1", "fp-globex", t0)); err != nil || !claimed {
				t.Fatalf("globex claim of k1: claimed %v, %v; want its own record", claimed, err)
			}
			if err := models.CompleteIdempotencyKey(gctx, tx, "k1", 204, nil, nil); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit().Error; err != nil {
				t.Fatal(err)
			}

			acme, globex := s.keyRows(t, "acme"), s.keyRows(t, "globex")
			if len(acme) != 1 || acme["k1"].Status != 201 || len(globex) != 1 || globex["k1"].Status != 204 || globex["k1"].Fingerprint != "fp-globex" {
				t.Errorf("acme records %+v, globex records %+v; want k1 once in each, each with its own answer", acme, globex)
			}
			if got := s.count(t, "acme"); got != 1 {
				t.Errorf("acme holds %d users, want 1 (the rolled-back one is gone)", got)
			}
		})
	}
}

// TestSaveIdempotencyKey stores a whole record in one statement, once.
func TestSaveIdempotencyKey(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, driver, true, "acme")
			ctx, db := s.session(t, "acme")
			rec := keyRecord("k", "fp", t0)
			rec.Status, rec.Body = 422, []byte("{}")
			for i, want := range []bool{true, false} {
				s.trace.take()
				stored, err := models.SaveIdempotencyKey(ctx, db, rec)
				if err != nil || stored != want {
					t.Fatalf("save %d: stored %v, %v; want %v", i, stored, err, want)
				}
				if sent := s.trace.take(); len(sent) != 1 {
					t.Errorf("save %d sent %d statements, want 1: %q", i, len(sent), sent)
				}
			}
			if got := s.keyRows(t, "acme")["k"]; got.Status != 422 || string(got.Body) != "{}" {
				t.Errorf("stored %+v", got)
			}
		})
	}
}

// TestSweepIdempotencyKeys: a sweep deletes the request's own key when it
// has expired and at most limit other expired records, oldest first, of
// its own tenant only; nothing that has not expired.
func TestSweepIdempotencyKeys(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, driver, true, "acme", "globex")
			ctx, db := s.session(t, "acme")
			gctx, gdb := s.session(t, "globex")
			save := func(ctx context.Context, db *gorm.DB, key string, created time.Time) {
				t.Helper()
				rec := keyRecord(key, "fp", created)
				rec.Status = 201
				if _, err := models.SaveIdempotencyKey(ctx, db, rec); err != nil {
					t.Fatal(err)
				}
			}
			// acme: old1..old4 expired at t0+24h+1s..+4s, mine at +5s,
			// fresh not yet.
			for i := 1; i <= 4; i++ {
				save(ctx, db, fmt.Sprintf("old%d", i), t0.Add(time.Duration(i)*time.Second))
			}
			save(ctx, db, "mine", t0.Add(5*time.Second))
			save(ctx, db, "fresh", t0.Add(time.Hour))
			save(gctx, gdb, "old1", t0) // globex's, expired too

			now := t0.Add(models.IdempotencyTTL + 10*time.Second)
			n, err := models.SweepIdempotencyKeys(ctx, db, "mine", now, 2)
			if err != nil {
				t.Fatal(err)
			}
			got := s.keyRows(t, "acme")
			var left []string
			for k := range got {
				left = append(left, k)
			}
			slices.Sort(left)
			if want := []string{"fresh", "old3", "old4"}; n != 3 || !slices.Equal(left, want) {
				t.Errorf("swept %d, left %v; want 3 swept (mine, old1, old2), left %v", n, left, want)
			}
			if _, ok := s.keyRows(t, "globex")["old1"]; !ok {
				t.Error("a sweep in acme deleted globex's record")
			}

			// Nothing expired: nothing deleted, the fresh key included.
			if n, err := models.SweepIdempotencyKeys(ctx, db, "fresh", t0.Add(time.Hour), 10); err != nil || n != 0 {
				t.Errorf("sweep before expiry: %d, %v; want 0", n, err)
			}
		})
	}
}

// TestKeyedTransaction: inside a keyed transaction a nested
// db.Transaction joins it (no savepoint, which the scope would refuse as
// raw SQL), and a taken email leaves the transaction usable, so the form
// shown again can still list the users (on PostgreSQL a failed statement
// would abort the transaction).
func TestKeyedTransaction(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, driver, true, "acme")
			s.create(t, "acme", "taken@example.com")
			ctx, db := s.session(t, "acme")
			tx, err := models.BeginKeyed(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			err = tx.Transaction(func(inner *gorm.DB) error {
				_, err := models.CreateUser(ctx, inner, input("Ada", "ada@example.com"))
				return err
			})
			if err != nil {
				t.Fatalf("nested transaction: %v", err)
			}
			if _, err := models.CreateUser(ctx, tx, input("Bob", "taken@example.com")); !errors.Is(err, models.ErrEmailTaken) {
				t.Fatalf("taken email: %v, want ErrEmailTaken", err)
			}
			page, err := models.ListUsers(ctx, tx, 50, 0)
			if err != nil || page.Total != 2 {
				t.Fatalf("list after the taken email: %+v, %v; want 2 users", page, err)
			}
			if err := tx.Commit().Error; err != nil {
				t.Fatal(err)
			}
			if got := s.count(t, "acme"); got != 2 {
				t.Errorf("acme holds %d users, want 2", got)
			}
		})
	}
}

// TestClaimWaitsForTheFirst: on PostgreSQL a claim of a key that another
// transaction has claimed but not committed waits for it, then returns
// that transaction's record: the primary key serialises two requests
// with one key, whichever connections or processes they run on. (SQLite
// has one writer, and tenantry one connection to it, so a second claim
// cannot even begin there until the first transaction ends.)
func TestClaimWaitsForTheFirst(t *testing.T) {
	s := openStore(t, "postgres", true, "acme")
	ctx, db := s.session(t, "acme")
	first, err := models.BeginKeyed(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Rollback()
	if _, claimed, err := models.ClaimIdempotencyKey(ctx, first, keyRecord("k", "fp", t0)); err != nil || !claimed {
		t.Fatalf("first claim: claimed %v, %v", claimed, err)
	}

	type result struct {
		prior   models.IdempotencyKey
		claimed bool
		err     error
	}
	done := make(chan result, 1)
	go func() {
		tx, err := models.BeginKeyed(ctx, db)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer tx.Rollback()
		prior, claimed, err := models.ClaimIdempotencyKey(ctx, tx, keyRecord("k", "fp", t0))
		done <- result{prior, claimed, err}
	}()

	// Wait until the second claim is blocked on the first's row.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int64
		err := s.db.Raw("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&waiting).Error
		if err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("the second claim returned before the first committed: %+v", r)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the second claim never waited for the first")
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := models.CompleteIdempotencyKey(ctx, first, "k", 201, nil, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := first.Commit().Error; err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.claimed || r.prior.Status != 201 || string(r.prior.Body) != "first" {
		t.Errorf("second claim: %+v; want the first's committed answer", r)
	}
}
