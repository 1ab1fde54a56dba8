package models_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"tenantry/config"
	"tenantry/database"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/models"
	"tenantry/tenants"
)

// These tests run the data operations on real databases, through the
// tenant scope that app.Open installs, and check what they did by reading
// rows straight from the database. A store records every statement its
// pool is sent, so the tests can also count round trips.

// store is a real database with the tenant scope installed, as app.Open
// builds it, and a catalog to provision tenants with.
type store struct {
	db      *gorm.DB // the unscoped pool, for reading rows straight from the database
	layout  tenants.Layout
	scope   *tenants.Scope
	catalog *tenants.Catalog
	trace   *tracingPool
	clock   *stepClock
}

// openStore opens a fresh database of driver with the default strategy
// and provisions the named tenants. skipTx is gorm.Config's
// SkipDefaultTransaction: on, a single write is one statement; off, GORM
// wraps it in BEGIN and COMMIT. Both must behave the same.
//
// GORM decides at Open whether to install its default transaction, so
// the store opens its own *gorm.DB, configured as database.Open configures
// one but for that setting and the clock, over the pool database.Open made,
// with a tracingPool in between to record every statement.
func openStore(t *testing.T, driver string, skipTx bool, names ...string) *store {
	t.Helper()
	ctx := context.Background()
	base, dialect, err := database.Open(ctx, testenv.Database(t, driver), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = database.Close(base) })
	trace := newTracingPool(base.ConnPool)
	var dialector gorm.Dialector
	if dialect == migrations.Postgres {
		dialector = postgres.New(postgres.Config{Conn: trace})
	} else {
		dialector = &sqlite.Dialector{Conn: trace}
	}
	// A clock that moves a second per reading, in UTC microseconds like
	// database.Open's, so that every stamp is distinct and predictable.
	clock := &stepClock{now: time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)}
	db, err := gorm.Open(dialector, &gorm.Config{
		TranslateError:         true,
		SkipDefaultTransaction: skipTx,
		NowFunc:                clock.Now,
		Logger:                 base.Logger,
	})
	if err != nil {
		t.Fatal(err)
	}

	layout, err := tenants.NewLayout(tenants.Strategy(config.DefaultStrategy(driver)), dialect)
	if err != nil {
		t.Fatal(err)
	}
	scope, err := tenants.NewScope(db, layout)
	if err != nil {
		t.Fatal(err)
	}
	cat := tenants.NewCatalog(db, layout, testenv.Logger(t))
	if err := cat.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, err := cat.Create(ctx, tenants.Spec{Name: n, Hosts: []string{n + ".test"}}); err != nil {
			t.Fatal(err)
		}
	}
	return &store{db: db, layout: layout, scope: scope, catalog: cat, trace: trace, clock: clock}
}

// session returns a context carrying the named tenant, as the middleware
// makes it, and the scoped session for it.
func (s *store) session(t *testing.T, name string) (context.Context, *gorm.DB) {
	t.Helper()
	tn, err := s.catalog.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	ctx := tenants.NewContext(context.Background(), tn)
	db, err := s.scope.DB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, db
}

// create adds users to the named tenant, one per email, and returns them
// as CreateUser did.
func (s *store) create(t *testing.T, tenant string, emails ...string) []models.User {
	t.Helper()
	ctx, db := s.session(t, tenant)
	out := make([]models.User, len(emails))
	for i, e := range emails {
		u, err := models.CreateUser(ctx, db, input("User "+e, e))
		if err != nil {
			t.Fatalf("create %s in %s: %v", e, tenant, err)
		}
		out[i] = u
	}
	return out
}

