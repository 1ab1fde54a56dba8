package logging_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"tenantry/logging"
	"tenantry/requestid"
	"tenantry/tenants"
)

func TestHandler(t *testing.T) {
	both := tenants.NewContext(requestid.NewContext(context.Background(), "rid-1"), &tenants.Tenant{Name: "acme"})
	idOnly := requestid.NewContext(context.Background(), "rid-1")
	for _, tc := range []struct {
		name string
		ctx  context.Context
		log  func(*slog.Logger, context.Context)
		want string
	}{
		{"both from the context", both,
			func(l *slog.Logger, ctx context.Context) { l.InfoContext(ctx, "m", "k", 1) },
			"level=INFO msg=m k=1 request_id=rid-1 tenant=acme\n"},
		{"id only", idOnly,
			func(l *slog.Logger, ctx context.Context) { l.WarnContext(ctx, "m") },
			"level=WARN msg=m request_id=rid-1\n"},
		{"no context values", context.Background(),
			func(l *slog.Logger, ctx context.Context) { l.InfoContext(ctx, "m") },
			"level=INFO msg=m\n"},
		{"no context", nil,
			func(l *slog.Logger, _ context.Context) { l.Info("m") },
			"level=INFO msg=m\n"},
		{"keys of the record win", both,
			func(l *slog.Logger, ctx context.Context) {
				l.LogAttrs(ctx, slog.LevelInfo, "request", slog.String("request_id", "own"), slog.String("tenant", ""))
			},
			"level=INFO msg=request request_id=own tenant=\"\"\n"},
		{"one key of the record, the other added", both,
			func(l *slog.Logger, ctx context.Context) { l.InfoContext(ctx, "m", "tenant", "other") },
			"level=INFO msg=m tenant=other request_id=rid-1\n"},
		{"keys of the logger win", both,
			func(l *slog.Logger, ctx context.Context) { l.With("tenant", "other").InfoContext(ctx, "m") },
			"level=INFO msg=m tenant=other request_id=rid-1\n"},
		{"in a group", both,
			func(l *slog.Logger, ctx context.Context) { l.With("tenant", "x").WithGroup("g").InfoContext(ctx, "m") },
			"level=INFO msg=m tenant=x g.request_id=rid-1 g.tenant=acme\n"},
		{"below the level", both,
			func(l *slog.Logger, ctx context.Context) { l.DebugContext(ctx, "m") },
			""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			text := slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}})
			tc.log(slog.New(logging.NewHandler(text)), tc.ctx)
			if got := buf.String(); got != tc.want {
				t.Errorf("log = %q, want %q", got, tc.want)
			}
		})
	}
}
