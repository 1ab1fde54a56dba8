package handlers_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"tenantry/internal/testenv"
)

// TestBrowser drives a real headless Chromium through the pages of two
// tenants served on two real listeners: add, validate, edit and delete a
// user, and see another tenant's page refused when it posts a form here.
//
// With TENANTRY_SCREENSHOT=1 it also writes docs/screenshot-users.png.
func TestBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	testenv.RequireTool(t, "chromium", err == nil)
	for _, driver := range testenv.Drivers {
		t.Run(driver, func(t *testing.T) {
			env := testenv.Start(t, driver)
			ctx := newBrowser(t, chromium)
			u1, u2 := env.URL1, env.URL2

			// The list, then a user added through the form.
			page(t, ctx, u1+"/users", http.StatusOK)
			if title := run(t, ctx, chromedp.Title()); title != "Users · tenant1" {
				t.Errorf("title = %q, want Users · tenant1", title)
			}
			fill(t, ctx, "Ada Lovelace", "ada@example.com")
			submit(t, ctx, "form.user-form button[type=submit]", http.StatusOK)
			wantText(t, ctx, ".flash", "User Ada Lovelace added")
			wantBody(t, ctx, []string{"ada@example.com", "1 in total"}, nil)
			fill(t, ctx, "Grace Hopper", "grace@example.com")
			submit(t, ctx, "form.user-form button[type=submit]", http.StatusOK)
			wantText(t, ctx, ".flash", "User Grace Hopper added")
			if os.Getenv("TENANTRY_SCREENSHOT") == "1" {
				screenshot(t, ctx, filepath.Join("..", "docs", "screenshot-users.png"))
			}
			phoneFits(t, ctx)

			// Another tenant does not have the user.
			page(t, ctx, u2+"/users", http.StatusOK)
			wantBody(t, ctx, []string{"tenant2", "0 in total"}, []string{"ada@example.com", "tenant1"})

			// An invalid email: 422, the message beside the field, the name kept.
			page(t, ctx, u1+"/users", http.StatusOK)
			fill(t, ctx, "Alan Turing", "alan-at-example")
			submit(t, ctx, "form.user-form button[type=submit]", http.StatusUnprocessableEntity)
			wantText(t, ctx, "#email-error", "Email must be a valid email address, like name@example.com")
			if v := run(t, ctx, chromedp.Value(chromedp.CSS("#name"))); v != "Alan Turing" {
				t.Errorf("name field = %q after the invalid post, want Alan Turing", v)
			}

			// Edit Ada (the first row), then delete her through the confirm page.
			page(t, ctx, u1+"/users", http.StatusOK)
			submit(t, ctx, `tr:first-child a[href$="/edit"]`, http.StatusOK)
			if v := run(t, ctx, chromedp.Value(chromedp.CSS("#email"))); v != "ada@example.com" {
				t.Errorf("edit form email = %q, want ada@example.com", v)
			}
			do(t, ctx, chromedp.SetValue(chromedp.CSS("#name"), "Ada King"))
			submit(t, ctx, "form.user-form button[type=submit]", http.StatusOK)
			wantText(t, ctx, ".flash", "User Ada King updated")
			submit(t, ctx, `tr:first-child a[href$="/delete"]`, http.StatusOK)
			wantText(t, ctx, "h1", "Delete user")
			submit(t, ctx, "button.danger", http.StatusOK)
			wantText(t, ctx, ".flash", "User Ada King deleted")
			wantBody(t, ctx, []string{"grace@example.com", "1 in total"}, []string{"ada@example.com"})

			// A page of tenant2 (same site, another origin) posts a form to
			// tenant1: refused with a readable 403 page, and nothing is stored.
			page(t, ctx, u2+"/users", http.StatusOK)
			forge := `(() => {
				const f = document.createElement("form");
				f.method = "post";
				f.action = ` + quoteJSON(u1+"/users") + `;
				for (const [k, v] of [["name", "Mallory"], ["email", "mallory@example.com"]]) {
					const i = document.createElement("input");
					i.name = k; i.value = v; f.appendChild(i);
				}
				document.body.appendChild(f);
				f.submit();
				return true;
			})()`
			resp, err := chromedp.RunResponse(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := chromedp.Evaluate[bool](forge)(ctx, tg)
				return err
			}))
			if err != nil {
				t.Fatalf("forged post: %v", err)
			}
			if resp.Status != http.StatusForbidden || !strings.HasPrefix(resp.URL, u1) {
				t.Fatalf("forged post answered %d from %s, want 403 from %s", resp.Status, resp.URL, u1)
			}
			wantText(t, ctx, "h1", "Request refused")
			page(t, ctx, u1+"/users", http.StatusOK)
			wantBody(t, ctx, []string{"1 in total"}, []string{"mallory@example.com"})
		})
	}
}

// newBrowser starts a headless Chromium with a fresh profile for t. The
// flags keep it off the network (the test machine has none) and able to
// run as root.
func newBrowser(t *testing.T, path string) context.Context {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 720),
	)
	ctx, cancelTab := chromedp.NewContext(actx)
	// A bound, not a timing assertion: a hung browser fails the test
	// instead of the whole run.
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	return ctx
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

// page navigates to url and checks the status of the document.
func page(t *testing.T, ctx context.Context, url string, status int) {
	t.Helper()
	resp := run(t, ctx, chromedp.NavigateResponse(url))
	if int(resp.Status) != status {
		t.Fatalf("GET %s: status %d, want %d", url, resp.Status, status)
	}
}

// submit clicks sel, waits for the page it leads to (after any redirect)
// and checks that page's status.
func submit(t *testing.T, ctx context.Context, sel string, status int) {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
	if int(resp.Status) != status {
		t.Fatalf("click %s: %s answered %d, want %d", sel, resp.URL, resp.Status, status)
	}
}

func fill(t *testing.T, ctx context.Context, name, email string) {
	t.Helper()
	do(t, ctx, chromedp.SetValue(chromedp.CSS("#name"), name), chromedp.SetValue(chromedp.CSS("#email"), email))
}

func wantText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	if got := strings.TrimSpace(run(t, ctx, chromedp.Text(chromedp.CSS(sel)))); got != want {
		t.Errorf("%s = %q, want %q", sel, got, want)
	}
}

// wantBody checks the visible text of the page.
func wantBody(t *testing.T, ctx context.Context, want, notWant []string) {
	t.Helper()
	body := run(t, ctx, chromedp.Evaluate[string]("document.body.innerText"))
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q:\n%s", w, body)
		}
	}
	for _, w := range notWant {
		if strings.Contains(body, w) {
			t.Errorf("page shows %q:\n%s", w, body)
		}
	}
}

// phoneFits checks that the page needs no sideways scrolling on a phone.
func phoneFits(t *testing.T, ctx context.Context) {
	t.Helper()
	do(t, ctx, chromedp.EmulateViewport(375, 740))
	if fits := run(t, ctx, chromedp.Evaluate[bool]("document.documentElement.scrollWidth <= window.innerWidth")); !fits {
		t.Error("the users page is wider than a 375px phone screen")
	}
	do(t, ctx, chromedp.EmulateViewport(1000, 720))
}

func screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	do(t, ctx, chromedp.EmulateViewport(1000, 720))
	png := run(t, ctx, chromedp.CaptureScreenshot())
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	t.Logf("wrote %s", path)
}
