package metrics

import (
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"tenantry/tenants"
)

// sourceCollector reads Sources at scrape time. Every value it reports is
// a snapshot the source keeps anyway (counters, the cached catalog's
// counts, database/sql's pool statistics): a scrape costs no query and no
// lock held on a request's path for longer than a copy.
type sourceCollector struct {
	src Sources

	lookups, reloads, lastReload, tenants *prometheus.Desc
	poolMaxOpen, poolOpen, poolInUse      *prometheus.Desc
	poolIdle, poolWaits, poolWaitSeconds  *prometheus.Desc
	poolOverflows, databaseUp             *prometheus.Desc
}

func newSourceCollector(src Sources) *sourceCollector {
	group := []string{"database", "group"}
	db := []string{"database"}
	return &sourceCollector{
		src: src,
		lookups: prometheus.NewDesc("tenantry_resolver_lookups_total",
			`Host lookups by the tenant resolver, by result: "hit" (a tenant from the cache), "negative_hit" (unknown, from the cache), "miss" (asked the catalog).`,
			[]string{"result"}, nil),
		reloads: prometheus.NewDesc("tenantry_catalog_reloads_total",
			`Full catalog reloads into the resolver's cache (periodic, and on PostgreSQL after every announced change), by result: "ok" or "failed".`,
			[]string{"result"}, nil),
		lastReload: prometheus.NewDesc("tenantry_catalog_last_reload_timestamp_seconds",
			"When the resolver's cache last installed a full catalog reload (Unix time); absent before the first.",
			nil, nil),
		tenants: prometheus.NewDesc("tenantry_tenants",
			`Tenants in the catalog as of the last reload, by status: "active", "suspended", or "removing" (removal begun, counted only there).`,
			[]string{"status"}, nil),
		poolMaxOpen: prometheus.NewDesc("tenantry_db_pool_max_open_connections",
			"Most connections the connection group may open (0: no limit).", group, nil),
		poolOpen: prometheus.NewDesc("tenantry_db_pool_open_connections",
			"Connections the connection group holds open, in use or idle.", group, nil),
		poolInUse: prometheus.NewDesc("tenantry_db_pool_in_use_connections",
			"Connections of the connection group running a statement or transaction.", group, nil),
		poolIdle: prometheus.NewDesc("tenantry_db_pool_idle_connections",
			"Idle connections of the connection group.", group, nil),
		poolWaits: prometheus.NewDesc("tenantry_db_pool_waits_total",
			"Times a caller waited for a connection of the group.", group, nil),
		poolWaitSeconds: prometheus.NewDesc("tenantry_db_pool_wait_seconds_total",
			"Time callers spent waiting for a connection of the group.", group, nil),
		poolOverflows: prometheus.NewDesc("tenantry_db_pool_overflows_total",
			"Statements and transactions run outside their tenant's home connection group because it was busy.", db, nil),
		databaseUp: prometheus.NewDesc("tenantry_database_up",
			"1 while the database answers, 0 from the first statement or readiness check it failed to answer until the next it answers.",
			db, nil),
	}
}

// Describe sends every descriptor, whether or not its source is set: the
// registry then refuses a name clash at New, not at the first scrape.
func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lookups, c.reloads, c.lastReload, c.tenants,
		c.poolMaxOpen, c.poolOpen, c.poolInUse, c.poolIdle, c.poolWaits, c.poolWaitSeconds,
		c.poolOverflows, c.databaseUp} {
		ch <- d
	}
}

// Collect reads every source that is set.
func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	if r := c.src.Resolver; r != nil {
		st := r.Stats()
		ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(st.Hits), "hit")
		ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(st.NegativeHits), "negative_hit")
		ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(st.Misses), "miss")
		ch <- prometheus.MustNewConstMetric(c.reloads, prometheus.CounterValue, float64(st.Reloads), "ok")
		ch <- prometheus.MustNewConstMetric(c.reloads, prometheus.CounterValue, float64(st.ReloadFailures), "failed")
		if !st.LastReload.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.lastReload, prometheus.GaugeValue,
				float64(st.LastReload.UnixNano())/1e9)
			// Every status is reported once a reload has counted them,
			// zero included, so that a status emptying shows as 0 rather
			// than as a series that vanished.
			known := []tenants.Status{tenants.StatusActive, tenants.StatusSuspended}
			for _, s := range known {
				ch <- prometheus.MustNewConstMetric(c.tenants, prometheus.GaugeValue, float64(st.Tenants[s]), string(s))
			}
			for s, n := range st.Tenants {
				if !slices.Contains(known, s) {
					ch <- prometheus.MustNewConstMetric(c.tenants, prometheus.GaugeValue, float64(n), string(s))
				}
			}
			ch <- prometheus.MustNewConstMetric(c.tenants, prometheus.GaugeValue, float64(st.Removing), "removing")
		}
	}
	for _, d := range c.src.databases() {
		if p := d.Pool; p != nil {
			for i, st := range p.GroupStats() {
				g := strconv.Itoa(i)
				ch <- prometheus.MustNewConstMetric(c.poolMaxOpen, prometheus.GaugeValue, float64(st.MaxOpenConnections), d.Name, g)
				ch <- prometheus.MustNewConstMetric(c.poolOpen, prometheus.GaugeValue, float64(st.OpenConnections), d.Name, g)
				ch <- prometheus.MustNewConstMetric(c.poolInUse, prometheus.GaugeValue, float64(st.InUse), d.Name, g)
				ch <- prometheus.MustNewConstMetric(c.poolIdle, prometheus.GaugeValue, float64(st.Idle), d.Name, g)
				ch <- prometheus.MustNewConstMetric(c.poolWaits, prometheus.CounterValue, float64(st.WaitCount), d.Name, g)
				ch <- prometheus.MustNewConstMetric(c.poolWaitSeconds, prometheus.CounterValue, st.WaitDuration.Seconds(), d.Name, g)
			}
			ch <- prometheus.MustNewConstMetric(c.poolOverflows, prometheus.CounterValue, float64(p.Overflows()), d.Name)
		}
		if h := d.Health; h != nil {
			up := 0.0
			if h.Available() {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(c.databaseUp, prometheus.GaugeValue, up, d.Name)
		}
	}
}
