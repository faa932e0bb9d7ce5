package fanin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/sentinel-iot/sentinel/bench/proc"
)

// Config configures Run, `sentinel bench broker`. DefaultConfig holds the
// defaults its flags show.
type Config struct {
	// Exe is the sentinel binary the Sentinel brokers run from. Required.
	Exe string
	// Sizes are the fleet sizes, one table each: device connections per run.
	Sizes []int
	// Messages per run, spread over its devices (at least one each).
	Messages int
	// Window is how many messages a device has awaiting PUBACK (1: it
	// sends its next reading once the last is acknowledged).
	Window int
	// PipelineConns and PipelineWindow shape the pipelined comparison:
	// service-like connections, each with a window of messages awaiting
	// PUBACK. PipelineConns 0 skips it.
	PipelineConns, PipelineWindow int
	// Targets are the brokers to run: durable, immediate, blocking, memory
	// (Sentinel with --acks durable|immediate|blocking, or no store),
	// mosquitto, mosquitto-persist.
	Targets []string
	// BrokerArgs are extra flags for every `sentinel broker` child.
	BrokerArgs []string
	// Timeout bounds each run's publishing and delivery.
	Timeout time.Duration
	// DialParallel is how many connections are opened at once.
	DialParallel int
	// Repeat is the runs per broker and fleet size, interleaved across the
	// brokers; the report shows each broker's median run (by msg/s) and
	// the range.
	Repeat int
	// Dir holds the brokers' stores. Required.
	Dir string
}

// DefaultConfig is the configuration BENCHMARKS.md's broker tables ran
// with (Exe and Dir aside).
func DefaultConfig() Config {
	return Config{
		Sizes: []int{1000, 10000}, Messages: 40000, Window: 1, PipelineConns: 4, PipelineWindow: 256,
		Targets:    []string{"durable", "immediate", "memory", "mosquitto-persist", "mosquitto"},
		BrokerArgs: []string{"--allow-anonymous"}, Timeout: 2 * time.Minute, DialParallel: 64, Repeat: 3,
	}
}

// ErrTarget means a target names no known broker.
var ErrTarget = errors.New("fanin: unknown target")

// Run measures QoS 1 fan-in from device connections into one persistent
// subscriber against each target broker, in a child process each, in one
// run so the ratios compare like with like on a shared machine, and
// writes the tables to out.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	for _, t := range cfg.Targets {
		if !slices.Contains([]string{"durable", "immediate", "blocking", "memory", "mosquitto", "mosquitto-persist"}, t) {
			return fmt.Errorf("%w %q", ErrTarget, t)
		}
	}
	if len(cfg.Sizes) == 0 {
		return errors.New("fanin: no fleet sizes")
	}
	limit, err := proc.RaiseFileLimit()
	if err != nil {
		return err
	}
	if need := uint64(slices.Max(cfg.Sizes) + 200); limit < need { // each side of the loopback holds one descriptor per connection
		return fmt.Errorf("fanin: open-files limit %d, need about %d for %d connections (raise the hard limit: ulimit -Hn)", limit, need, slices.Max(cfg.Sizes))
	}
	fmt.Fprintf(out, "sentinel bench broker: %s, %d CPUs (%s), open-files soft limit raised in-process to %d\n",
		runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), proc.CPUModel(), limit)
	fmt.Fprintf(out, "QoS 1 fan-in on loopback: devices publish %d-message windows into one persistent-session subscriber on %s\n\n", cfg.Window, SubscriberFilter)
	r := &runner{cfg: cfg, ctx: ctx}
	for _, n := range cfg.Sizes {
		if err := ctx.Err(); err != nil {
			return err
		}
		report(out, fmt.Sprintf("%d devices x %d messages, median of %d runs (ratio: msg/s over Mosquitto without persistence)", n, max(cfg.Messages/n, 1), cfg.Repeat),
			r.repeated(cfg.Targets, n, max(cfg.Messages/n, 1), cfg.Window))
	}
	if cfg.PipelineConns > 0 {
		per := max(cfg.Messages/cfg.PipelineConns, 1)
		report(out, fmt.Sprintf("pipelined: %d connections x %d messages, %d awaiting PUBACK each, median of %d runs (durable vs blocking: the AckDeferrer patch)", cfg.PipelineConns, per, cfg.PipelineWindow, cfg.Repeat),
			r.repeated([]string{"durable", "blocking", "immediate", "mosquitto"}, cfg.PipelineConns, per, cfg.PipelineWindow))
	}
	fmt.Fprintln(out, "CPU-s/100k: the broker process's user+system CPU seconds per 100,000 acknowledged messages (/proc/<pid>/stat), publishing and delivery.")
	fmt.Fprintln(out, "RSS/conn: the broker's resident memory with every device connected minus before any (/proc/<pid>/status VmRSS), over the devices.")
	return ctx.Err()
}

