package tenants_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tenantry/config"
	"tenantry/internal/testenv"
	"tenantry/migrations"
	"tenantry/tenants"
)

const removalAdminToken = "removal-admin-token-0123456789"

// loadClients is how many clients use a tenant while it is removed, as in
// issue 9's report (16 clients, 4 removals, 2 of them 500 then).
const loadClients = 16

// removedUnderLoad is what clients saw of one tenant removed under load.
type removedUnderLoad struct {
	mu sync.Mutex
	// statuses counts every answer of the tenant by status.
	statuses map[int]int
	// late counts the answers to requests sent after the removal had
	// answered: the tenant is gone by then, in this process at once.
	late map[int]int
	// bad lists answers outside what a removal may cause, with their
	// bodies, for the failure message.
	bad []string
	// created and deleted count acknowledged creations (201) and
	// deletions (204): the archived table must hold seeded+created-deleted
	// users.
	created, deleted int
	// ids are users that exist, as far as the clients know.
	ids []uint64
}

func (r *removedUnderLoad) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.statuses {
		n += c
	}
	return n
}

func (r *removedUnderLoad) lateTotal() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.late {
		n += c
	}
	return n
}

func (r *removedUnderLoad) pick(rng *rand.Rand) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ids) == 0 {
		return 1
	}
	return r.ids[rng.IntN(len(r.ids))]
}

// loadAnswer is one answer a client got, read whole.
type loadAnswer struct {
	status int
	ctype  string
	retry  string
	body   string
}

// loadClient sends requests to one tenant (by its Host) on a listener.
type loadClient struct {
	http *http.Client
	base string // http://addr of the listener
	host string // the tenant's host, sent as Host
}

func (c loadClient) do(ctx context.Context, method, path, ctype, accept, body string, hdr ...string) (loadAnswer, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return loadAnswer{}, err
	}
	req.Host = c.host
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return loadAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return loadAnswer{}, err
	}
	return loadAnswer{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"),
		retry: resp.Header.Get("Retry-After"), body: string(b)}, nil
}

// userJSON is a new user's body with an email no other request uses.
func userJSON(prefix string, n int64) string {
	return fmt.Sprintf(`{"name":"User %d","email":"%s-%d@example.com"}`, n, prefix, n)
}

// allowedDuringRemoval are the statuses a request to a tenant may get
// while it is removed: its normal answers, 404 for a user another client
// deleted or once the tenant is gone, 503 while it is being removed.
var allowedDuringRemoval = []int{http.StatusOK, http.StatusCreated, http.StatusNoContent, http.StatusNotFound,
	http.StatusServiceUnavailable}

// runLoad sends a mix of list, show, create (half with an
// Idempotency-Key), patch, delete, page and form requests to c from one
// goroutine until ctx ends, recording every answer in r. removed says
// whether the removal has answered, which makes later answers late.
func runLoad(ctx context.Context, c loadClient, seed uint64, r *removedUnderLoad, removed *atomic.Bool, serial *atomic.Int64) {
	rng := rand.New(rand.NewPCG(seed, seed*7+1))
	for ctx.Err() == nil {
		after := removed.Load()
		var (
			a      loadAnswer
			err    error
			what   string
			create bool
			del    bool
		)
		switch op := rng.IntN(11); {
		case op < 3:
			what = "GET /api/users"
			a, err = c.do(ctx, http.MethodGet, "/api/users?limit=20", "", "application/json", "")
		case op < 5:
			what = "GET /api/users/{id}"
			a, err = c.do(ctx, http.MethodGet, "/api/users/"+strconv.FormatUint(r.pick(rng), 10), "", "application/json", "")
		case op < 7:
			n := serial.Add(1)
			what, create = "POST /api/users", true
			var hdr []string
			if op == 6 {
				what += " (keyed)"
				hdr = []string{"Idempotency-Key", "load-" + strconv.FormatInt(n, 10)}
			}
			a, err = c.do(ctx, http.MethodPost, "/api/users", "application/json", "application/json", userJSON(c.host, n), hdr...)
		case op < 8:
			what = "PATCH /api/users/{id}"
			a, err = c.do(ctx, http.MethodPatch, "/api/users/"+strconv.FormatUint(r.pick(rng), 10),
				"application/merge-patch+json", "application/json", `{"name":"Renamed"}`)
		case op < 9:
			what, del = "DELETE /api/users/{id}", true
			a, err = c.do(ctx, http.MethodDelete, "/api/users/"+strconv.FormatUint(r.pick(rng), 10), "", "application/json", "")
		case op < 10:
			what = "GET /users (page)"
			a, err = c.do(ctx, http.MethodGet, "/users", "", "text/html", "")
		default:
			n := serial.Add(1)
			what, create = "POST /users (form)", true
			form := url.Values{"name": {"Form " + strconv.FormatInt(n, 10)}, "email": {fmt.Sprintf("%s-%d@example.com", c.host, n)}}
			a, err = c.do(ctx, http.MethodPost, "/users", "application/x-www-form-urlencoded", "text/html", form.Encode())
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			r.bad = append(r.bad, fmt.Sprintf("%s: transport error %v", what, err))
			r.mu.Unlock()
			continue
		}
		r.mu.Lock()
		r.statuses[a.status]++
		if after {
			r.late[a.status]++
		}
		page := strings.HasSuffix(what, "(page)") || strings.HasSuffix(what, "(form)")
		allowed := allowedDuringRemoval
		if what == "POST /users (form)" {
			// A form that was sent is redirected to the list (303).
			allowed = []int{http.StatusSeeOther, http.StatusNotFound, http.StatusServiceUnavailable}
		}
		if !slices.Contains(allowed, a.status) {
			r.bad = append(r.bad, fmt.Sprintf("%s: %d %s", what, a.status, a.body))
		}
		if a.status == http.StatusServiceUnavailable && a.retry == "" {
			r.bad = append(r.bad, fmt.Sprintf("%s: 503 without Retry-After", what))
		}
		if page && a.status >= 400 && !strings.HasPrefix(a.ctype, "text/html") {
			r.bad = append(r.bad, fmt.Sprintf("%s: %d as %q, want an HTML page", what, a.status, a.ctype))
		}
		switch {
		case create && (a.status == http.StatusCreated || a.status == http.StatusSeeOther):
			r.created++
			var u struct{ ID uint64 }
			if json.Unmarshal([]byte(a.body), &u) == nil {
				r.ids = append(r.ids, u.ID)
			}
		case del && a.status == http.StatusNoContent:
			r.deleted++
		}
		r.mu.Unlock()
	}
}

