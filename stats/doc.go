// Package stats keeps, in memory, what every tenant's requests were over
// the last 1, 5 and 15 minutes: how many, how many failed, and their p50
// and p99 latency. It is what GET /admin/tenants/{name}/stats and
// `tenantry tenants stats` show, for every tenant, where Prometheus
// (package metrics) keeps per-tenant series for the busiest only.
//
// # What is counted
//
// Stats is a middleware.Observer on the tenant listeners: it counts every
// request answered for a resolved tenant, whatever its status. A request
// refused before its tenant was known (an unknown host) is no tenant's,
// and the admin API's requests are not counted. A 5xx answer is an error;
// a 4xx one a client error (429 from the tenant's limits among them);
// both count as requests too. Figures are this process's: with several
// instances, each knows only the requests it served.
//
// # Windows
//
// Each tenant has a ring of 16 one-minute buckets. The N-minute window is
// the minute under way plus the N whole minutes before it, so it spans
// between N and N+1 minutes, never less: a 1-minute window read a second
// into a minute still holds the minute before. Each window reports where
// it starts (From) and how many seconds it spans, so that counts turn into
// rates. A window never reaches back before the process started or the
// tenant was created. The clock is injectable (WithClock).
//
// # Quantiles and their error
//
// A bucket holds a histogram of 56 log-scale bins, three an octave, from
// 0.1 ms to 26.2 s (LowestLatency, HighestLatency). p50 and p99 are the
// nearest-rank quantiles of the window's latencies, reported as the
// geometric middle of their bin: within 12.25% (MaxRelativeError,
// 2^(1/6)-1) of the exact quantile between 0.1 ms and 26.2 s; a quantile
// below that range is reported as 0.1 ms, one above it as 26.2 s. Counts
// are exact. A bin holds up to 65,535 requests a minute; past that, the
// minute's histogram halves and samples one request in two (then four,
// ...), so quantiles of a tenant serving over 1,000 requests a second
// rest on a systematic sample of at least 32,768 of them.
//
// # Memory bound
//
// A tenant's entry is fixed: 16 buckets of 3 counters and 56 two-byte
// bins (124 bytes each), their sampling shifts and a mutex, 2,016 bytes,
// which the allocator serves from its 2,048-byte size class. It is made on
// the tenant's first request and dropped, by a sweep at the turn of each
// minute, once the tenant has had no request for 16 minutes (so a removed
// tenant's entry goes too). With its name and its share of the map a
// tenant takes about 2,150 bytes: 10,000 active tenants take 21.5 MB,
// measured by TestMemoryBound, which fails above 26 MB. Memory follows the
// tenants active in the last 16 minutes, not the catalog.
//
// # Cost on the request path
//
// Observe takes no lock shared between tenants: a sync.Map read (lock
// free for existing keys), the tenant's own mutex and a binary search over
// the 55 bin edges, with no allocation after a tenant's first request.
// BenchmarkObserve, on the 2-core development machine: 118 ns for one
// tenant, 217 ns a request with 10,000 tenants on both cores, 174 ns with
// one tenant on both cores.
package stats
