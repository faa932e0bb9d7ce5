package proc

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of /proc/<pid>/stat's CPU times: clock ticks of
// sysconf(_SC_CLK_TCK), which Linux fixes at USER_HZ = 100 for every
// architecture it runs on (proc(5), "utime").
const userHZ = 100

// Usage is a process's CPU time and resident memory, from /proc.
type Usage struct {
	CPU time.Duration // user + system
	RSS int64         // bytes
}

// ReadUsage reads pid's CPU time (utime and stime, fields 14 and 15 of
// /proc/pid/stat) and resident set size (VmRSS of /proc/pid/status).
func ReadUsage(pid int) (Usage, error) {
	var u Usage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, fmt.Errorf("proc: read CPU time of %d: %w", pid, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count fields from after its closing parenthesis (field 3, state).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return u, fmt.Errorf("proc: /proc/%d/stat: %d fields after the name, want at least 13", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return u, fmt.Errorf("proc: /proc/%d/stat: utime %q, stime %q are not numbers", pid, f[11], f[12])
	}
	u.CPU = time.Duration(ut+st) * time.Second / userHZ
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, fmt.Errorf("proc: read memory of %d: %w", pid, err)
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			u.RSS = kb << 10
		}
	}
	return u, sc.Err()
}

// CPU is pid's CPU time, 0 when it cannot be read (a process that has
// exited): for reports, where a missing figure must not end the run.
func CPU(pid int) time.Duration {
	u, _ := ReadUsage(pid)
	return u.CPU
}

// RaiseFileLimit raises this process's soft limit on open files to its hard
// limit and returns the new soft limit. 10,000 device connections need as
// many descriptors on each side; child processes started afterwards
// inherit the raised limit.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("proc: read the open-files limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("proc: raise the open-files limit to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}

// CPUModel is the first "model name" of /proc/cpuinfo, for a report's
// header.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
