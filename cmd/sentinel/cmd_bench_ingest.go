package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/quantile"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// cmdBenchIngest measures the ingestor end to end: this process publishes
// numbered telemetry from simulated devices (QoS 1) into a `sentinel
// broker` child process, a `sentinel ingest` child process commits it into
// an embedded warehouse and acknowledges after commit. It reports committed
// msg/s, commit lag and CPU per process for a ladder of offered rates, a
// sustained run, a backlog drain, and a naive one-row-per-message ingestor,
// then checks that every message published is stored.
func cmdBenchIngest(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("bench ingest", "[flags]")
	ladder := fs.String("rates", "5000,10000,15000,20000,25000,30000", "offered msg/s, one step each, to find the knee (empty: skip)")
	step := fs.Duration("step", 15*time.Second, "length of each ladder step")
	sustainRate := fs.Int("sustain-rate", 20000, "offered msg/s of the sustained run (0: skip)")
	sustain := fs.Duration("sustain", 60*time.Second, "length of the sustained run")
	backlog := fs.Int("backlog", 60000, "messages queued while no ingestor runs, then drained (0: skip); at most 8192 per connection with the broker's defaults")
	naiveN := fs.Int("naive", 3000, "backlog drained by the naive one-row-per-message ingestor (0: skip)")
	devices := fs.Int("devices", 10000, "simulated devices")
	publisher := fs.String("publisher", "raw", "load generator: raw (MQTT v5 packets written by hand, batched, a window in flight per connection) or paho (autopaho, 64 goroutines per connection each awaiting its PUBACK)")
	pubConns := fs.Int("publishers", 0, "publisher MQTT connections (0: 4 raw, 8 paho)")
	pubWindow := fs.Int("pub-window", 1024, "raw publisher: messages in flight per connection, at most the broker's receive maximum")
	conns := fs.Int("connections", 8, "ingestor MQTT connections")
	rows := fs.Int("batch-rows", 10000, "ingestor batch rows")
	delay := fs.Duration("batch-delay", 250*time.Millisecond, "ingestor batch delay")
	dir := fs.String("dir", "", "data directory (default: a temporary one, removed after)")
	profile := fs.String("profile", "", "write a 20 s CPU profile of the ingestor taken during the sustained run to this file")
	brokerProfile := fs.String("broker-profile", "", "write a CPU profile of the broker over every phase up to the loss check to this file")
	brokerArgs := fs.String("broker-args", "", "extra flags for the `sentinel broker` child, space-separated")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "sentinel-bench-ingest-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	if *publisher != "raw" && *publisher != "paho" {
		return fmt.Errorf("--publisher: %q is neither raw nor paho", *publisher)
	}
	if *pubConns <= 0 {
		*pubConns = map[string]int{"raw": 4, "paho": 8}[*publisher]
	}
	b := &ingestBench{out: out, devices: *devices, pubConns: *pubConns, raw: *publisher == "raw", window: max(1, *pubWindow)}
	fmt.Fprintf(out, "bench ingest: %s/%s, %d CPUs, publisher: %s, %d connections; ingestor: %d connections, batch %d rows / %s, embedded engine\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), *publisher, *pubConns, *conns, *rows, *delay)

	extra := strings.Fields(*brokerArgs)
	if *brokerProfile != "" {
		extra = append(extra, "--cpuprofile", *brokerProfile)
	}
	brk, err := startBroker(ctx, extra...)
	if err != nil {
		return err
	}
	defer brk.stop()
	ingArgs := []string{"--dsn", "chdb://" + filepath.Join(*dir, "warehouse"), "--broker", brk.url, "--client-id", "bench-ingest",
		"--connections", strconv.Itoa(*conns), "--batch-rows", strconv.Itoa(*rows), "--batch-delay", delay.String()}
	ing, err := startIngest(ctx, ingArgs, true)
	if err != nil {
		return err
	}
	if err := b.connect(ctx, brk.url); err != nil {
		return err
	}
	defer b.disconnect()

	fmt.Fprintf(out, "\n%-10s %10s %10s %9s %9s   %s\n", "phase", "offered/s", "committed/s", "lag p50", "lag p99", "CPU-s per 100k msgs: publisher broker ingestor")
	for _, f := range strings.Split(*ladder, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r <= 0 {
			return fmt.Errorf("--rates: %q is not a rate", f)
		}
		if _, err := b.phase(ctx, fmt.Sprintf("live %dk", r/1000), r, *step, brk, ing); err != nil {
			return err
		}
	}
	if *sustainRate > 0 {
		var prof chan error
		if *profile != "" {
			prof = make(chan error, 1)
			go func() { prof <- fetchProfile(ing.debug, *profile, 20*time.Second) }()
		}
		if _, err := b.phase(ctx, "sustained", *sustainRate, *sustain, brk, ing); err != nil {
			return err
		}
		if prof != nil {
			if err := <-prof; err != nil {
				fmt.Fprintln(out, "profile:", err)
			}
		}
	}
	if *backlog > 0 {
		// Stop the ingestor cleanly: its sessions persist and the broker
		// queues for them. Publish the backlog, then start it and time the drain.
		ing.stop()
		pc0 := cpuOf(os.Getpid())
		bc0 := cpuOf(brk.pid())
		start := time.Now()
		if err := b.publish(ctx, *backlog, 0); err != nil {
			return err
		}
		queued := time.Since(start)
		fmt.Fprintf(out, "%-10s %10s %10.0f %9s %9s   %.2f %.2f %9s  (%d messages queued in the broker for the stopped ingestor's sessions in %s)\n", "backlog", "-",
			float64(*backlog)/queued.Seconds(), "-", "-", per100k(cpuOf(os.Getpid())-pc0, *backlog), per100k(cpuOf(brk.pid())-bc0, *backlog), "-",
			*backlog, queued.Round(time.Millisecond))
		bc0 = cpuOf(brk.pid())
		launched := time.Now()
		if ing, err = startIngest(ctx, ingArgs, false); err != nil {
			return err
		}
		d, err := drain(ing, *backlog, launched)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%-10s %10s %10.0f %9s %9s   %9s %.2f %.2f  (%s from launching the ingestor; %.0f msg/s from its first commit to its last)\n", "drain", "-",
			float64(*backlog)/d.total.Seconds(), "-", "-",
			"-", per100k(cpuOf(brk.pid())-bc0, *backlog), per100k(cpuOf(ing.pid()), *backlog),
			d.total.Round(time.Millisecond), d.rate)
	}
	ing.stop()

	// Zero loss: every message published is stored, counted once.
	db, err := warehouse.Open(ctx, "chdb://"+filepath.Join(*dir, "warehouse"), warehouse.Options{})
	if err != nil {
		return err
	}
	distinct, err := db.QueryInt(ctx, "SELECT uniqExact(device_id, seq) FROM telemetry")
	if err == nil {
		var final int64
		final, err = db.QueryInt(ctx, "SELECT count() FROM telemetry FINAL")
		fmt.Fprintf(out, "\nloss check: %d published and acknowledged by the broker, %d distinct stored, %d counted with FINAL: ", b.published.Load(), distinct, final)
		if distinct == b.published.Load() && final == distinct {
			fmt.Fprintln(out, "nothing lost, nothing counted twice")
		} else {
			fmt.Fprintln(out, "MISMATCH")
		}
	}
	db.Close()
	if err != nil {
		return err
	}

	if *naiveN > 0 {
		// The naive ingestor: one INSERT per message, ack after each, on a
		// broker and warehouse of its own, draining a backlog like the one
		// above (small enough for its session store).
		b.disconnect()
		brk.stop()
		if brk, err = startBroker(ctx, strings.Fields(*brokerArgs)...); err != nil {
			return err
		}
		defer brk.stop()
		naiveArgs := []string{"--dsn", "chdb://" + filepath.Join(*dir, "naive"), "--broker", brk.url, "--client-id", "naive-ingest",
			"--batch-rows", "1", "--receive-maximum", "1024"}
		naive, err := startIngest(ctx, naiveArgs, true)
		if err != nil {
			return err
		}
		naive.stop()
		if err := b.connect(ctx, brk.url); err != nil {
			return err
		}
		if err := b.publish(ctx, *naiveN, 0); err != nil {
			return err
		}
		launched := time.Now()
		if naive, err = startIngest(ctx, naiveArgs, false); err != nil {
			return err
		}
		d, err := drain(naive, *naiveN, launched)
		naiveCPU := cpuOf(naive.pid())
		naive.stop()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%-10s %10s %10.0f %9s %9s   %9s %.2f  (%d messages; %.0f msg/s from its first commit to its last)\n", "naive", "-",
			float64(*naiveN)/d.total.Seconds(), "-", "-", "-", per100k(naiveCPU, *naiveN), *naiveN, d.rate)
	}
	return nil
}