// count counts the tenant's users straight from the database, bypassing
// the scope.
func (s *store) count(t *testing.T, tenant string) int64 {
	t.Helper()
	var n int64
	q := "SELECT count(*) FROM " + migrations.Quote(s.layout.Table(tenant, "users"))
	if err := s.db.Raw(q).Scan(&n).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// stored reads the tenant's user id straight from the database; ok is
// false when there is no such row.
func (s *store) stored(t *testing.T, tenant string, id uint64) (u models.User, ok bool) {
	t.Helper()
	var us []models.User
	q := "SELECT * FROM " + migrations.Quote(s.layout.Table(tenant, "users")) + " WHERE id = ?"
	if err := s.db.Raw(q, id).Scan(&us).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if len(us) == 0 {
		return models.User{}, false
	}
	return us[0], true
}

func input(name, email string) models.UserInput { return models.UserInput{Name: &name, Email: &email} }

// sameUser reports how got differs from want, comparing times as instants
// (PostgreSQL hands them back in the local zone).
func sameUser(got, want models.User) string {
	if got.ID != want.ID || got.Name != want.Name || got.Email != want.Email ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	return ""
}

// stepClock is a NowFunc whose every reading is one second after the last.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

// Last returns the latest reading.
func (c *stepClock) Last() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// tracingPool is the pool GORM is given: it passes everything to the real
// pool and records each statement sent, including the BEGIN and COMMIT
// of transactions, which GORM's logger never sees.
type tracingPool struct{ tracedConn }

// tracingTx is a transaction of a tracingPool; it records into the same log.
type tracingTx struct {
	tracedConn
	tx gorm.TxCommitter
}

var (
	_ gorm.ConnPool         = (*tracingPool)(nil)
	_ gorm.ConnPoolBeginner = (*tracingPool)(nil)
	_ gorm.TxCommitter      = (*tracingTx)(nil)
)

func newTracingPool(pool gorm.ConnPool) *tracingPool {
	return &tracingPool{tracedConn{pool: pool, log: &statementLog{}}}
}

// statementLog is the statements a tracingPool and its transactions sent.
type statementLog struct {
	mu   sync.Mutex
	sent []string
}

func (l *statementLog) record(sql string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = append(l.sent, sql)
}

// take returns the statements sent since the last take and forgets them.
func (p *tracingPool) take() []string {
	l := p.log
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.sent
	l.sent = nil
	return out
}

// tracedConn records each statement into log and passes it to pool: the
// part a pool and a transaction share.
type tracedConn struct {
	pool gorm.ConnPool
	log  *statementLog
}

func (c tracedConn) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	c.log.record("PREPARE " + query)
	return c.pool.PrepareContext(ctx, query)
}

func (c tracedConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	c.log.record(query)
	return c.pool.ExecContext(ctx, query, args...)
}

func (c tracedConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	c.log.record(query)
	return c.pool.QueryContext(ctx, query, args...)
}

func (c tracedConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	c.log.record(query)
	return c.pool.QueryRowContext(ctx, query, args...)
}

func (p *tracingPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	p.log.record("BEGIN")
	var tx gorm.ConnPool
	switch b := p.pool.(type) {
	case gorm.TxBeginner:
		sqlTx, err := b.BeginTx(ctx, opts)
		if err != nil {
			return nil, err
		}
		tx = sqlTx
	case gorm.ConnPoolBeginner:
		cp, err := b.BeginTx(ctx, opts)
		if err != nil {
			return nil, err
		}
		tx = cp
	default:
		return nil, gorm.ErrInvalidTransaction
	}
	c, ok := tx.(gorm.TxCommitter)
	if !ok {
		return nil, fmt.Errorf("%T cannot commit", tx)
	}
	return &tracingTx{tracedConn: tracedConn{pool: tx, log: p.log}, tx: c}, nil
}

func (t *tracingTx) Commit() error {
	t.log.record("COMMIT")
	return t.tx.Commit()
}

func (t *tracingTx) Rollback() error {
	t.log.record("ROLLBACK")
	return t.tx.Rollback()
}

