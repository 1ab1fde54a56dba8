package doctor

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"gorm.io/gorm"

	"tenantry/config"
)

// serverSettings are the PostgreSQL settings the doctor sizes.
type serverSettings struct {
	MaxConnections     int
	SuperuserReserved  int
	Reserved           int // reserved_connections, PostgreSQL 16 and later
	MaxFilesPerProcess int
	SharedBuffers      int64 // bytes
}

func readSettings(ctx context.Context, tx *gorm.DB) (serverSettings, error) {
	var rows []struct {
		Name    string
		Setting string
	}
	err := tx.WithContext(ctx).Raw(`SELECT name, setting FROM pg_settings WHERE name IN
	('max_connections', 'superuser_reserved_connections', 'reserved_connections', 'max_files_per_process',
	 'shared_buffers', 'block_size')`).Scan(&rows).Error
	if err != nil {
		return serverSettings{}, fmt.Errorf("read server settings: %w", err)
	}
	v := map[string]int64{}
	for _, r := range rows {
		n, err := strconv.ParseInt(r.Setting, 10, 64)
		if err != nil {
			return serverSettings{}, fmt.Errorf("server setting %s = %q: %w", r.Name, r.Setting, err)
		}
		v[r.Name] = n
	}
	return serverSettings{
		MaxConnections:     int(v["max_connections"]),
		SuperuserReserved:  int(v["superuser_reserved_connections"]),
		Reserved:           int(v["reserved_connections"]),
		MaxFilesPerProcess: int(v["max_files_per_process"]),
		// shared_buffers is counted in blocks.
		SharedBuffers: v["shared_buffers"] * v["block_size"],
	}, nil
}

// demand is what the deployment asks of one server.
type demand struct {
	Instances    int // tenantry processes
	MaxOpenConns int // each process's pool per database
	// Databases are the configured databases on the server: each process
	// keeps a pool of MaxOpenConns on each.
	Databases []string
	// Listeners is the LISTEN connections each process keeps on the
	// server: 1 on the control database's, 0 elsewhere.
	Listeners int
	Groups    int // connection groups per pool (database.Router)
	// Tenants counts the tenants of every database on the server;
	// MostTenants those of the database with most: a connection serves
	// one database, so its backend opens only that one's files.
	Tenants     int
	MostTenants int
	// RelationsPerTenant counts one tenant's tables, indexes, sequences
	// and TOAST relations at the code's version: each is at least one file.
	RelationsPerTenant int
	// WorkingSet is the tenants' tables with their indexes, in bytes.
	WorkingSet int64
}

// demand sums up what the deployment asks of server s.
func (a *audit) demand(s *server, refs map[int]*reference) demand {
	pool := a.d.Pool
	if pool.MaxOpenConns < 1 {
		pool = config.Default().Database
	}
	d := demand{Instances: a.d.Instances, MaxOpenConns: pool.MaxOpenConns, Groups: pool.Groups()}
	if ref := refs[a.set.Latest()]; ref != nil {
		d.RelationsPerTenant = ref.relations()
	}
	tables := a.set.Tables()
	for _, db := range s.placements {
		d.Databases = append(d.Databases, db.name)
		if db.control {
			d.Listeners += listenerConnections
		}
		d.Tenants += len(db.tenants)
		d.MostTenants = max(d.MostTenants, len(db.tenants))
		for _, t := range db.tenants {
			p := tenantPlace(a.d.Layout, t.Schema)
			for _, table := range tables {
				if r := db.inv.table(p.key(table)); r != nil {
					d.WorkingSet += r.size
				}
			}
		}
	}
	return d
}

// Sizing constants, stated in the warnings they produce.
const (
	// operatorConnections is left free beyond the pools for an operator:
	// psql, `tenantry migrate --jobs 2`, the doctor itself.
	operatorConnections = 5
	// listenerConnections is the LISTEN connection each serving process
	// keeps for catalog changes (tenants.Listener), outside its pool.
	listenerConnections = 1
	// systemFiles is what a backend keeps open besides tenant relations:
	// system catalogs, their indexes, the catalog's tables.
	systemFiles = 100
	// measuredPerTenant is the working set per tenant of 100 users that
	// docs/BENCHMARKS.md measured, quoted for scale.
	measuredPerTenant = 64 << 10
	// bufferStep rounds a shared_buffers suggestion up.
	bufferStep = 128 << 20
)

// checkSettings compares the server's settings with what the deployment
// asks of them. Each warning states the value found, the value suggested
// and why; all need a server restart to change.
func checkSettings(s serverSettings, d demand) []Finding {
	var out []Finding
	reserved := s.SuperuserReserved + s.Reserved
	pools := max(len(d.Databases), 1)
	needConns := d.Instances*(pools*d.MaxOpenConns+d.Listeners) + reserved + operatorConnections
	if needConns > s.MaxConnections {
		perInstance := fmt.Sprintf("database.max_open_conns %d", d.MaxOpenConns)
		if pools > 1 {
			perInstance = fmt.Sprintf("%d databases on this server (%s) × database.max_open_conns %d", pools, strings.Join(d.Databases, ", "), d.MaxOpenConns)
		}
		out = append(out, Finding{Check: CheckSettings, Severity: Warning, Object: "max_connections",
			Message: fmt.Sprintf("max_connections is %d; %d instance(s) × (%s + %d listener) + %d reserved + %d for operators need %d: when the pools fill, new connections are refused with \"too many clients\"; raise max_connections to at least %d or lower database.max_open_conns",
				s.MaxConnections, d.Instances, perInstance, d.Listeners, reserved, operatorConnections, needConns, needConns)})
	}
	if most := d.MostTenants; d.RelationsPerTenant > 0 && most > 0 {
		groups := max(d.Groups, 1)
		perConn := (most + groups - 1) / groups
		needFiles := perConn*d.RelationsPerTenant + systemFiles
		if needFiles > s.MaxFilesPerProcess {
			out = append(out, Finding{Check: CheckSettings, Severity: Warning, Object: "max_files_per_process",
				Message: fmt.Sprintf("max_files_per_process is %d; each connection serves about %d tenants (%d over %d connection groups) × %d relation files + %d for the system catalogs = %d: past the limit each backend closes and reopens files as it moves between its tenants; raise max_files_per_process to at least %d (and the postgres user's open-file limit with it)",
					s.MaxFilesPerProcess, perConn, most, groups, d.RelationsPerTenant, systemFiles, needFiles, needFiles)})
		}
	}
	if d.WorkingSet > s.SharedBuffers && d.Tenants > 0 {
		suggest := (d.WorkingSet*5/4 + bufferStep - 1) / bufferStep * bufferStep
		out = append(out, Finding{Check: CheckSettings, Severity: Warning, Object: "shared_buffers",
			Message: fmt.Sprintf("shared_buffers is %s but the %d tenants' tables and indexes total %s (%s each on average; docs/BENCHMARKS.md measured about %s per tenant of 100 users): their pages cycle through the buffer cache, reads go to the OS and each checkpoint writes more full-page images; raise shared_buffers to at least %s (the working set plus a quarter), within about a quarter of the server's memory",
				formatBytes(s.SharedBuffers), d.Tenants, formatBytes(d.WorkingSet), formatBytes(d.WorkingSet/int64(d.Tenants)),
				formatBytes(measuredPerTenant), formatBytes(suggest))})
	}
	return out
}

// formatBytes spells n as PostgreSQL does (kB, MB, GB: powers of 1024),
// rounded up, in GB only when exact.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%dMB", (n+(1<<20)-1)>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dkB", (n+(1<<10)-1)>>10)
	}
	return fmt.Sprintf("%dB", n)
}
