package admin

import (
	"io"
	"log/slog"
	"strings"
	"testing"
)

// BenchmarkTokenMatches backs the claim that a wrong admin token takes as
// long to refuse however much of the real one it gets right and whatever
// its length relative to the real one: the rows must agree within noise
// (docs/BENCHMARKS.md). Only the presented token's own length may show,
// as SHA-256 hashes it, and that reveals nothing about the real token.
func BenchmarkTokenMatches(b *testing.B) {
	const token = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG" // 43 characters, as NewToken makes
	s, err := NewServer(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Token: token})
	if err != nil {
		b.Fatal(err)
	}
	flip := func(i int) string {
		t := []byte(token)
		t[i] ^= 1
		return string(t)
	}
	for _, bc := range []struct{ name, token string }{
		{"right", token},
		{"wrong at the first byte", flip(0)},
		{"wrong at the last byte", flip(len(token) - 1)},
		{"right but one byte short", token[:len(token)-1]},
		{"one byte", "x"},
		{"same length, nothing shared", strings.Repeat("~", len(token))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			want := bc.token == token
			for b.Loop() {
				if s.tokenMatches(bc.token) != want {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}
