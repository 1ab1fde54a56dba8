package requestid_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"tenantry/requestid"
)

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   string
		want bool
	}{
		{"uuid", "0b6f4c1e-8d3a-4f0e-9a7b-2c5d6e7f8a9b", true},
		{"base64url", "q7Zk_3-xY0aB1cD2", true},
		{"base64 with padding", "q7Zk/3+xY0aB1cD2==", true},
		{"aws trace id", "Root=1-5759e988-bd862e3fe1be46a994272793", true},
		{"one byte", "a", true},
		{"every allowed punctuation", "a-._~+/=:z", true},
		{"64 bytes", strings.Repeat("a", 64), true},
		{"empty", "", false},
		{"65 bytes", strings.Repeat("a", 65), false},
		{"space", "a b", false},
		{"quote", `a"b`, false},
		{"semicolon", "Root=1;Parent=2", false},
		{"comma", "a,b", false},
		{"newline", "a\nlevel=ERROR", false},
		{"non-ASCII", "caf\u00e9", false},
		{"NUL", "a\x00", false},
		{"email", "ann@example.com", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := requestid.Valid(tc.id); got != tc.want {
				t.Errorf("Valid(%q) = %v, want %v", tc.id, got, tc.want)
			}
		})
	}
}

// TestNew: every id New makes is Valid, 16 characters long, and they
// differ (a repeat among a thousand 96-bit ids would mean broken randomness).
func TestNew(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := requestid.New()
		if !requestid.Valid(id) || len(id) != 16 {
			t.Fatalf("New() = %q: want 16 valid characters", id)
		}
		if seen[id] {
			t.Fatalf("New() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	if id, ok := requestid.FromContext(ctx); ok || id != "" {
		t.Errorf("FromContext(Background) = %q, %v; want \"\", false", id, ok)
	}
	type other struct{}
	ctx = context.WithValue(ctx, other{}, "kept")
	ctx = requestid.NewContext(ctx, "abc")
	ctx, cancel := context.WithCancel(ctx)
	if id, ok := requestid.FromContext(ctx); !ok || id != "abc" {
		t.Errorf("FromContext = %q, %v; want abc, true", id, ok)
	}
	if v := ctx.Value(other{}); v != "kept" {
		t.Errorf("a value under the id's node = %v, want kept", v)
	}
	// The node passes cancellation through: a child of it ends with it.
	child, stop := context.WithCancel(ctx)
	defer stop()
	cancel()
	<-child.Done()
}

// TestHotPathAllocations: naming a request costs one allocation for the id
// and one for the context node, and reading it back none.
func TestHotPathAllocations(t *testing.T) {
	ctx := context.Background()
	want := 2.0
	if raceEnabled {
		want++
	}
	if n := testing.AllocsPerRun(100, func() { ctx = requestid.NewContext(context.Background(), requestid.New()) }); n > want {
		t.Errorf("New + NewContext: %v allocations, want at most %v", n, want)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = requestid.FromContext(ctx) }); n != 0 {
		t.Errorf("FromContext: %v allocations, want 0", n)
	}
}

const (
	trace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	parent = "00f067aa0ba902b7"
)

func TestTraceID(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        string // "" when invalid
	}{
		{"spec example", "00-" + trace + "-" + parent + "-01", trace},
		{"not sampled", "00-" + trace + "-" + parent + "-00", trace},
		{"later version with more fields", "cc-" + trace + "-" + parent + "-01-what-the-future-adds", trace},
		{"later version, same length", "01-" + trace + "-" + parent + "-01", trace},
		{"empty", "", ""},
		{"version ff", "ff-" + trace + "-" + parent + "-01", ""},
		{"version 00 with more fields", "00-" + trace + "-" + parent + "-01-x", ""},
		{"later version, no dash after flags", "01-" + trace + "-" + parent + "-01x", ""},
		{"short trace id", "00-" + trace[1:] + "-" + parent + "-01", ""},
		{"long parent id", "00-" + trace + "-" + parent + "0-01", ""},
		{"uppercase hex", "00-" + strings.ToUpper(trace) + "-" + parent + "-01", ""},
		{"uppercase version", "0A-" + trace + "-" + parent + "-01", ""},
		{"not hex", "00-" + trace[:31] + "g-" + parent + "-01", ""},
		{"zero trace id", "00-" + strings.Repeat("0", 32) + "-" + parent + "-01", ""},
		{"zero parent id", "00-" + trace + "-" + strings.Repeat("0", 16) + "-01", ""},
		{"bad flags", "00-" + trace + "-" + parent + "-0x", ""},
		{"wrong separator", "00_" + trace + "-" + parent + "-01", ""},
		{"spaces", " 00-" + trace + "-" + parent + "-01", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := requestid.TraceID(tc.value)
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("TraceID(%q) = %q, %v; want %q, %v", tc.value, got, ok, tc.want, tc.want != "")
			}
		})
	}
}

// traceParent is the grammar of the recommendation written as a regular
// expression, the oracle FuzzTraceID holds TraceID to.
var traceParent = regexp.MustCompile(`(?s)^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$`)

// FuzzTraceID: TraceID accepts exactly the values the grammar does, less
// version ff, version 00 with anything after the flags, and all-zero ids,
// and then returns the trace id as the value spells it.
func FuzzTraceID(f *testing.F) {
	f.Add("00-" + trace + "-" + parent + "-01")
	f.Add("cc-" + trace + "-" + parent + "-01-x")
	f.Add("00-" + strings.Repeat("0", 32) + "-" + parent + "-01")
	f.Add("ff-" + trace + "-" + parent + "-01")
	f.Fuzz(func(t *testing.T, value string) {
		got, ok := requestid.TraceID(value)
		m := traceParent.FindStringSubmatch(value)
		want := m != nil && m[1] != "ff" && !(m[1] == "00" && m[5] != "") &&
			strings.Trim(m[2], "0") != "" && strings.Trim(m[3], "0") != ""
		if ok != want {
			t.Fatalf("TraceID(%q) ok = %v, want %v", value, ok, want)
		}
		if ok && got != m[2] {
			t.Fatalf("TraceID(%q) = %q, want %q", value, got, m[2])
		}
		if !ok && got != "" {
			t.Fatalf("TraceID(%q) = %q with false, want \"\"", value, got)
		}
	})
}
