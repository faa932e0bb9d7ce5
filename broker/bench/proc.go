package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNotListening means a broker process did not accept connections in
// time.
var ErrNotListening = errors.New("bench: broker not listening")

// RaiseFileLimit raises this process's soft limit on open files to its hard
// limit and returns the new soft limit. 10,000 device connections need as
// many descriptors on each side; child processes started afterwards
// inherit the raised limit.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("bench: read the open-files limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("bench: raise the open-files limit to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}

// Usage is a process's CPU time and resident memory, from /proc.
type Usage struct {
	CPU time.Duration // user + system
	RSS int64         // bytes
}

// ProcUsage reads pid's CPU time (/proc/pid/stat) and resident set size
// (VmRSS in /proc/pid/status).
func ProcUsage(pid int) (Usage, error) {
	var u Usage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, fmt.Errorf("bench: read CPU time of %d: %w", pid, err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return u, fmt.Errorf("bench: /proc/%d/stat: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	u.CPU = time.Duration(ut+st) * time.Second / 100 // USER_HZ
	st2, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, fmt.Errorf("bench: read memory of %d: %w", pid, err)
	}
	defer st2.Close()
	sc := bufio.NewScanner(st2)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			u.RSS = kb << 10
		}
	}
	return u, sc.Err()
}

// Process is a broker in a child process. Its Wait goroutine is owned by
// the Process and ends with it; Stop ends both.
type Process struct {
	// Name says which broker this is, for reports.
	Name string
	// Addr is where it listens.
	Addr   string
	cmd    *exec.Cmd
	exited chan error
}

// Start runs name with args as a broker listening on addr, and returns once
// it accepts connections.
func Start(ctx context.Context, label, addr, name string, args ...string) (*Process, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", label, err)
	}
	p := &Process{Name: label, Addr: addr, cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return p, nil
		}
		select {
		case err := <-p.exited:
			return nil, fmt.Errorf("bench: %s exited before listening on %s: %v: %w", label, addr, err, ErrNotListening)
		case <-ctx.Done():
			p.Stop()
			return nil, fmt.Errorf("bench: %s on %s: %w: %w", label, addr, ctx.Err(), ErrNotListening)
		case <-time.After(20 * time.Millisecond): // poll the port
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("bench: %s on %s after 30 s: %w", label, addr, ErrNotListening)
		}
	}
}

// Pid is the process ID, for ProcUsage.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop interrupts the process and waits for it (killing it after 30 s).
func (p *Process) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// FreeAddr returns a loopback address nothing listens on.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// userLine keeps Mosquitto, started as root, from switching to the
// mosquitto user, who cannot write its persistence file into our
// directory.
func userLine() string {
	u, err := user.Current()
	if err != nil || u.Uid != "0" {
		return ""
	}
	return "user root\n"
}

// MosquittoPath is where Debian's mosquitto package installs the broker.
const MosquittoPath = "/usr/sbin/mosquitto"

// StartMosquitto runs Mosquitto on addr with a configuration written to
// dir: anonymous access, no connection limit, and the same flow control
// Sentinel's broker has (1024 messages in flight per client, queues that
// do not drop at this load). With persist, it keeps its in-memory state
// in dir/mosquitto.db; Mosquitto saves that snapshot on an interval and at
// exit (here every 60 s), never per message, so its acknowledgements are
// not durable in the sense Sentinel's durable acks are.
func StartMosquitto(ctx context.Context, dir, addr string, persist bool) (*Process, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("bench: mosquitto address %s: %w", addr, err)
	}
	conf := fmt.Sprintf(`# generated by sentinel bench broker
listener %s %s
allow_anonymous true
max_connections -1
max_inflight_messages 1024
max_queued_messages 1000000
max_keepalive 65535
log_dest stderr
log_type error
log_type warning
persistence %t
persistence_location %s/
autosave_interval 60
%s`, port, host, persist, dir, userLine())
	file := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("bench: write mosquitto config: %w", err)
	}
	label := "mosquitto"
	if persist {
		label = "mosquitto persist"
	}
	return Start(ctx, label, addr, MosquittoPath, "-c", file)
}
