package handlers_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"tenantry/handlers"
	"tenantry/internal/testenv"
	"tenantry/tenants"
)

// TestAccessLog checks the debug access log through the real router: with
// debug enabled every request is one record with its method, path, host,
// status, duration and (once resolved) tenant; at info level, as in
// production, nothing is written.
func TestAccessLog(t *testing.T) {
	env := testenv.Start(t, "sqlite")
	mw, err := tenants.NewMiddleware(env.App.Resolver, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		level slog.Level
		path  string
		want  string // "" for no record at all
	}{
		{"debug, tenant route", slog.LevelDebug, "/api/tenant",
			"level=DEBUG msg=request method=GET path=/api/tenant host=" + env.Addr1 + " status=200 duration_ms=N tenant=tenant1\n"},
		{"debug, no tenant", slog.LevelDebug, "/healthz",
			"level=DEBUG msg=request method=GET path=/healthz host=" + env.Addr1 + " status=200 duration_ms=N\n"},
		{"info", slog.LevelInfo, "/api/tenant", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf testenv.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
				Level: tc.level,
				// Without the time, and with any whole number of
				// milliseconds shown as N, the record can be compared whole.
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					switch {
					case a.Key == slog.TimeKey:
						return slog.Attr{}
					case a.Key == "duration_ms" && a.Value.Kind() == slog.KindInt64 && a.Value.Int64() >= 0:
						return slog.String(a.Key, "N")
					}
					return a
				},
			}))
			h := handlers.New(handlers.Deps{Log: log, Tenants: mw, MaxBody: 1 << 20})
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			req.Host = env.Addr1
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s = %d: %s", tc.path, rec.Code, rec.Body)
			}
			got := buf.String()
			if tc.want == "" {
				if got != "" {
					t.Errorf("log = %q, want nothing at info level", got)
				}
				return
			}
			if got != tc.want {
				t.Errorf("log = %q, want %q", got, tc.want)
			}
		})
	}
}
