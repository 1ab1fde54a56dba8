package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"tenantry/bench/internal/benchproc"
)

// requireFree fails when something already listens on one of addrs:
// WaitReady and the load would then measure that process instead of the
// one compare starts (another sitting's, say).
func requireFree(addrs ...string) error {
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("%s is taken (another sitting running?): %w", a, err)
		}
		_ = ln.Close()
	}
	return nil
}

// cpu is the process's user+system CPU time so far, from /proc.
func cpu(p *benchproc.Proc) time.Duration { return cpuOf(p.PID()) }

// cpuOf is process pid's user+system CPU time so far, from /proc; 0 when
// the process is gone or unreadable.
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime is field 14, stime 15
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}
