package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// 100 on Linux for every architecture the bench runs on).
const clockTick = 10 * time.Millisecond

// groupCPU is the CPU time (user + system) used so far by the live
// processes of process group pgid: the proxy, and NGINX's worker with its
// master. CPU time per request is far less disturbed by other load on the
// machine than requests per second are.
func groupCPU(pgid int) (time.Duration, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("read cpu time of group %d: %w", pgid, err)
	}
	var total time.Duration
	found := false
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		pg, cpu, err := parseStat(string(b))
		if err != nil || pg != pgid {
			continue
		}
		total += cpu
		found = true
	}
	if !found {
		return 0, fmt.Errorf("read cpu time of group %d: no process", pgid)
	}
	return total, nil
}

// parseStat reads the process group and utime + stime of a /proc/<pid>/stat
// line; the command name in parentheses may hold spaces and parentheses.
func parseStat(s string) (pgrp int, cpu time.Duration, err error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse stat %q: no command", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("parse stat %q: %d fields", s, len(f))
	}
	pgrp, err1 := strconv.Atoi(f[2])
	ut, err2 := strconv.ParseInt(f[11], 10, 64)
	st, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, fmt.Errorf("parse stat %q: bad number", s)
	}
	return pgrp, time.Duration(ut+st) * clockTick, nil
}

// pressure reads the "some" total of /proc/pressure/cpu: the time (µs) in
// which at least one runnable task waited for a CPU. ok is false where the
// kernel has no PSI.
func pressure() (total time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return 0, false
	}
	return parsePressure(string(b))
}

// parsePressure reads the "some" line's total= of a PSI file.
func parsePressure(s string) (total time.Duration, ok bool) {
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "some" {
			continue
		}
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, "total="); ok {
				us, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return 0, false
				}
				return time.Duration(us) * time.Microsecond, true
			}
		}
	}
	return 0, false
}

// stallMeter measures the share of wall time in which some task waited for
// a CPU (PSI "some"), over one measured run: how busy the machine was.
type stallMeter struct {
	start time.Time
	total time.Duration
	ok    bool
}

func startStall() stallMeter {
	t, ok := pressure()
	return stallMeter{start: time.Now(), total: t, ok: ok}
}

// Share returns the stalled share of the time since startStall, or -1.
func (m stallMeter) Share() float64 {
	t, ok := pressure()
	wall := time.Since(m.start)
	if !m.ok || !ok || wall <= 0 {
		return -1
	}
	return min(1, float64(t-m.total)/float64(wall))
}