// row is one broker's run, or the median of its runs.
type row struct {
	target     string
	res        Result
	cpu        time.Duration
	rssPer     float64 // bytes per connection
	err        error
	low, high  float64 // msg/s range over the repeats
	runs, errs int
}

// runner starts the target brokers, each run in a store of its own.
type runner struct {
	cfg Config
	ctx context.Context
	run int
}

// start starts target for one run.
func (r *runner) start(target string) (*proc.Process, error) {
	r.run++
	store := filepath.Join(r.cfg.Dir, fmt.Sprintf("%s-%d", target, r.run))
	if err := os.MkdirAll(store, 0o755); err != nil {
		return nil, fmt.Errorf("fanin: store directory: %w", err)
	}
	sentinel := func(extra ...string) (*proc.Process, error) {
		args := append(append([]string{"broker", "--listen", "127.0.0.1:0", "--log-level", "error"}, extra...), r.cfg.BrokerArgs...)
		return proc.StartSentinel(r.ctx, "sentinel "+target, r.cfg.Exe, args...)
	}
	switch target {
	case "durable", "immediate", "blocking":
		return sentinel("--store-dir", store, "--acks", target)
	case "memory":
		return sentinel()
	}
	addr, err := proc.FreeAddr()
	if err != nil {
		return nil, err
	}
	return proc.StartMosquitto(r.ctx, store, addr, target == "mosquitto-persist")
}

// measure runs one fan-in against a fresh target broker.
func (r *runner) measure(target string, conns, perConn, win int) row {
	res := row{target: target}
	p, err := r.start(target)
	if err != nil {
		res.err = err
		return res
	}
	defer p.Stop()
	idle, err := p.Usage()
	if err != nil {
		res.err = err
		return res
	}
	fleet, err := Connect(r.ctx, p.Addr("mqtt"), conns, r.cfg.DialParallel)
	if err != nil {
		res.err = err
		return res
	}
	defer fleet.Close()
	connected, err := p.Usage()
	if err != nil {
		res.err = err
		return res
	}
	res.rssPer = float64(connected.RSS-idle.RSS) / float64(conns)
	res.res, res.err = fleet.Publish(r.ctx, perConn, win, r.cfg.Timeout)
	done, err := p.Usage()
	if err != nil && res.err == nil {
		res.err = err
	}
	res.cpu = done.CPU - connected.CPU
	return res
}

// repeated measures every target Repeat times, round-robin, and keeps
// each target's median run.
func (r *runner) repeated(targets []string, conns, perConn, win int) []row {
	all := map[string][]row{}
	for range max(r.cfg.Repeat, 1) {
		for _, t := range targets {
			if r.ctx.Err() != nil {
				break
			}
			all[t] = append(all[t], r.measure(t, conns, perConn, win))
		}
	}
	var rows []row
	for _, t := range targets {
		if rs := all[t]; len(rs) > 0 {
			rows = append(rows, median(rs))
		}
	}
	return rows
}

// median is the median of one target's runs by msg/s (a failed run counts
// as 0), with the range of the successful ones and the first error.
func median(rs []row) row {
	rate := func(r row) float64 {
		if r.err != nil {
			return 0
		}
		return r.res.MsgPerSec
	}
	slices.SortFunc(rs, func(a, b row) int { return cmp.Compare(rate(a), rate(b)) })
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
	return m
}

// report writes one table; ratios are over Mosquitto without persistence.
func report(out io.Writer, title string, rows []row) {
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