// TestListUsers pages through one tenant's users and checks that total is
// the tenant's user count on every page, including pages past the end and
// a tenant with no users, and that the JSON keeps its shape.
func TestListUsers(t *testing.T) {
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, driver, true, "acme", "globex", "empty")
			acme := s.create(t, "acme", "a1@example.com", "a2@example.com", "a3@example.com", "a4@example.com", "a5@example.com")
			globex := s.create(t, "globex", "g1@example.com", "g2@example.com")
			for _, tc := range []struct {
				name          string
				tenant        string
				limit, offset int
				want          []models.User
				wantTotal     int64
			}{
				{"first page", "acme", 2, 0, acme[0:2], 5},
				{"middle page", "acme", 2, 2, acme[2:4], 5},
				{"last, short page", "acme", 2, 4, acme[4:5], 5},
				{"offset exactly at the end", "acme", 2, 5, nil, 5},
				{"offset past the end", "acme", 2, 50, nil, 5},
				{"all on one page", "acme", 500, 0, acme, 5},
				{"other tenant", "globex", 50, 0, globex, 2},
				{"empty tenant", "empty", 50, 0, nil, 0},
				{"empty tenant, offset", "empty", 50, 10, nil, 0},
			} {
				t.Run(tc.name, func(t *testing.T) {
					ctx, db := s.session(t, tc.tenant)
					page, err := models.ListUsers(ctx, db, tc.limit, tc.offset)
					if err != nil {
						t.Fatal(err)
					}
					if page.Total != tc.wantTotal {
						t.Errorf("total = %d, want %d", page.Total, tc.wantTotal)
					}
					if got := s.count(t, tc.tenant); got != tc.wantTotal {
						t.Errorf("database holds %d users, want %d", got, tc.wantTotal)
					}
					if len(page.Users) != len(tc.want) {
						t.Fatalf("got %d users, want %d: %+v", len(page.Users), len(tc.want), page.Users)
					}
					for i := range tc.want {
						if d := sameUser(page.Users[i], tc.want[i]); d != "" {
							t.Errorf("user %d: %s", i, d)
						}
					}
					if len(tc.want) == 0 {
						b, err := json.Marshal(page)
						if err != nil {
							t.Fatal(err)
						}
						want := fmt.Sprintf(`{"users":[],"total":%d,"limit":%d,"offset":%d}`, tc.wantTotal, tc.limit, tc.offset)
						if string(b) != want {
							t.Errorf("JSON = %s, want %s", b, want)
						}
					}
				})
			}
		})
	}
}

// modes are the two settings of SkipDefaultTransaction the writes must
// behave the same under.
var modes = []struct {
	name   string
	skipTx bool
}{{"skip-tx", true}, {"default-tx", false}}

// TestUpdateUser replaces and patches users and checks the returned user
// against the row in the database: the given fields changed, the others
// kept, created_at untouched and updated_at stamped from GORM's clock.
func TestUpdateUser(t *testing.T) {
	for _, driver := range testenv.Drivers {
		for _, mode := range modes {
			t.Run(driver+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				s := openStore(t, driver, mode.skipTx, "acme", "globex")
				s.create(t, "acme", "taken@example.com")
				s.create(t, "globex", "elsewhere@example.com")
				for i, tc := range []struct {
					name      string
					in        models.UserInput
					partial   bool
					missing   bool   // update an id no user has
					wantName  string // "" means unchanged
					wantEmail string // "" means unchanged
					wantErr   error
				}{
					{name: "replace", in: input("Grace", "grace@example.com"), wantName: "Grace", wantEmail: "grace@example.com"},
					{name: "replace normalizes", in: input("  Grace ", " GRACE2@Example.com "), wantName: "Grace", wantEmail: "grace2@example.com"},
					{name: "replace keeps own email", in: input("Grace", "own"), wantName: "Grace", wantEmail: "own"},
					{name: "patch name leaves email", in: models.UserInput{Name: ptr("Ada")}, partial: true, wantName: "Ada"},
					{name: "patch email leaves name", in: models.UserInput{Email: ptr("ada@example.com")}, partial: true, wantEmail: "ada@example.com"},
					{name: "empty patch stamps updated_at only", in: models.UserInput{}, partial: true},
					{name: "email of another tenant's user", in: models.UserInput{Email: ptr("elsewhere@example.com")}, partial: true, wantEmail: "elsewhere@example.com"},
					{name: "email of another user", in: input("Grace", "taken@example.com"), wantErr: models.ErrEmailTaken},
					{name: "patch to email of another user", in: models.UserInput{Email: ptr("TAKEN@example.com")}, partial: true, wantErr: models.ErrEmailTaken},
					{name: "replace missing id", in: input("Grace", "ghost@example.com"), missing: true, wantErr: models.ErrNotFound},
					{name: "patch missing id", in: models.UserInput{Name: ptr("Ghost")}, partial: true, missing: true, wantErr: models.ErrNotFound},
					{name: "empty patch of missing id", in: models.UserInput{}, partial: true, missing: true, wantErr: models.ErrNotFound},
				} {
					t.Run(tc.name, func(t *testing.T) {
						email := fmt.Sprintf("user%d@example.com", i)
						before := s.create(t, "acme", email)[0]
						id := before.ID
						if tc.missing {
							id += 1000
						}
						if tc.in.Email != nil && *tc.in.Email == "own" {
							tc.in.Email, tc.wantEmail = &email, email
						}
						ctx, db := s.session(t, "acme")
						got, err := models.UpdateUser(ctx, db, id, tc.in, tc.partial)
						stored, ok := s.stored(t, "acme", before.ID)
						if !ok {
							t.Fatalf("user %d is gone", before.ID)
						}
						if tc.wantErr != nil {
							if !errors.Is(err, tc.wantErr) {
								t.Fatalf("err = %v, want %v", err, tc.wantErr)
							}
							if d := sameUser(stored, before); d != "" {
								t.Errorf("a failed update changed the row: %s", d)
							}
							return
						}
						if err != nil {
							t.Fatal(err)
						}
						want := before
						if tc.wantName != "" {
							want.Name = tc.wantName
						}
						if tc.wantEmail != "" {
							want.Email = tc.wantEmail
						}
						want.UpdatedAt = s.clock.Last()
						if !want.UpdatedAt.After(before.UpdatedAt) {
							t.Fatalf("clock did not move: %v, %v", want.UpdatedAt, before.UpdatedAt)
						}
						if d := sameUser(got, want); d != "" {
							t.Errorf("returned: %s", d)
						}
						if d := sameUser(stored, want); d != "" {
							t.Errorf("stored: %s", d)
						}
					})
				}
				if got := s.count(t, "globex"); got != 1 {
					t.Errorf("globex holds %d users, want 1", got)
				}
			})
		}
	}
}