// ingestBench is the publisher side of the benchmark.
type ingestBench struct {
	out       io.Writer
	devices   int
	pubConns  int
	raw       bool // the raw publisher, else paho
	window    int  // raw publisher: in flight per connection
	cms       []*autopaho.ConnectionManager
	rp        *rawPublisher
	next      atomic.Int64 // message number
	published atomic.Int64 // acknowledged by the broker
}

func (b *ingestBench) connect(ctx context.Context, broker string) error {
	u, err := url.Parse(broker)
	if err != nil {
		return err
	}
	b.cms = nil
	if b.raw {
		b.rp, err = dialRawPublisher(ctx, broker, b.pubConns, b.window, &b.published)
		return err
	}
	for i := range b.pubConns {
		cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
			ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
			ClientConfig: paho.ClientConfig{ClientID: fmt.Sprintf("bench-pub-%d-%d", os.Getpid(), i)},
		})
		if err != nil {
			return err
		}
		if err := cm.AwaitConnection(ctx); err != nil {
			return err
		}
		b.cms = append(b.cms, cm)
	}
	return nil
}

func (b *ingestBench) disconnect() {
	if b.rp != nil {
		b.rp.close()
		b.rp = nil
	}
	for _, cm := range b.cms {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = cm.Disconnect(dctx)
		cancel()
	}
	b.cms = nil
}

