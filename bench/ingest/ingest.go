// Package ingest measures the ingestor end to end, as `sentinel bench
// ingest`: this process publishes numbered telemetry from simulated
// devices (QoS 1) into a `sentinel broker` child process, a `sentinel
// ingest` child process commits it into an embedded warehouse and
// acknowledges after commit. Run reports committed msg/s, commit lag and
// CPU per process for a ladder of offered rates, a sustained run, a
// backlog drain and a naive one-row-per-message ingestor, then checks that
// every message published is stored, once.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/sentinel-iot/sentinel/bench/proc"
	"github.com/sentinel-iot/sentinel/bench/promtext"
	"github.com/sentinel-iot/sentinel/quantile"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// Config configures Run. DefaultConfig holds the defaults the flags of
// `sentinel bench ingest` show.
type Config struct {
	// Exe is the sentinel binary the children run. Required.
	Exe string
	// Dir holds the warehouses. Required.
	Dir string
	// Rates are the offered msg/s of the ladder, one Step each, to find
	// the knee. Empty: no ladder.
	Rates []int
	Step  time.Duration
	// SustainRate is the offered msg/s of the sustained run, for Sustain.
	// 0: no sustained run.
	SustainRate int
	Sustain     time.Duration
	// Backlog is how many messages are queued while no ingestor runs, then
	// drained. 0: none.
	Backlog int
	// Naive is the backlog the naive one-row-per-message ingestor drains.
	// 0: none.
	Naive int
	// Devices is the simulated devices the messages come from.
	Devices int
	// Publisher is the load generator: "raw" (broker/rawclient, batched, a
	// window in flight per connection) or "paho" (autopaho, 64 goroutines
	// per connection each awaiting its PUBACK).
	Publisher string
	// Publishers is the publisher's connections. 0: 4 raw, 8 paho.
	Publishers int
	// PubWindow is the raw publisher's messages in flight per connection,
	// at most the broker's receive maximum.
	PubWindow int
	// Connections, BatchRows and BatchDelay configure the ingestor.
	Connections int
	BatchRows   int
	BatchDelay  time.Duration
	// Profile, when set, receives a 20 s CPU profile of the ingestor taken
	// during the sustained run.
	Profile string
	// BrokerProfile, when set, receives a CPU profile of the broker over
	// every phase up to the loss check.
	BrokerProfile string
	// BrokerArgs are extra flags for the `sentinel broker` child.
	BrokerArgs []string
}

// DefaultConfig is the configuration BENCHMARKS.md's ingest tables ran
// with (Exe and Dir aside).
func DefaultConfig() Config {
	return Config{
		Rates: []int{5000, 10000, 15000, 20000, 25000, 30000}, Step: 15 * time.Second,
		SustainRate: 20000, Sustain: 60 * time.Second, Backlog: 60000, Naive: 3000, Devices: 10000,
		Publisher: "raw", PubWindow: 1024, Connections: 8,
		BatchRows: warehouse.DefaultMaxRows, BatchDelay: warehouse.DefaultMaxDelay,
	}
}

// ErrPublisher means Config.Publisher is neither raw nor paho.
var ErrPublisher = errors.New("bench ingest: publisher is neither raw nor paho")

// The ingestor's series the bench reads.
const (
	insertedSeries = `sentinel_ingest_inserted_rows_total{table="telemetry"}`
	lagHistogram   = "sentinel_ingest_commit_lag_seconds"
	lagLabels      = `table="telemetry"`
)

// bench is one Run: the publisher side and its children.
type bench struct {
	cfg Config
	out io.Writer
	s   *stream
	pub publisher
}