// TestUsersStayInTheirTenant: ids repeat across tenants, so an update, a
// delete or a list in one tenant must reach only that tenant's rows,
// checked straight from the database.
func TestUsersStayInTheirTenant(t *testing.T) {
	for _, driver := range testenv.Drivers {
		for _, mode := range modes {
			t.Run(driver+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				s := openStore(t, driver, mode.skipTx, "acme", "globex")
				a := s.create(t, "acme", "a1@example.com")
				g := s.create(t, "globex", "g1@example.com", "g2@example.com", "g3@example.com")
				if a[0].ID != g[0].ID {
					t.Fatalf("ids differ (%d, %d); the test needs the same id in both tenants", a[0].ID, g[0].ID)
				}
				ctx, db := s.session(t, "acme")

				if _, err := models.UpdateUser(ctx, db, a[0].ID, input("Acme", "g2@example.com"), false); err != nil {
					t.Fatalf("update to an email only globex uses: %v", err)
				}
				if _, err := models.UpdateUser(ctx, db, g[2].ID, input("X", "x@example.com"), false); !errors.Is(err, models.ErrNotFound) {
					t.Errorf("update of an id only globex has: err = %v, want ErrNotFound", err)
				}
				if err := models.DeleteUser(ctx, db, g[1].ID); !errors.Is(err, models.ErrNotFound) {
					t.Errorf("delete of an id only globex has: err = %v, want ErrNotFound", err)
				}
				for _, u := range g {
					stored, ok := s.stored(t, "globex", u.ID)
					if !ok {
						t.Errorf("globex user %d is gone", u.ID)
						continue
					}
					if d := sameUser(stored, u); d != "" {
						t.Errorf("globex user %d changed: %s", u.ID, d)
					}
				}

				page, err := models.ListUsers(ctx, db, 50, 0)
				if err != nil {
					t.Fatal(err)
				}
				if page.Total != 1 || len(page.Users) != 1 || page.Users[0].Email != "g2@example.com" {
					t.Errorf("acme lists %+v, want its one user", page)
				}

				if err := models.DeleteUser(ctx, db, a[0].ID); err != nil {
					t.Fatal(err)
				}
				if got := s.count(t, "acme"); got != 0 {
					t.Errorf("acme holds %d users after deleting its only one, want 0", got)
				}
				if got := s.count(t, "globex"); got != 3 {
					t.Errorf("globex holds %d users, want 3", got)
				}
				gctx, gdb := s.session(t, "globex")
				page, err = models.ListUsers(gctx, gdb, 50, 0)
				if err != nil {
					t.Fatal(err)
				}
				if page.Total != 3 || len(page.Users) != 3 {
					t.Errorf("globex lists %d of %d users, want 3 of 3", len(page.Users), page.Total)
				}
			})
		}
	}
}

