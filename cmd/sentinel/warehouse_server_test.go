package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/analytics"
	"github.com/sentinel-iot/sentinel/bench/inproc"
	"github.com/sentinel-iot/sentinel/bench/proc"
	"github.com/sentinel-iot/sentinel/ingestor"
	"github.com/sentinel-iot/sentinel/recoverer"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/simulator"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// envWarehouseProcess carries the arguments (one per line) with which the
// test binary, run again, becomes a `sentinel warehouse` process.
const envWarehouseProcess = "SENTINEL_TEST_WAREHOUSE_PROCESS"

// TestWarehouseServerProcess is not a test of its own: it is the body of the
// `sentinel warehouse` child process the tests below start, so the server
// owns its engine in its own process, as in production.
func TestWarehouseServerProcess(t *testing.T) {
	args := os.Getenv(envWarehouseProcess)
	if args == "" {
		t.Skip("the child process of TestIngestThroughWarehouseServer")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, strings.Split(args, "\n"), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sentinel warehouse:", err)
		os.Exit(1)
	}
}

// startWarehouseProcess runs `sentinel warehouse args...` as a child process
// and returns its address once it listens, as its --addr-file says. The
// child is interrupted when the test ends and must exit cleanly.
func startWarehouseProcess(t *testing.T, args ...string) string {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addrs")
	t.Setenv(envWarehouseProcess, strings.Join(append(append([]string{"warehouse"}, args...), "--addr-file", addrFile), "\n"))
	var stderr lockedBuffer
	p, err := proc.Start(context.Background(), proc.Spec{
		Name: "sentinel warehouse", Path: os.Args[0], Args: []string{"-test.run=^TestWarehouseServerProcess$", "-test.count=1"},
		Stdout: io.Discard, Stderr: &stderr, AddrFile: addrFile,
	})
	require.NoError(t, err, "stderr:\n%s", stderr.String())
	t.Cleanup(func() {
		require.NoError(t, p.Stop(), "sentinel warehouse exits cleanly on SIGINT; stderr:\n%s", stderr.String())
	})
	return p.Addr("http")
}

// TestIngestThroughWarehouseServer runs the ingestor and the recoverer with
// an http:// DSN against a `sentinel warehouse` process: every write goes
// through clickhouse-go over HTTP into the server's embedded engine, and the
// analytics run through the same path, unchanged.
func TestIngestThroughWarehouseServer(t *testing.T) {
	const devices = 60
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	for _, u := range []struct{ name, pass, flag string }{{"svc", "svc-pw", ""}, {"analyst", "analyst-pw", "--readonly"}} {
		stdin = strings.NewReader(u.pass + "\n")
		args := []string{"warehouse", "adduser", "--users", users, u.name}
		if u.flag != "" {
			args = append(args[:4], u.flag, u.name)
		}
		var out bytes.Buffer
		require.NoError(t, dispatch(ctx, args, &out))
		require.Contains(t, out.String(), "user "+u.name)
	}
	stdin = os.Stdin
	addr := startWarehouseProcess(t, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--users", users, "--log-level", "warn")

	db, err := warehouse.Open(ctx, "http://svc:svc-pw@"+addr+"/default", warehouse.Options{})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Migrate(ctx))
	require.Contains(t, db.Engine(), "ClickHouse server at "+addr)
	count := func(q string) int64 {
		n, err := db.QueryInt(context.Background(), q)
		require.NoError(t, err)
		return n
	}

	pc := policy.DefaultConfig()
	pc.BackoffBase = 300 * time.Millisecond
	p, err := inproc.Start(ctx, db, inproc.Config{
		Listen:    "127.0.0.1:0",
		Ingestor:  ingestor.Config{Batch: warehouse.WriterConfig{MaxRows: 500, MaxDelay: 50 * time.Millisecond}},
		Recoverer: recoverer.Config{Policy: pc},
		Fleet: simulator.Config{Devices: devices, Seed: 7, FailureShare: 0.3, ConnectRate: 1000,
			TelemetryInterval: 300 * time.Millisecond, RolloutSpread: time.Second, StepDuration: 100 * time.Millisecond},
		Logger: discard(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { p.Shutdown() })
	fleetCtx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()
	p.RunFleet(fleetCtx)
	require.Eventually(t, func() bool {
		return count("SELECT uniqExact(device_id) FROM telemetry FINAL") == devices &&
			count("SELECT uniqExact(region) FROM status_events FINAL WHERE state IN ('partial', 'install_failed', 'download_failed')") >= 3
	}, 2*time.Minute, 100*time.Millisecond, "every device's telemetry, and failures in several regions, reach the server")
	stopFleet()
	require.NoError(t, p.Drain(30*time.Second))
	require.NoError(t, p.Shutdown())

	// Nothing acknowledged to a device was lost on the way through HTTP.
	f := p.Fleet().Stats()
	stored := count("SELECT (SELECT count() FROM telemetry FINAL) + (SELECT count() FROM status_events FINAL)")
	require.GreaterOrEqual(t, stored, int64(f.Published))

	// The analytics run unchanged over the same path, as the service user
	// and as a read-only analyst, with query parameters.
	analyst, err := warehouse.Open(ctx, "http://analyst:analyst-pw@"+addr+"/default", warehouse.Options{})
	require.NoError(t, err)
	defer analyst.Close()
	for _, conn := range []*warehouse.DB{db, analyst} {
		res, err := analytics.Run(ctx, conn, "regional_ranking", analytics.Filter{})
		require.NoError(t, err)
		require.NotEmpty(t, res.Rows)
		require.Equal(t, "region", res.Columns[2].Name, "%+v", res.Columns)
	}
	err = analyst.Exec(ctx, "TRUNCATE TABLE telemetry")
	var ex *clickhouse.Exception
	require.True(t, errors.As(err, &ex), "%v", err)
	require.Equal(t, int32(164), ex.Code, "a read-only user is refused a write")

	// curl's view: the same data as CSV.
	resp, err := http.Get("http://analyst:analyst-pw@" + addr + "/?" + url.Values{"query": {"SELECT if(count() > 0, 'stored', 'empty') FROM telemetry FORMAT CSV"}}.Encode())
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "\"stored\"\n", string(body))
}

// listeningRe finds the warehouse's address in what `sentinel run` tells
// its user.
var listeningRe = regexp.MustCompile(`listening on http://(\S+) `)

// TestRunServesWarehouse checks `sentinel run --warehouse-listen`: while the
// demo runs, its live warehouse answers HTTP queries.
func TestRunServesWarehouse(t *testing.T) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- dispatch(context.Background(), []string{"run",
			"--dsn", "chdb://" + t.TempDir(), "--listen", "127.0.0.1:0", "--devices", "20", "--duration", "4s",
			"--rollout-spread", "1s", "--step", "200ms", "--telemetry-interval", "300ms",
			"--warehouse-listen", "127.0.0.1:0", "--warehouse-allow-anonymous",
		}, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var addr string
	for addr == "" && sc.Scan() {
		if m := listeningRe.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	require.NotEmpty(t, addr, "run prints the warehouse address")
	go io.Copy(io.Discard, pr)
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/?query=" + url.QueryEscape("SELECT if(count() > 0, 'stored', 'empty') FROM telemetry"))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b) == "stored\n"
	}, 30*time.Second, 100*time.Millisecond, "the live warehouse answers over HTTP")
	require.NoError(t, <-done)
}