// publish sends n messages at rate msg/s (0: as fast as acknowledged): with
// the raw publisher, a window in flight per connection; with paho, 64 per
// connection, one goroutine awaiting each PUBACK. The message number picks the device and its
// sequence number; the reading's timestamp is its publish time.
func (b *ingestBench) publish(ctx context.Context, n, rate int) error {
	if b.raw {
		return b.rp.publish(ctx, n, rate, b.devices, &b.next)
	}
	const perConn = 64
	tokens := make(chan struct{}, 4096)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if rate > 0 {
		go func() {
			start := time.Now()
			sent := 0
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for sent < n {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				due := min(n, int(time.Since(start).Seconds()*float64(rate)))
				for ; sent < due; sent++ {
					select {
					case tokens <- struct{}{}:
					case <-stop:
						return
					}
				}
			}
		}()
	}
	var left atomic.Int64
	left.Store(int64(n))
	var firstErr atomic.Pointer[error]
	for _, cm := range b.cms {
		for range perConn {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for left.Add(-1) >= 0 {
					if rate > 0 {
						select {
						case <-tokens:
						case <-ctx.Done():
							return
						}
					}
					id := b.next.Add(1) - 1
					m := benchMessage(id, b.devices, time.Now())
					p, err := proto.Encode(m)
					if err == nil {
						_, err = cm.Publish(ctx, &paho.Publish{Topic: proto.TelemetryTopic(m.Region, m.DeviceID), QoS: 1, Payload: p})
					}
					if err != nil {
						firstErr.CompareAndSwap(nil, &err)
						return
					}
					b.published.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	close(stop)
	if p := firstErr.Load(); p != nil {
		return fmt.Errorf("publish: %w", *p)
	}
	return nil
}

// phase offers rate msg/s for d and reports what was committed, the commit
// lag over the phase and each process's CPU.
func (b *ingestBench) phase(ctx context.Context, name string, rate int, d time.Duration, brk, ing *child) (float64, error) {
	n := int(float64(rate) * d.Seconds())
	m0, err := scrape(ing.metrics)
	if err != nil {
		return 0, err
	}
	pc0, bc0, ic0 := cpuOf(os.Getpid()), cpuOf(brk.pid()), cpuOf(ing.pid())
	start := time.Now()
	if err := b.publish(ctx, n, rate); err != nil {
		return 0, err
	}
	pubTook := time.Since(start)
	// Wait until everything offered is committed (bounded), so the lag
	// histogram holds every message of the phase.
	want := m0.value(`sentinel_ingest_inserted_rows_total{table="telemetry"}`) + float64(n)
	var m1 metricSet
	for {
		if m1, err = scrape(ing.metrics); err != nil {
			return 0, err
		}
		if m1.value(`sentinel_ingest_inserted_rows_total{table="telemetry"}`) >= want || time.Since(start) > d+2*time.Minute {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	ing.lastInserted = m1.value(`sentinel_ingest_inserted_rows_total{table="telemetry"}`)
	committed := (ing.lastInserted - m0.value(`sentinel_ingest_inserted_rows_total{table="telemetry"}`)) / took.Seconds()
	p50, p99 := lagQuantiles(m0, m1, 0.5), lagQuantiles(m0, m1, 0.99)
	fmt.Fprintf(b.out, "%-10s %10d %10.0f %9s %9s   %.2f %.2f %.2f  (published in %s)\n", name, rate, committed,
		fmtSec(p50), fmtSec(p99), per100k(cpuOf(os.Getpid())-pc0, n), per100k(cpuOf(brk.pid())-bc0, n), per100k(cpuOf(ing.pid())-ic0, n),
		pubTook.Round(time.Millisecond))
	return committed, nil
}

func per100k(cpu time.Duration, n int) float64 { return cpu.Seconds() * 100000 / float64(n) }

func fmtSec(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
}

// child is a `sentinel` subcommand running as a child process.
type child struct {
	cmd          *exec.Cmd
	exited       chan error
	metrics      string // /metrics URL, for an ingestor
	debug        string
	url          string // broker URL, for a broker
	lastInserted float64
	once         sync.Once
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) stop() {
	c.once.Do(func() {
		c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			c.cmd.Process.Kill()
			<-c.exited
		}
	})
}

var metricsListenRe = regexp.MustCompile(`metrics listening on (http://\S+)`)

func startChild(ctx context.Context, args []string, ready *regexp.Regexp) (*child, []string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	c := &child{cmd: cmd, exited: make(chan error, 1)}
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := ready.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
			}
		}
		c.exited <- cmd.Wait()
	}()
	select {
	case m := <-found:
		return c, m, nil
	case <-time.After(time.Minute):
		c.stop()
		return nil, nil, fmt.Errorf("%s: not ready within a minute", args[0])
	}
}

func startBroker(ctx context.Context, extra ...string) (*child, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, append([]string{"broker", "--listen", addr, "--log-level", "warn", "--allow-anonymous"}, extra...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, exited: make(chan error, 1), url: "tcp://" + addr}
	go func() { c.exited <- cmd.Wait() }()
	for i := 0; ; i++ {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return c, nil
		}
		if i > 200 {
			c.stop()
			return nil, fmt.Errorf("broker not listening on %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// drained is how a backlog drained: the time from launching the ingestor
// to its last commit, and the rate between its first and last commits.
type drained struct {
	total time.Duration
	rate  float64
}

// drain polls ing's metrics until n telemetry rows are committed.
func drain(ing *child, n int, launched time.Time) (drained, error) {
	var first time.Time
	var firstN float64
	for {
		m, err := scrape(ing.metrics)
		if err != nil {
			return drained{}, err
		}
		v := m.value(`sentinel_ingest_inserted_rows_total{table="telemetry"}`)
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
			return drained{}, fmt.Errorf("backlog not drained in 5 min: %v of %d", v, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startIngest starts `sentinel ingest args...` and returns once its metrics
// answer; with settle, a second later, once its subscriptions are in place.
func startIngest(ctx context.Context, args []string, settle bool) (*child, error) {
	c, m, err := startChild(ctx, append([]string{"ingest", "--metrics-listen", "127.0.0.1:0", "--log-level", "warn"}, args...), metricsListenRe)
	if err != nil {
		return nil, err
	}
	c.metrics = m[1]
	c.debug = strings.TrimSuffix(m[1], "/metrics") + "/debug/pprof/profile"
	for i := 0; ; i++ {
		if _, err := scrape(c.metrics); err == nil {
			break
		}
		if i > 100 {
			c.stop()
			return nil, errors.New("ingest: metrics never answered")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if settle {
		time.Sleep(time.Second) // subscriptions settle; a benchmark, not a test
	}
	return c, nil
}

func fetchProfile(u, file string, d time.Duration) error {
	resp, err := http.Get(fmt.Sprintf("%s?seconds=%d", u, int(d.Seconds())))
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
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// cpuOf is a process's user+system CPU time, from /proc (its own via the
// same file).
func cpuOf(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// metricSet is one scrape of a Prometheus text endpoint: series line to value.
type metricSet map[string]float64

func (m metricSet) value(series string) float64 { return m[series] }

func scrape(u string) (metricSet, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := metricSet{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

var lagBucketRe = regexp.MustCompile(`^sentinel_ingest_commit_lag_seconds_bucket\{table="telemetry",le="([^"]+)"\}$`)

// lagQuantiles estimates quantile q of the telemetry commit lag observed
// between two scrapes (see quantile.Histogram).
func lagQuantiles(m0, m1 metricSet, q float64) float64 {
	return quantile.Histogram(quantile.Delta(m0.lagBuckets(), m1.lagBuckets()), q)
}

// lagBuckets are the telemetry commit lag histogram's buckets in m.
func (m metricSet) lagBuckets() []quantile.Bucket {
	var bs []quantile.Bucket
	for k, v := range m {
		if g := lagBucketRe.FindStringSubmatch(k); g != nil {
			le, err := strconv.ParseFloat(g[1], 64)
			if err != nil {
				le = math.Inf(1)
			}
			bs = append(bs, quantile.Bucket{UpperBound: le, Count: v})
		}
	}
	return bs
}
