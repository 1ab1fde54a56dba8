package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// memory is an app's memory after a count's runs, in kB: its process, and
// the PostgreSQL client backends connected to its database (its pool: the
// runs end without cancelling requests, see bench/load, so the pool keeps
// its connections).
type memory struct {
	rssKB, hwmKB int64
	// backends is how many client backends were connected; privMax,
	// privMedian and privTotal are over the private memory
	// (Private_Clean + Private_Dirty) of those whose smaps_rollup could be
	// read; unread counts the others (gone, or not readable).
	backends                             int
	privMaxKB, privMedianKB, privTotalKB int64
	unread                               int
}

// measureMemory reads a's process status and its backends' memory. The
// backends are found in pg_stat_activity by database name; compare's own
// connections are to other databases by then.
func measureMemory(ctx context.Context, pg *sql.DB, a app) (memory, error) {
	var m memory
	st, err := procFields(fmt.Sprintf("/proc/%d/status", a.proc.PID()), "VmRSS", "VmHWM")
	if err != nil {
		return m, err
	}
	m.rssKB, m.hwmKB = st["VmRSS"], st["VmHWM"]

	pids, err := backends(ctx, pg, a.db)
	if err != nil {
		return m, err
	}
	var priv []int64
	for _, pid := range pids {
		m.backends++
		f, err := procFields(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Private_Clean", "Private_Dirty")
		if err != nil {
			m.unread++
			continue
		}
		priv = append(priv, f["Private_Clean"]+f["Private_Dirty"])
	}
	if len(priv) > 0 {
		slices.Sort(priv)
		m.privMaxKB, m.privMedianKB = priv[len(priv)-1], priv[len(priv)/2]
		for _, p := range priv {
			m.privTotalKB += p
		}
	}
	return m, nil
}

// backends returns the process ids of the client backends connected to
// database db.
func backends(ctx context.Context, pg *sql.DB, db string) ([]int, error) {
	rows, err := pg.QueryContext(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'`, db)
	if err != nil {
		return nil, fmt.Errorf("backends of %s: %w", db, err)
	}
	defer rows.Close()
	var pids []int
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return nil, err
		}
		pids = append(pids, pid)
	}
	return pids, rows.Err()
}

// dbCPU is the CPU time so far of every client backend now connected to
// database db, by process id. Across a run, the pool's backends are the
// same processes (bench/load lets the pools keep their connections), so
// the difference of two readings is the database's work for the run.
func dbCPU(ctx context.Context, pg *sql.DB, db string) map[int]time.Duration {
	pids, err := backends(ctx, pg, db)
	if err != nil {
		return nil
	}
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		out[pid] = cpuOf(pid)
	}
	return out
}

// cpuSince is the CPU the backends in now spent since before: a backend
// that was not there before counts from its start; one that has gone
// since is lost (its last reading is not known), which a pool that keeps
// its connections does not do.
func cpuSince(before, now map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range now {
		d += t - before[pid]
	}
	return d
}

// procFields reads "Name:   123 kB" lines of a /proc file; every name
// asked for must be there.
func procFields(path string, names ...string) (map[string]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !slices.Contains(names, k) {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, k, err)
		}
		out[k] = n
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("%s: no %s", path, n)
		}
	}
	return out, nil
}
