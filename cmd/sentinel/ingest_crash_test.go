package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/ingestor"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/httpserver"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// envIngestProcess carries broker URL, DSN and kill-after-commits (one per
// line) with which the test binary, run again, becomes an ingestor process.
const envIngestProcess = "SENTINEL_TEST_INGEST_PROCESS"

// TestIngestProcess is not a test of its own: it is the body of the
// ingestor child process TestIngestCrash starts and kills. With a
// kill-after of k > 0 it SIGKILLs itself right after its k-th telemetry
// commit, before the acks of that batch can leave: the worst moment.
func TestIngestProcess(t *testing.T) {
	env := os.Getenv(envIngestProcess)
	if env == "" {
		t.Skip("the child process of TestIngestCrash")
	}
	args := strings.Split(env, "\n")
	killAfter, _ := strconv.Atoi(args[2])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	db, err := warehouse.Open(ctx, args[1], warehouse.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var commits atomic.Int64
	in, err := ingestor.New(ingestor.Config{
		Broker: args[0], ClientID: "crash-ingestor", Connections: 2, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Batch: warehouse.WriterConfig{MaxRows: 150, MaxDelay: 20 * time.Millisecond, OnFlush: func(f warehouse.FlushInfo) {
			if f.Err == nil && f.Table == warehouse.TableTelemetry && commits.Add(1) == int64(killAfter) {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}},
	}, db)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		<-in.Ready()
		fmt.Println("ingestor ready")
	}()
	if err := in.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// TestIngestCrash runs the ingestor as a separate process over a numbered
// stream and SIGKILLs it again and again, at random moments and right after
// a commit before its acks, restarting it each time. Afterwards every
// message published is stored, and counted once.
func TestIngestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dozen processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	b, db, serve := ingestFixture(t, ctx)
	// Background merges would dedupe the raw rows too; stopped, the raw
	// count shows the redeliveries that FINAL absorbs.
	require.NoError(t, db.Exec(ctx, "SYSTEM STOP MERGES telemetry"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(serve(ln))
	dsn := "http://" + ln.Addr().String() + "/default"

	start := func(killAfter int) (*exec.Cmd, chan error, *lockedBuffer) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestIngestProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), envIngestProcess+"="+strings.Join([]string{b.URL(), dsn, strconv.Itoa(killAfter)}, "\n"))
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		require.NoError(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		return cmd, exited, out
	}
	// stopReady interrupts an ingestor once it has subscribed (before, its
	// signal handler may not be installed) and requires a clean exit.
	stopReady := func(cmd *exec.Cmd, exited chan error, out *lockedBuffer) {
		require.Eventually(t, func() bool { return strings.Contains(out.String(), "ingestor ready") }, 30*time.Second, 5*time.Millisecond,
			"ingestor never subscribed:\n%s", out)
		require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
		select {
		case err := <-exited:
			require.NoError(t, err, "%s", out)
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatal("ingestor did not stop on SIGINT")
		}
	}
	// The first ingestor creates the sessions and their shared
	// subscriptions; from then on the broker holds messages for them
	// while no ingestor runs.
	stopReady(start(0))

	// The numbered stream: devices x perDevice readings, published at a
	// steady pace while the ingestor dies and comes back.
	const devices, perDevice = 20, 300
	published := make(chan error, 1)
	go func() { published <- publishStream(ctx, b.URL(), devices, perDevice, 2*time.Millisecond) }()
	rng := rand.New(rand.NewPCG(5, uint64(time.Now().UnixNano())))
	kills, selfKills := 0, 0
	for round := 0; ; round++ {
		select {
		case err := <-published:
			require.NoError(t, err)
			published = nil
		default:
		}
		if published == nil && round >= 6 {
			break
		}
		require.Less(t, round, 200, "publisher never finished")
		if round%2 == 0 {
			// Dies by its own hand right after its k-th commit, acks unsent.
			cmd, exited, out := start(1 + rng.IntN(4))
			deadline := time.After(60 * time.Second)
			// Once the stream is over, the broker may hold fewer than k
			// batches for this ingestor: then it is killed from outside.
			var idle <-chan time.Time
			if published == nil {
				idle = time.After(5 * time.Second)
			}
		wait:
			for {
				select {
				case err := <-exited:
					var ee *exec.ExitError
					require.True(t, errors.As(err, &ee), "killed itself, not %v:\n%s", err, out)
					selfKills++
					break wait
				case err := <-published:
					require.NoError(t, err)
					published = nil
					idle = time.After(5 * time.Second)
				case <-idle:
					require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
					<-exited
					kills++
					break wait
				case <-deadline:
					n, _ := db.QueryInt(ctx, "SELECT count() FROM telemetry")
					t.Fatalf("round %d: ingestor made no %s commits in 60s (%d rows stored):\n%s", round, "enough", n, out)
				}
			}
			continue
		}
		// Killed from outside at a random moment.
		cmd, exited, out := start(0)
		select {
		case err := <-exited:
			t.Fatalf("ingestor exited on its own: %v\n%s", err, out)
		case <-time.After(time.Duration(50+rng.IntN(400)) * time.Millisecond):
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		<-exited
		kills++
	}

	// A last ingestor, left alone, drains what the broker still holds.
	cmd, exited, out := start(0)
	const want = devices * perDevice
	q := func(sql string) int64 {
		n, err := db.QueryInt(ctx, sql)
		require.NoError(t, err)
		return n
	}
	require.Eventually(t, func() bool {
		return q("SELECT uniqExact(device_id, seq) FROM telemetry WHERE device_id LIKE 'crash-%'") == want
	}, time.Minute, 50*time.Millisecond, "missing messages; ingestor output:\n%s", out)
	stopReady(cmd, exited, out)

	stored := q("SELECT count() FROM telemetry WHERE device_id LIKE 'crash-%'")
	deduped := q("SELECT count() FROM telemetry FINAL WHERE device_id LIKE 'crash-%'")
	t.Logf("%d published, %d stored (%d redelivered), %d counted with FINAL; %d kills after commit, %d at random",
		want, stored, stored-want, deduped, selfKills, kills)
	require.Equal(t, int64(want), deduped, "counted once")
	require.Greater(t, stored, int64(want), "a kill between commit and ack must cause redeliveries")
	for d := range devices {
		require.Equal(t, int64(perDevice), q(fmt.Sprintf(
			"SELECT count() FROM telemetry FINAL WHERE device_id = 'crash-%02d' AND seq BETWEEN 1 AND %d", d, perDevice)))
	}
}

// ingestFixture starts a broker (an open one, changed by change) and an
// embedded warehouse, and returns a function that serves the warehouse
// over HTTP on a listener until the function it returns is called.
func ingestFixture(t *testing.T, ctx context.Context, change ...func(*broker.Config)) (*broker.Broker, *warehouse.DB, func(net.Listener) (stop func())) {
	t.Helper()
	cfg := broker.Config{Addr: "127.0.0.1:0", Auth: broker.AuthConfig{AllowAnonymous: true}}
	for _, c := range change {
		c(&cfg)
	}
	b, err := broker.New(cfg)
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { b.Close() })
	db := warehousetest.Open(t)
	srv, err := httpserver.New(httpserver.Config{AllowAnonymous: true}, db)
	require.NoError(t, err)
	return b, db, func(ln net.Listener) func() {
		sctx, cancel := context.WithCancel(ctx)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(sctx, ln) }()
		return func() { cancel(); <-served }
	}
}

