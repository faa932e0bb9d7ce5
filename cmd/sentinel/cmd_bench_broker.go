package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sentinel-iot/sentinel/broker/bench"
)

// cmdBenchBroker is `sentinel bench broker`: QoS 1 fan-in from device
// connections into one persistent subscriber, against Sentinel's broker
// (durable acks, acks before the fsync, no store) and Mosquitto (with and
// without persistence), each in a child process, in one run so the ratios
// compare like with like on a shared machine. The load logic is in
// broker/bench; this is wiring and the report.
func cmdBenchBroker(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("bench broker", "[flags]")
	devices := fs.String("devices", "1000,10000", "comma-separated fleet sizes: device connections per run")
	messages := fs.Int("messages", 40000, "messages per run, spread over its devices (at least one each)")
	window := fs.Int("window", 1, "messages a device has awaiting PUBACK (1: a device sends its next reading once the last is acknowledged)")
	pipeConns := fs.Int("pipeline-conns", 4, "the pipelined comparison: service-like connections (0: skip it)")
	pipeWindow := fs.Int("pipeline-window", 256, "the pipelined comparison: messages each connection has awaiting PUBACK")
	targets := fs.String("targets", "durable,immediate,memory,mosquitto-persist,mosquitto", "brokers to run: durable, immediate, blocking, memory (Sentinel with --acks durable|immediate|blocking, or no store), mosquitto, mosquitto-persist")
	brokerArgs := fs.String("broker-args", "--allow-anonymous", "extra flags for every `sentinel broker` child, space-separated")
	timeout := fs.Duration("timeout", 2*time.Minute, "bound on each run's publishing and delivery")
	dials := fs.Int("dial-parallel", 64, "connections opened at once")
	repeat := fs.Int("repeat", 3, "runs per broker and fleet size, interleaved across the brokers; the report shows each broker's median run (by msg/s) and the range")
	dir := fs.String("dir", "", "directory for the brokers' stores (default: a temporary directory, removed after)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var sizes []int
	for _, s := range strings.Split(*devices, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bench broker: --devices %q: want positive numbers", *devices)
		}
		sizes = append(sizes, n)
	}
	limit, err := bench.RaiseFileLimit()
	if err != nil {
		return err
	}
	if need := uint64(slices.Max(sizes) + 200); limit < need { // each side of the loopback holds one descriptor per connection
		return fmt.Errorf("bench broker: open-files limit %d, need about %d for %d connections (raise the hard limit: ulimit -Hn)", limit, need, slices.Max(sizes))
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "sentinel-bench-broker-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "sentinel bench broker: %s, %d CPUs (%s), open-files soft limit raised in-process to %d\n",
		runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), cpuModel(), limit)
	fmt.Fprintf(out, "QoS 1 fan-in on loopback: devices publish %d-message windows into one persistent-session subscriber on %s\n\n", *window, bench.SubscriberFilter)

	start := func(target string, run int) (*bench.Process, error) {
		addr, err := bench.FreeAddr()
		if err != nil {
			return nil, err
		}
		store := filepath.Join(*dir, fmt.Sprintf("%s-%d", target, run))
		if err := os.MkdirAll(store, 0o755); err != nil {
			return nil, err
		}
		sentinel := func(extra ...string) (*bench.Process, error) {
			a := append([]string{"broker", "--listen", addr, "--log-level", "error"}, extra...)
			return bench.Start(ctx, "sentinel "+target, addr, exe, append(a, strings.Fields(*brokerArgs)...)...)
		}
		switch target {
		case "durable", "immediate", "blocking":
			return sentinel("--store-dir", store, "--acks", target)
		case "memory":
			return sentinel()
		case "mosquitto":
			return bench.StartMosquitto(ctx, store, addr, false)
		case "mosquitto-persist":
			return bench.StartMosquitto(ctx, store, addr, true)
		}
		return nil, fmt.Errorf("bench broker: unknown target %q", target)
	}

	names := strings.Split(*targets, ",")
	type row struct {
		target     string
		res        bench.Result
		cpu        time.Duration
		rssPer     float64 // bytes per connection
		err        error
		low, high  float64 // msg/s range over the repeats
		runs, errs int
	}
	run := 0
	measure := func(target string, conns, perConn, win int) row {
		run++
		r := row{target: target}
		p, err := start(target, run)
		if err != nil {
			r.err = err
			return r
		}
		defer p.Stop()
		idle, err := bench.ProcUsage(p.Pid())
		if err != nil {
			r.err = err
			return r
		}
		fleet, err := bench.Connect(ctx, p.Addr, conns, *dials)
		if err != nil {
			r.err = err
			return r
		}
		defer fleet.Close()
		connected, err := bench.ProcUsage(p.Pid())
		if err != nil {
			r.err = err
			return r
		}
		r.rssPer = float64(connected.RSS-idle.RSS) / float64(conns)
		r.res, r.err = fleet.Publish(ctx, perConn, win, *timeout)
		done, err := bench.ProcUsage(p.Pid())
		if err != nil && r.err == nil {
			r.err = err
		}
		r.cpu = done.CPU - connected.CPU
		return r
	}
	// repeated measures every target reps times, round-robin, and keeps
	// each target's median run by msg/s (a failed run counts as 0).
	repeated := func(targets []string, conns, perConn, win int) []row {
		all := map[string][]row{}
		for range max(*repeat, 1) {
			for _, t := range targets {
				if ctx.Err() != nil {
					break
				}
				all[t] = append(all[t], measure(t, conns, perConn, win))
			}
		}
		var rows []row
		for _, t := range targets {
			rs := all[t]
			if len(rs) == 0 {
				continue
			}
			slices.SortFunc(rs, func(a, b row) int {
				return cmp.Compare(a.res.MsgPerSec*float64(boolInt(a.err == nil)), b.res.MsgPerSec*float64(boolInt(b.err == nil)))
			})
			m := rs[len(rs)/2]
			m.runs, m.low = len(rs), -1
			for _, r := range rs {
				if r.err != nil {
					m.errs++
					if m.err == nil {
						m.err = r.err
					}
					continue
				}
				if m.low < 0 || r.res.MsgPerSec < m.low {
					m.low = r.res.MsgPerSec
				}
				m.high = max(m.high, r.res.MsgPerSec)
			}
			rows = append(rows, m)
		}
		return rows
	}
	report := func(title string, rows []row) {
		fmt.Fprintf(out, "%s\n%-18s %9s %15s %7s %8s %8s %10s %11s %9s  %s\n", title, "broker", "msg/s", "range", "ratio", "ack p50", "ack p99", "delivered", "CPU-s/100k", "RSS/conn", "")
		base := 0.0
		for _, r := range rows {
			if r.target == "mosquitto" {
				base = r.res.MsgPerSec
			}
		}
		for _, r := range rows {
			ratio := "-"
			if base > 0 && r.res.MsgPerSec > 0 {
				ratio = fmt.Sprintf("%.2fx", r.res.MsgPerSec/base)
			}
			note := ""
			if r.err != nil {
				note = r.err.Error()
			}
			if r.errs > 0 {
				note = fmt.Sprintf("%d of %d runs incomplete; %s", r.errs, r.runs, note)
			}
			cpu := "-"
			if r.res.Acked > 0 {
				cpu = fmt.Sprintf("%.2f", r.cpu.Seconds()*100000/float64(r.res.Acked))
			}
			fmt.Fprintf(out, "%-18s %9.0f %15s %7s %8s %8s %10d %11s %8.1fK  %s\n", r.target, r.res.MsgPerSec, fmt.Sprintf("%.0f-%.0f", r.low, r.high), ratio,
				r.res.AckP50.Round(10*time.Microsecond), r.res.AckP99.Round(10*time.Microsecond), r.res.Delivered, cpu, r.rssPer/1024, note)
		}
		fmt.Fprintln(out)
	}

	for _, n := range sizes {
		per := max(*messages/n, 1)
		if err := ctx.Err(); err != nil {
			return err
		}
		report(fmt.Sprintf("%d devices x %d messages, median of %d runs (ratio: msg/s over Mosquitto without persistence)", n, per, *repeat),
			repeated(names, n, per, *window))
	}
	if *pipeConns > 0 {
		per := max(*messages / *pipeConns, 1)
		report(fmt.Sprintf("pipelined: %d connections x %d messages, %d awaiting PUBACK each, median of %d runs (durable vs blocking: the AckDeferrer patch)", *pipeConns, per, *pipeWindow, *repeat),
			repeated([]string{"durable", "blocking", "immediate", "mosquitto"}, *pipeConns, per, *pipeWindow))
	}
	fmt.Fprintln(out, "CPU-s/100k: the broker process's user+system CPU seconds per 100,000 acknowledged messages (/proc/<pid>/stat), publishing and delivery.")
	fmt.Fprintln(out, "RSS/conn: the broker's resident memory with every device connected minus before any (/proc/<pid>/status VmRSS), over the devices.")
	return ctx.Err()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
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