// adminDo sends an admin API request and returns its status and body.
func adminDo(t *testing.T, env *testenv.Env, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, env.AdminURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+removalAdminToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRemoveUnderLoad is issue 9's "removal under load": on each
// database, tenants are removed one after another (their data dropped,
// then archived) through the admin API while 16 clients use each of them.
// Every removal answers 200; no client request of the removed tenant
// answers anything but its usual statuses, 404 or 503 (never 500); every
// request sent after the removal answered gets 404; a tenant served at
// the same time sees only 2xx; dropped data is gone and archived data
// holds exactly the users whose creation and deletion were acknowledged.
func TestRemoveUnderLoad(t *testing.T) {
	type round struct {
		name string
		drop bool
	}
	all := []round{{"gone1", true}, {"gone2", true}, {"gone3", true}, {"gone4", true}, {"kept1", false}, {"kept2", false}}
	for _, tc := range []struct {
		driver   string
		strategy tenants.Strategy
		rounds   []round
	}{
		{"sqlite", tenants.StrategyPrefix, all},
		{"postgres", tenants.StrategySchema, all},
		// Prefixed tables on PostgreSQL lock, drop and rename apart from
		// a schema: one removal of each kind.
		{"postgres", tenants.StrategyPrefix, []round{{"gone1", true}, {"kept1", false}}},
	} {
		t.Run(tc.driver+"/"+string(tc.strategy), func(t *testing.T) {
			env := testenv.Start(t, tc.driver, testenv.WithAdmin(removalAdminToken), func(c *config.Config) {
				c.Tenancy.Strategy = string(tc.strategy)
				// Enough room for every client at once: a 429 is another
				// test's subject.
				c.Tenancy.MaxConcurrentPerTenant = 4 * loadClients
			})
			layout := env.App.Catalog.Layout()
			bystander := loadClient{http: newLoadHTTP(), base: env.URL2, host: env.Addr2}
			for _, rd := range tc.rounds {
				t.Run(rd.name, func(t *testing.T) {
					removeUnderLoad(t, env, layout, bystander, rd.name, rd.drop)
				})
			}
		})
	}
}

func newLoadHTTP() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4 * loadClients
	return &http.Client{Timeout: 30 * time.Second, Transport: tr,
		// A form's 303 is its answer; following it would be another request.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// removeUnderLoad creates the tenant name, loads it with loadClients
// clients, removes it through the admin API and checks what everyone saw.
func removeUnderLoad(t *testing.T, env *testenv.Env, layout tenants.Layout, bystander loadClient, name string, drop bool) {
	ctx := context.Background()
	host := name + ".test"
	if st, body := adminDo(t, env, http.MethodPost, "/admin/tenants", `{"name":"`+name+`","hosts":["`+host+`"]}`); st != http.StatusCreated {
		t.Fatalf("create %s: %d %s", name, st, body)
	}
	client := loadClient{http: newLoadHTTP(), base: env.URL1, host: host}
	r := &removedUnderLoad{statuses: map[int]int{}, late: map[int]int{}}
	var serial atomic.Int64
	const seeded = 20
	for range seeded {
		a, err := client.do(ctx, http.MethodPost, "/api/users", "application/json", "", userJSON(host, serial.Add(1)))
		if err != nil || a.status != http.StatusCreated {
			t.Fatalf("seed user: %v %d %s", err, a.status, a.body)
		}
		var u struct{ ID uint64 }
		if err := json.Unmarshal([]byte(a.body), &u); err != nil {
			t.Fatal(err)
		}
		r.ids = append(r.ids, u.ID)
	}

	loadCtx, stop := context.WithCancel(ctx)
	var removed atomic.Bool
	var wg sync.WaitGroup
	for i := range loadClients {
		wg.Go(func() { runLoad(loadCtx, client, uint64(i+1), r, &removed, &serial) })
	}
	// The bystander tenant is served alongside, and must not notice.
	by := &removedUnderLoad{statuses: map[int]int{}, late: map[int]int{}}
	wg.Go(func() {
		for n := int64(0); loadCtx.Err() == nil; n++ {
			path, method, body, ctype := "/api/users?limit=5", http.MethodGet, "", ""
			if n%3 == 0 {
				path, method, body, ctype = "/api/users", http.MethodPost, userJSON(name+"-bystander", n), "application/json"
			}
			a, err := bystander.do(loadCtx, method, path, ctype, "application/json", body)
			if loadCtx.Err() != nil {
				return
			}
			by.mu.Lock()
			if err != nil || a.status >= 300 {
				by.bad = append(by.bad, fmt.Sprintf("%s %s: %d %v %s", method, path, a.status, err, a.body))
			}
			by.statuses[a.status]++
			by.mu.Unlock()
		}
	})
	defer func() { stop(); wg.Wait() }()

	// The removal starts with every client busy.
	testenv.Eventually(t, 20*time.Second, func() bool { return r.total() >= 10*loadClients }, "load under way")
	path := "/admin/tenants/" + name + "?drop_data=" + strconv.FormatBool(drop)
	start := time.Now()
	st, body := adminDo(t, env, http.MethodDelete, path, "")
	took := time.Since(start)
	removed.Store(true)
	if st != http.StatusOK {
		t.Fatalf("DELETE %s: %d %s (after %v)", path, st, body, took)
	}
	// Clients go on until each has had time to learn the tenant is gone.
	testenv.Eventually(t, 20*time.Second, func() bool { return r.lateTotal() >= 5*loadClients }, "requests after the removal")
	stop()
	wg.Wait()

	r.mu.Lock()
	defer r.mu.Unlock()
	t.Logf("removal took %v; answers %v; after it %v; bystander %v", took, r.statuses, r.late, by.statuses)
	if len(r.bad) > 0 {
		t.Errorf("%d answers a removal must not cause, first ones:\n%s", len(r.bad), strings.Join(r.bad[:min(len(r.bad), 10)], "\n"))
	}
	for status, n := range r.late {
		if status != http.StatusNotFound {
			t.Errorf("%d requests sent after the removal answered %d, want 404", n, status)
		}
	}
	if len(by.bad) > 0 {
		t.Errorf("the bystander tenant got %d answers other than 2xx, first ones:\n%s", len(by.bad), strings.Join(by.bad[:min(len(by.bad), 10)], "\n"))
	}

	var rm struct {
		Name        string `json:"name"`
		DataDropped bool   `json:"data_dropped"`
		ArchivedAs  string `json:"archived_as"`
	}
	if err := json.Unmarshal([]byte(body), &rm); err != nil || rm.Name != name || rm.DataDropped != drop {
		t.Fatalf("removal answer %s: %v", body, err)
	}
	db := env.App.DB
	live, err := migrations.HasTable(ctx, db, layout.TenantTarget(name), "users")
	if err != nil || live {
		t.Errorf("the tenant's users table still exists (%v, %v)", live, err)
	}
	if drop {
		if rm.ArchivedAs != "" {
			t.Errorf("archived_as %q with drop_data=true", rm.ArchivedAs)
		}
		return
	}
	archived := rm.ArchivedAs + ".users"
	if layout.Strategy == tenants.StrategyPrefix {
		archived = strings.TrimSuffix(rm.ArchivedAs, "*") + "users"
		if layout.Dialect == migrations.Postgres {
			archived = tenants.PrefixSchema + "." + archived
		}
	}
	var n int
	if err := db.Raw("SELECT count(*) FROM " + migrations.Quote(archived)).Scan(&n).Error; err != nil {
		t.Fatalf("count archived users in %s: %v", archived, err)
	}
	if want := seeded + r.created - r.deleted; n != want {
		t.Errorf("archived %s holds %d users, want %d (%d seeded + %d created - %d deleted)", archived, n, want, seeded, r.created, r.deleted)
	}
}