// Run runs the benchmark and writes its table to out.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	if cfg.Publisher != "raw" && cfg.Publisher != "paho" {
		return fmt.Errorf("%w: %q", ErrPublisher, cfg.Publisher)
	}
	if cfg.Publishers <= 0 {
		cfg.Publishers = map[string]int{"raw": 4, "paho": 8}[cfg.Publisher]
	}
	cfg.PubWindow = max(1, cfg.PubWindow)
	b := &bench{cfg: cfg, out: out, s: &stream{devices: cfg.Devices}}
	fmt.Fprintf(out, "bench ingest: %s/%s, %d CPUs, publisher: %s, %d connections; ingestor: %d connections, batch %d rows / %s, embedded engine\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cfg.Publisher, cfg.Publishers, cfg.Connections, cfg.BatchRows, cfg.BatchDelay)

	extra := cfg.BrokerArgs
	if cfg.BrokerProfile != "" {
		extra = append(extra, "--cpuprofile", cfg.BrokerProfile)
	}
	brk, err := b.startBroker(ctx, extra)
	if err != nil {
		return err
	}
	defer brk.Stop()
	ingArgs := []string{"--dsn", "chdb://" + filepath.Join(cfg.Dir, "warehouse"), "--broker", brokerURL(brk), "--client-id", "bench-ingest",
		"--connections", strconv.Itoa(cfg.Connections), "--batch-rows", strconv.Itoa(cfg.BatchRows), "--batch-delay", cfg.BatchDelay.String()}
	ing, err := b.startIngest(ctx, ingArgs)
	if err != nil {
		return err
	}
	defer func() { ing.Stop() }()
	if err := b.connect(ctx, brk); err != nil {
		return err
	}
	defer b.disconnect()

	fmt.Fprintf(out, "\n%-10s %10s %10s %9s %9s   %s\n", "phase", "offered/s", "committed/s", "lag p50", "lag p99", "CPU-s per 100k msgs: publisher broker ingestor")
	for _, r := range cfg.Rates {
		if err := b.phase(ctx, fmt.Sprintf("live %dk", r/1000), r, cfg.Step, brk, ing); err != nil {
			return err
		}
	}
	if cfg.SustainRate > 0 {
		if err := b.sustained(ctx, brk, ing); err != nil {
			return err
		}
	}
	if cfg.Backlog > 0 {
		if ing, err = b.backlog(ctx, brk, ing, ingArgs); err != nil {
			return err
		}
	}
	ing.Stop()
	if err := b.lossCheck(ctx); err != nil {
		return err
	}
	if cfg.Naive > 0 {
		b.disconnect()
		brk.Stop()
		return b.naive(ctx)
	}
	return nil
}

// ingestChild is a `sentinel ingest` child and its metrics endpoint.
type ingestChild struct {
	*proc.Process
	metrics string // /metrics URL
	debug   string // CPU profile URL
}

func brokerURL(p *proc.Process) string { return "tcp://" + p.Addr("mqtt") }

func (b *bench) startBroker(ctx context.Context, extra []string) (*proc.Process, error) {
	args := append([]string{"broker", "--listen", "127.0.0.1:0", "--log-level", "warn", "--allow-anonymous"}, extra...)
	return proc.StartSentinel(ctx, "broker", b.cfg.Exe, args...)
}

// startIngest starts `sentinel ingest args...` and returns once it is
// subscribed and serving its metrics (its address file says both).
func (b *bench) startIngest(ctx context.Context, args []string) (*ingestChild, error) {
	p, err := proc.StartSentinel(ctx, "ingest", b.cfg.Exe, append([]string{"ingest", "--metrics-listen", "127.0.0.1:0", "--log-level", "warn"}, args...)...)
	if err != nil {
		return nil, err
	}
	base := "http://" + p.Addr("metrics")
	return &ingestChild{Process: p, metrics: base + "/metrics", debug: base + "/debug/pprof/profile"}, nil
}

func (b *bench) connect(ctx context.Context, brk *proc.Process) error {
	var err error
	if b.cfg.Publisher == "raw" {
		b.pub, err = dialRaw(ctx, brk.Addr("mqtt"), b.cfg.Publishers, b.cfg.PubWindow, b.s)
	} else {
		b.pub, err = dialPaho(ctx, brokerURL(brk), b.cfg.Publishers, b.s)
	}
	return err
}

func (b *bench) disconnect() {
	if b.pub != nil {
		b.pub.close()
		b.pub = nil
	}
}

