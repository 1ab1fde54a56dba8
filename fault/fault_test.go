package fault

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestKindOf(t *testing.T) {
	sentinel := New(NotFound, "tenant-not-found", "No tenant has this name.")
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"nil", nil, Internal},
		{"plain", errors.New("boom"), Internal},
		{"direct", sentinel, NotFound},
		{"wrapped", fmt.Errorf("get tenant: %w", sentinel), NotFound},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), Timeout},
		{"canceled", fmt.Errorf("query: %w", context.Canceled), Canceled},
		{"classified wins over deadline", Wrap(context.DeadlineExceeded, Unavailable, "database-unavailable", "x"), Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KindOf(tt.err); got != tt.want {
				t.Errorf("KindOf(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestSentinelMatchesItsCopies(t *testing.T) {
	sentinel := New(Invalid, "invalid-name", "Invalid name.")
	cause := errors.New("driver detail")
	err := fmt.Errorf("provision: %w", sentinel.With("name", `schema "x" is reserved`, cause))
	if !errors.Is(err, sentinel) {
		t.Errorf("errors.Is(%v, sentinel) = false, want true", err)
	}
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is(%v, cause) = false, want true", err)
	}
	if errors.Is(err, New(Invalid, "invalid-host", "")) {
		t.Errorf("a different code matched")
	}
	e, ok := As(err)
	if !ok || e.Field != "name" || e.Message != `schema "x" is reserved` {
		t.Errorf("As = %+v, %v; want field name and the particular message", e, ok)
	}
	if sentinel.Field != "" || sentinel.Err != nil {
		t.Errorf("With changed the sentinel: %+v", sentinel)
	}
}

func TestErrorTextKeepsCauseForLogs(t *testing.T) {
	err := Wrap(errors.New("dial tcp: connection refused"), Unavailable, "database-unavailable", "The database is unavailable.")
	if got, want := err.Error(), "The database is unavailable.: dial tcp: connection refused"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestTransient(t *testing.T) {
	for k := Internal; k <= RequestTimeout; k++ {
		want := k == Unavailable || k == Timeout || k == Contention || k == TooMany
		if got := k.Transient(); got != want {
			t.Errorf("%v.Transient() = %v, want %v", k, got, want)
		}
		if k.String() == "" {
			t.Errorf("kind %d has no name", k)
		}
	}
}
