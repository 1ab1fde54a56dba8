package stats

import (
	"math"
	"slices"
	"time"
)

// The latency histogram has bins log-scale bins: bin 0 holds latencies
// under lowest, bin k (1 ≤ k ≤ bins-2) holds [lowest·γ^(k-1), lowest·γ^k)
// with γ = 2^(1/3), and the last bin everything from lowest·γ^(bins-2)
// (26.2 s) up. Three bins an octave keep a quantile within
// MaxRelativeError of its exact value; 56 bins span 0.1 ms to 26.2 s,
// past the request deadline (server.request_timeout, 10 s by default).
const (
	bins   = 56
	lowest = 100 * time.Microsecond
	// perOctave is the number of bins per doubling of latency.
	perOctave = 3
)

// MaxRelativeError bounds how far a reported quantile is from the exact
// quantile of the latencies counted, for latencies between LowestLatency
// and HighestLatency: a quantile is reported as the geometric middle of
// its bin, which is at most 2^(1/6) times, and at least 2^(-1/6) times,
// any value in the bin. It is 2^(1/6) - 1.
const MaxRelativeError = 0.12246204830937302

// LowestLatency and HighestLatency are the ends of the histogram's range:
// a quantile below LowestLatency is reported as LowestLatency, one above
// HighestLatency as HighestLatency (the lower edge of the last bin,
// lowest·2^((bins-2)/perOctave)).
const (
	LowestLatency  = lowest
	HighestLatency = lowest << ((bins - 2) / perOctave)
)

// edges are the lower edges of bins 1 to bins-1, in ascending order.
var edges = func() (e [bins - 1]time.Duration) {
	for i := range e {
		e[i] = time.Duration(math.Round(float64(lowest) * math.Pow(2, float64(i)/perOctave)))
	}
	return e
}()

// binOf returns the bin of latency d: the number of edges at or below it.
func binOf(d time.Duration) int {
	i, found := slices.BinarySearch(edges[:], d)
	if found {
		i++
	}
	return i
}

// middle is the latency a quantile that falls in bin k is reported as:
// the geometric middle of the bin, or the end of the range for the two
// open bins.
func middle(k int) time.Duration {
	switch k {
	case 0:
		return lowest
	case bins - 1:
		return edges[bins-2]
	}
	return time.Duration(math.Round(float64(edges[k-1]) * math.Pow(2, 1.0/(2*perOctave))))
}

// quantile returns the nearest-rank q-quantile of the weighted histogram
// h, in milliseconds rounded to the microsecond, or nil when h is empty.
func quantile(h *[bins]uint64, q float64) *float64 {
	var total uint64
	for _, c := range h {
		total += c
	}
	if total == 0 {
		return nil
	}
	rank := max(uint64(math.Ceil(q*float64(total))), 1)
	var seen uint64
	for k, c := range h {
		seen += c
		if seen >= rank {
			ms := math.Round(float64(middle(k))/float64(time.Microsecond)) / 1000
			return &ms
		}
	}
	return nil // unreachable: seen reaches total ≥ rank
}