// publishStream publishes devices x perDevice numbered readings, QoS 1,
// one every pace, round-robin over the devices.
func publishStream(ctx context.Context, broker string, devices, perDevice int, pace time.Duration) error {
	u, err := url.Parse(broker)
	if err != nil {
		return err
	}
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
		ClientConfig: paho.ClientConfig{ClientID: "crash-publisher"},
	})
	if err != nil {
		return err
	}
	defer cm.Disconnect(context.Background())
	if err := cm.AwaitConnection(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(pace)
	defer tick.Stop()
	for seq := 1; seq <= perDevice; seq++ {
		for d := range devices {
			dev := fmt.Sprintf("crash-%02d", d)
			m := &proto.Telemetry{Header: proto.NewHeader(dev, time.Now(), uint64(seq)), Region: "eu-west", Firmware: "1.4.2",
				State: proto.StateIdle, BatteryPct: 50, RSSI: -70, TemperatureC: 20}
			p, err := proto.Encode(m)
			if err != nil {
				return err
			}
			if _, err := cm.Publish(ctx, &paho.Publish{Topic: proto.TelemetryTopic("eu-west", dev), QoS: 1, Payload: p}); err != nil {
				return fmt.Errorf("publish %s #%d: %w", dev, seq, err)
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// lockedBuffer is a bytes.Buffer a child process writes while a test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