// phase offers rate msg/s for d and reports what was committed, the commit
// lag over the phase and each process's CPU.
func (b *bench) phase(ctx context.Context, name string, rate int, d time.Duration, brk *proc.Process, ing *ingestChild) error {
	n := int(float64(rate) * d.Seconds())
	m0, err := promtext.Scrape(ctx, ing.metrics)
	if err != nil {
		return err
	}
	pc0, bc0, ic0 := proc.CPU(os.Getpid()), proc.CPU(brk.Pid()), proc.CPU(ing.Pid())
	start := time.Now()
	if err := b.pub.publish(ctx, n, rate); err != nil {
		return err
	}
	pubTook := time.Since(start)
	// Wait until everything offered is committed (bounded), so the lag
	// histogram holds every message of the phase.
	want := m0.Value(insertedSeries) + float64(n)
	var m1 promtext.Set
	for {
		if m1, err = promtext.Scrape(ctx, ing.metrics); err != nil {
			return err
		}
		if m1.Value(insertedSeries) >= want || time.Since(start) > d+2*time.Minute {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a metric, with the bound above
	}
	took := time.Since(start)
	committed := (m1.Value(insertedSeries) - m0.Value(insertedSeries)) / took.Seconds()
	lag := quantile.Delta(m0.Buckets(lagHistogram, lagLabels), m1.Buckets(lagHistogram, lagLabels))
	fmt.Fprintf(b.out, "%-10s %10d %10.0f %9s %9s   %.2f %.2f %.2f  (published in %s)\n", name, rate, committed,
		fmtSec(quantile.Histogram(lag, 0.5)), fmtSec(quantile.Histogram(lag, 0.99)),
		per100k(proc.CPU(os.Getpid())-pc0, n), per100k(proc.CPU(brk.Pid())-bc0, n), per100k(proc.CPU(ing.Pid())-ic0, n),
		pubTook.Round(time.Millisecond))
	return nil
}

// sustained is the sustained phase, with the ingestor's CPU profile taken
// meanwhile when asked.
func (b *bench) sustained(ctx context.Context, brk *proc.Process, ing *ingestChild) error {
	var prof chan error
	if b.cfg.Profile != "" {
		prof = make(chan error, 1)
		go func() { prof <- fetchProfile(ctx, ing.debug, b.cfg.Profile, 20*time.Second) }()
	}
	err := b.phase(ctx, "sustained", b.cfg.SustainRate, b.cfg.Sustain, brk, ing)
	if prof != nil {
		if perr := <-prof; perr != nil {
			fmt.Fprintln(b.out, "profile:", perr)
		}
	}
	return err
}

// backlog stops the ingestor cleanly (its sessions persist and the broker
// queues for them), publishes the backlog, then starts it again and times
// the drain. It returns the new ingestor.
func (b *bench) backlog(ctx context.Context, brk *proc.Process, ing *ingestChild, ingArgs []string) (*ingestChild, error) {
	n := b.cfg.Backlog
	ing.Stop()
	pc0, bc0 := proc.CPU(os.Getpid()), proc.CPU(brk.Pid())
	start := time.Now()
	if err := b.pub.publish(ctx, n, 0); err != nil {
		return ing, err
	}
	queued := time.Since(start)
	fmt.Fprintf(b.out, "%-10s %10s %10.0f %9s %9s   %.2f %.2f %9s  (%d messages queued in the broker for the stopped ingestor's sessions in %s)\n", "backlog", "-",
		float64(n)/queued.Seconds(), "-", "-", per100k(proc.CPU(os.Getpid())-pc0, n), per100k(proc.CPU(brk.Pid())-bc0, n), "-",
		n, queued.Round(time.Millisecond))
	bc0 = proc.CPU(brk.Pid())
	launched := time.Now()
	next, err := b.startIngest(ctx, ingArgs)
	if err != nil {
		return ing, err
	}
	ing = next
	d, err := drain(ctx, ing, n, launched)
	if err != nil {
		return ing, err
	}
	fmt.Fprintf(b.out, "%-10s %10s %10.0f %9s %9s   %9s %.2f %.2f  (%s from launching the ingestor; %.0f msg/s from its first commit to its last)\n", "drain", "-",
		float64(n)/d.total.Seconds(), "-", "-",
		"-", per100k(proc.CPU(brk.Pid())-bc0, n), per100k(proc.CPU(ing.Pid()), n),
		d.total.Round(time.Millisecond), d.rate)
	return ing, nil
}

// lossCheck: every message published is stored, counted once.
func (b *bench) lossCheck(ctx context.Context) error {
	db, err := warehouse.Open(ctx, "chdb://"+filepath.Join(b.cfg.Dir, "warehouse"), warehouse.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	distinct, err := db.QueryInt(ctx, "SELECT uniqExact(device_id, seq) FROM telemetry")
	if err != nil {
		return err
	}
	final, err := db.QueryInt(ctx, "SELECT count() FROM telemetry FINAL")
	if err != nil {
		return err
	}
	published := b.s.published.Load()
	fmt.Fprintf(b.out, "\nloss check: %d published and acknowledged by the broker, %d distinct stored, %d counted with FINAL: ", published, distinct, final)
	if distinct == published && final == distinct {
		fmt.Fprintln(b.out, "nothing lost, nothing counted twice")
	} else {
		fmt.Fprintln(b.out, "MISMATCH")
	}
	return nil
}

// naive drains a backlog with the naive ingestor: one INSERT per message,
// ack after each, on a broker and warehouse of its own, small enough for
// its session store.
func (b *bench) naive(ctx context.Context) error {
	n := b.cfg.Naive
	brk, err := b.startBroker(ctx, b.cfg.BrokerArgs)
	if err != nil {
		return err
	}
	defer brk.Stop()
	naiveArgs := []string{"--dsn", "chdb://" + filepath.Join(b.cfg.Dir, "naive"), "--broker", brokerURL(brk), "--client-id", "naive-ingest",
		"--batch-rows", "1", "--receive-maximum", "1024"}
	naive, err := b.startIngest(ctx, naiveArgs) // once, to make its sessions
	if err != nil {
		return err
	}
	naive.Stop()
	if err := b.connect(ctx, brk); err != nil {
		return err
	}
	defer b.disconnect()
	if err := b.pub.publish(ctx, n, 0); err != nil {
		return err
	}
	launched := time.Now()
	if naive, err = b.startIngest(ctx, naiveArgs); err != nil {
		return err
	}
	d, err := drain(ctx, naive, n, launched)
	naiveCPU := proc.CPU(naive.Pid())
	naive.Stop()
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "%-10s %10s %10.0f %9s %9s   %9s %.2f  (%d messages; %.0f msg/s from its first commit to its last)\n", "naive", "-",
		float64(n)/d.total.Seconds(), "-", "-", "-", per100k(naiveCPU, n), n, d.rate)
	return nil
}

// drained is how a backlog drained: the time from launching the ingestor
// to its last commit, and the rate between its first and last commits.
type drained struct {
	total time.Duration
	rate  float64
}

// drain polls ing's metrics until n telemetry rows are committed, for at
// most 5 minutes.
func drain(ctx context.Context, ing *ingestChild, n int, launched time.Time) (drained, error) {
	var first time.Time
	var firstN float64
	for {
		m, err := promtext.Scrape(ctx, ing.metrics)
		if err != nil {
			return drained{}, err
		}
		v := m.Value(insertedSeries)
		if v > 0 && first.IsZero() {
			first, firstN = time.Now(), v
		}
		if v >= float64(n) {
			d := drained{total: time.Since(launched), rate: math.NaN()}
			if el := time.Since(first).Seconds(); el > 0 {
				d.rate = (v - firstN) / el
			}
			return d, nil
		}
		if time.Since(launched) > 5*time.Minute {
			return drained{}, fmt.Errorf("bench ingest: backlog not drained in 5 min: %v of %d", v, n)
		}
		time.Sleep(10 * time.Millisecond) // polling a metric, with the bound above
	}
}

// fetchProfile saves a CPU profile of d from a pprof endpoint.
func fetchProfile(ctx context.Context, u, file string, d time.Duration) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s?seconds=%d", u, int(d.Seconds())), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", u, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func per100k(cpu time.Duration, n int) float64 { return cpu.Seconds() * 100000 / float64(n) }

func fmtSec(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
}