// TestUserRoundTrips counts the statements each operation sends to the
// database, BEGIN and COMMIT included: with SkipDefaultTransaction on, as
// database.Open sets it, every operation is one statement, except a list
// whose page is empty, which must count separately.
func TestUserRoundTrips(t *testing.T) {
	for _, driver := range testenv.Drivers {
		for _, mode := range modes {
			t.Run(driver+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				s := openStore(t, driver, mode.skipTx, "acme")
				ctx, db := s.session(t, "acme")
				// write is how many statements one write takes in this mode.
				write := 1
				if !mode.skipTx {
					write = 3 // BEGIN, the statement, COMMIT or ROLLBACK
				}
				// Every statement must name the tenant's qualified table:
				// "acme"."users" on PostgreSQL, `acme_users` on SQLite.
				table := s.db.Statement.Quote(s.layout.Table("acme", "users"))
				var id uint64
				for _, op := range []struct {
					name  string
					do    func() error
					want  int
					shape string // how the operation's own statement starts
				}{
					{"create", func() error {
						u, err := models.CreateUser(ctx, db, input("Ada", "ada@example.com"))
						id = u.ID
						return err
					}, write, "INSERT INTO " + table},
					{"create a second", func() error {
						_, err := models.CreateUser(ctx, db, input("Bob", "bob@example.com"))
						return err
					}, write, "INSERT INTO " + table},
					{"list", func() error {
						_, err := models.ListUsers(ctx, db, 50, 0)
						return err
					}, 1, "SELECT id, name, email, created_at, updated_at, count(*) OVER () AS total FROM " + table + " ORDER BY id LIMIT "},
					{"list past the end", func() error {
						_, err := models.ListUsers(ctx, db, 50, 50)
						return err
					}, 2, "SELECT id, name, email, created_at, updated_at, count(*) OVER () AS total FROM " + table + " ORDER BY id LIMIT "},
					{"get", func() error {
						_, err := models.GetUser(ctx, db, id)
						return err
					}, 1, "SELECT * FROM " + table},
					{"replace", func() error {
						_, err := models.UpdateUser(ctx, db, id, input("Ada L", "ada@example.com"), false)
						return err
					}, write, "UPDATE " + table},
					{"patch", func() error {
						_, err := models.UpdateUser(ctx, db, id, models.UserInput{Name: ptr("Ada")}, true)
						return err
					}, write, "UPDATE " + table},
					{"update to a taken email", func() error {
						_, err := models.UpdateUser(ctx, db, id, input("Ada", "bob@example.com"), false)
						if errors.Is(err, models.ErrEmailTaken) {
							return nil
						}
						return fmt.Errorf("err = %v, want ErrEmailTaken", err)
					}, write, "UPDATE " + table},
					{"update a missing id", func() error {
						_, err := models.UpdateUser(ctx, db, id+1000, input("Ghost", "ghost@example.com"), false)
						if errors.Is(err, models.ErrNotFound) {
							return nil
						}
						return fmt.Errorf("err = %v, want ErrNotFound", err)
					}, write, "UPDATE " + table},
					{"delete", func() error { return models.DeleteUser(ctx, db, id) }, write, "DELETE FROM " + table},
				} {
					s.trace.take()
					if err := op.do(); err != nil {
						t.Fatalf("%s: %v", op.name, err)
					}
					sent := s.trace.take()
					t.Logf("%s: %q", op.name, sent)
					if len(sent) != op.want {
						t.Errorf("%s sent %d statements, want %d: %q", op.name, len(sent), op.want, sent)
					}
					for _, q := range sent {
						switch {
						case q == "BEGIN" || q == "COMMIT" || q == "ROLLBACK":
						case !strings.Contains(q, table):
							t.Errorf("%s: %q does not name %s", op.name, q, table)
						}
					}
					if i := slices.IndexFunc(sent, func(q string) bool { return strings.HasPrefix(q, op.shape) }); i < 0 {
						t.Errorf("%s: no statement starts %q: %q", op.name, op.shape, sent)
					}
					if strings.HasPrefix(op.shape, "UPDATE") && !slices.ContainsFunc(sent, func(q string) bool { return strings.HasSuffix(q, " RETURNING *") }) {
						t.Errorf("%s: no UPDATE ... RETURNING *: %q", op.name, sent)
					}
				}
			})
		}
	}
}
