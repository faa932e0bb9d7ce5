package httpserver

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/sentinel-iot/sentinel/warehouse"
)

// The engine is one per process: every test here shares this one, served
// by the server started in TestMain, and adds servers on it when it needs
// other limits.
var (
	testDB    *warehouse.DB
	testAddr  string
	testUsers string
)

const (
	writer, writerPass = "svc", "svc-secret"
	reader, readerPass = "analyst", "analyst-secret"
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "httpserver-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	testDB, err = warehouse.Open(ctx, "chdb://"+filepath.Join(dir, "data"), warehouse.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open the embedded warehouse (run `go run ./cmd/sentinel setup` if libchdb is missing):", err)
		return 1
	}
	defer testDB.Close()
	if err := testDB.Migrate(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testUsers = filepath.Join(dir, "users")
	for _, u := range []struct {
		name, pass string
		role       Role
	}{{writer, writerPass, RoleReadWrite}, {reader, readerPass, RoleReadOnly}} {
		if err := AddUser(testUsers, u.name, u.pass, u.role); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	srv, err := New(Config{UsersFile: testUsers, TempDir: filepath.Join(dir, "tmp")}, testDB)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testAddr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "server did not shut down cleanly:", err)
		return 1
	}
	return code
}

// serve starts another server on the shared engine with cfg, stopped and
// checked for a clean shutdown when the test ends.
func serve(t *testing.T, cfg Config) (addr string, srv *Server) {
	t.Helper()
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	srv, err := New(cfg, testDB)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return ln.Addr().String(), srv
}

func chConn(t *testing.T, user, pass string) clickhouse.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:     []string{testAddr},
		Protocol: clickhouse.HTTP,
		Auth:     clickhouse.Auth{Database: "default", Username: user, Password: pass},
	})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestClickHouseGo drives the server with clickhouse-go over HTTP, as the
// services do: handshake, DDL, a batch with every column type Sentinel's
// schema uses (and the composite ones it may), reading it back, and errors.
func TestClickHouseGo(t *testing.T) {
	ctx := context.Background()
	conn := chConn(t, writer, writerPass)
	require.NoError(t, conn.Ping(ctx))
	v, err := conn.ServerVersion()
	require.NoError(t, err)
	require.Equal(t, uint64(26), v.Version.Major)

	// A fresh table per run, so -count=N repeats the same checks.
	require.NoError(t, conn.Exec(ctx, "DROP TABLE IF EXISTS types_test"))
	require.NoError(t, conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS types_test (
		id UInt64, ts DateTime64(3, 'UTC'), region LowCardinality(String), state Enum8('idle' = 1, 'partial' = 2),
		note Nullable(String), battery Float32, rssi Int16, charging Bool, uptime Int64, attempt UInt16,
		size UInt32, tags Array(String), counts Map(String, UInt64)
	) ENGINE = MergeTree ORDER BY id`))

	type row struct {
		ID       uint64            `ch:"id"`
		TS       time.Time         `ch:"ts"`
		Region   string            `ch:"region"`
		State    string            `ch:"state"`
		Note     *string           `ch:"note"`
		Battery  float32           `ch:"battery"`
		RSSI     int16             `ch:"rssi"`
		Charging bool              `ch:"charging"`
		Uptime   int64             `ch:"uptime"`
		Attempt  uint16            `ch:"attempt"`
		Size     uint32            `ch:"size"`
		Tags     []string          `ch:"tags"`
		Counts   map[string]uint64 `ch:"counts"`
	}
	const n = 1000
	base := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	want := make([]row, n)
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO types_test")
	require.NoError(t, err)
	for i := range want {
		note := fmt.Sprintf("note %d, with 'quotes'\tand\ttabs", i)
		r := row{ID: uint64(i), TS: base.Add(time.Duration(i) * 1500 * time.Microsecond).Truncate(time.Millisecond),
			Region: []string{"eu-west", "ap-south"}[i%2], State: []string{"idle", "partial"}[i%2],
			Battery: float32(i) / 10, RSSI: int16(-i % 140), Charging: i%3 == 0, Uptime: int64(i) << 32,
			Attempt: uint16(i % 4), Size: uint32(i * 7), Tags: []string{"a", fmt.Sprint(i)}, Counts: map[string]uint64{"k": uint64(i)}}
		if i%5 != 0 {
			r.Note = &note
		}
		want[i] = r
		require.NoError(t, batch.AppendStruct(&want[i]))
	}
	require.NoError(t, batch.Send())

	rows, err := conn.Query(ctx, "SELECT * FROM types_test ORDER BY id")
	require.NoError(t, err)
	var got []row
	for rows.Next() {
		var r row
		require.NoError(t, rows.ScanStruct(&r))
		got = append(got, r)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	require.Equal(t, want, got)

	var count uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM types_test WHERE state = {s:String}", clickhouse.Named("s", "partial")).Scan(&count))
	require.Equal(t, uint64(n/2), count)

	tests := []struct {
		name string
		user string
		pass string
		run  func(clickhouse.Conn) error
		code int32
	}{
		{name: "unknown table", user: writer, pass: writerPass, code: 60, run: func(c clickhouse.Conn) error {
			_, err := c.Query(ctx, "SELECT * FROM no_such_table")
			return err
		}},
		{name: "engine error", user: writer, pass: writerPass, code: 395, run: func(c clickhouse.Conn) error {
			return c.Exec(ctx, "SELECT throwIf(1)")
		}},
		{name: "read-only user refused DDL", user: reader, pass: readerPass, code: codeReadonly, run: func(c clickhouse.Conn) error {
			return c.Exec(ctx, "DROP TABLE types_test")
		}},
		{name: "read-only user refused a batch", user: reader, pass: readerPass, code: codeReadonly, run: func(c clickhouse.Conn) error {
			b, err := c.PrepareBatch(ctx, "INSERT INTO types_test")
			if err != nil {
				return err
			}
			if err := b.Append(uint64(1), base, "r", "idle", nil, float32(1), int16(1), true, int64(1), uint16(1), uint32(1), []string{}, map[string]uint64{}); err != nil {
				return err
			}
			return b.Send()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run(chConn(t, tt.user, tt.pass))
			var ex *clickhouse.Exception
			require.True(t, errors.As(err, &ex), "want *clickhouse.Exception, got %T: %v", err, err)
			require.Equal(t, tt.code, ex.Code, ex.Message)
		})
	}

	// A read-only user reads.
	require.NoError(t, chConn(t, reader, readerPass).QueryRow(ctx, "SELECT count() FROM types_test").Scan(&count))
	require.Equal(t, uint64(n), count)

	// A wrong password fails the handshake with the server's code.
	_, err = clickhouse.Open(&clickhouse.Options{Addr: []string{testAddr}, Protocol: clickhouse.HTTP,
		Auth: clickhouse.Auth{Username: writer, Password: "wrong"}})
	if err == nil {
		c, _ := clickhouse.Open(&clickhouse.Options{Addr: []string{testAddr}, Protocol: clickhouse.HTTP, Auth: clickhouse.Auth{Username: writer, Password: "wrong"}})
		err = c.Ping(ctx)
	}
	var ex *clickhouse.Exception
	require.True(t, errors.As(err, &ex), "%v", err)
	require.Equal(t, int32(codeAuthenticationFailed), ex.Code)
}

// TestWarehouseOverHTTP runs Sentinel's own warehouse code (migrations,
// batch insert of schema rows, queries with parameters) through an http://
// DSN against the server: the path every service takes.
func TestWarehouseOverHTTP(t *testing.T) {
	ctx := context.Background()
	db, err := warehouse.Open(ctx, fmt.Sprintf("http://%s:%s@%s/default", writer, writerPass, testAddr), warehouse.Options{})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.Migrate(ctx))
	ts := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	rows := []warehouse.TelemetryRow{
		{DeviceID: "dev-http-1", Region: "eu-west", Firmware: "1.4.2", State: "partial", TS: ts, Seq: 1, BatteryPct: 55.5, RSSI: -80, TemperatureC: 30.25, UptimeS: 10, ReceivedAt: ts},
		{DeviceID: "dev-http-1", Region: "eu-west", Firmware: "1.4.2", State: "partial", TS: ts.Add(time.Second), Seq: 2, BatteryPct: 55, Charging: true, RSSI: -81, UptimeS: 11, ReceivedAt: ts},
	}
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableTelemetry, rows))
	const sql = "SELECT seq, battery_pct, charging, ts FROM telemetry FINAL WHERE device_id = {d:String} ORDER BY seq"
	params := warehouse.WithParams(map[string]string{"d": "dev-http-1"})
	res, err := db.Query(ctx, sql, params)
	require.NoError(t, err)
	require.Len(t, res.Rows, 2)
	require.Equal(t, []string{"1", "55.5", "false"}, res.Rows[0][:3])
	require.Equal(t, []string{"2", "55", "true"}, res.Rows[1][:3])
	direct, err := testDB.Query(ctx, sql, params)
	require.NoError(t, err)
	require.Equal(t, direct.Rows, res.Rows, "both engines print the same text for the same rows")
}

type httpCase struct {
	name       string
	method     string
	user, pass string
	header     map[string]string
	params     url.Values
	body       string
	gzipBody   bool
	wantStatus int
	wantCode   int
	wantBody   string
	wantHeader map[string]string
}

func (c httpCase) do(t *testing.T, addr string) (*http.Response, string) {
	t.Helper()
	var body io.Reader = strings.NewReader(c.body)
	if c.gzipBody {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(c.body))
		zw.Close()
		body = &buf
	}
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, "http://"+addr+"/?"+c.params.Encode(), body)
	require.NoError(t, err)
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	if c.gzipBody {
		req.Header.Set("Content-Encoding", "gzip")
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func (c httpCase) check(t *testing.T, addr string) {
	t.Helper()
	resp, body := c.do(t, addr)
	want := c.wantStatus
	if want == 0 {
		want = http.StatusOK
	}
	require.Equal(t, want, resp.StatusCode, body)
	if c.wantCode != 0 {
		require.Equal(t, fmt.Sprint(c.wantCode), resp.Header.Get("X-ClickHouse-Exception-Code"), body)
		require.True(t, strings.HasPrefix(body, fmt.Sprintf("Code: %d. DB::Exception: ", c.wantCode)), body)
	}
	require.Contains(t, body, c.wantBody)
	for k, v := range c.wantHeader {
		if v == "" {
			require.NotEmpty(t, resp.Header.Get(k), k)
			continue
		}
		require.Equal(t, v, resp.Header.Get(k), k)
	}
}

func q(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// TestPlainHTTP drives the server with Go's HTTP client, as curl would.
// The cases run in order: the inserts come before the reads that count them.
func TestPlainHTTP(t *testing.T) {
	w, wp := writer, writerPass
	// A fresh table per run, so -count=N repeats the same checks.
	httpCase{user: w, pass: wp, body: "DROP TABLE IF EXISTS plain"}.check(t, testAddr)
	setup := httpCase{user: w, pass: wp, body: "CREATE TABLE IF NOT EXISTS plain (id UInt64, name String, at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY id"}
	setup.check(t, testAddr)
	var rowBinary []byte
	rowBinary = binary.LittleEndian.AppendUint64(rowBinary, 6)
	rowBinary = append(rowBinary, 3, 's', 'i', 'x')
	rowBinary = binary.LittleEndian.AppendUint64(rowBinary, uint64(time.Date(2026, 11, 27, 0, 0, 6, 0, time.UTC).UnixMilli()))

	tests := []httpCase{
		{name: "insert JSONEachRow from the body", user: w, pass: wp, params: q("query", "INSERT INTO plain FORMAT JSONEachRow"),
			body:       `{"id":1,"name":"one","at":"2026-11-27 00:00:01.000"}` + "\n" + `{"id":2,"name":"two","at":"2026-11-27 00:00:02.000"}`,
			wantHeader: map[string]string{"X-ClickHouse-Summary": ""}},
		{name: "insert CSV with query and data in the body", user: w, pass: wp, body: "INSERT INTO plain FORMAT CSV\n3,\"three, quoted\",2026-11-27 00:00:03\n"},
		{name: "insert TabSeparated, gzip body", user: w, pass: wp, params: q("query", "INSERT INTO plain (id, name, at) FORMAT TabSeparated"),
			body: "4\tfour\t2026-11-27 00:00:04\n", gzipBody: true},
		{name: "insert VALUES with settings", user: w, pass: wp, params: q("query", "INSERT INTO plain SETTINGS async_insert=0 VALUES"), body: "(5, 'five', '2026-11-27 00:00:05')"},
		{name: "insert RowBinary", user: w, pass: wp, params: q("query", "INSERT INTO plain FORMAT RowBinary"), body: string(rowBinary)},
		{name: "JSONEachRow result", user: reader, pass: readerPass, params: q("query", "SELECT id, name FROM plain WHERE id <= 2 ORDER BY id FORMAT JSONEachRow"),
			wantBody: `{"id":1,"name":"one"}` + "\n" + `{"id":2,"name":"two"}` + "\n", wantHeader: map[string]string{"Content-Type": "application/json; charset=UTF-8", "X-ClickHouse-Format": "JSONEachRow"}},
		{name: "CSV result via default_format", user: reader, pass: readerPass, params: q("default_format", "CSV"), body: "SELECT id, name FROM plain WHERE id = 3",
			wantBody: "3,\"three, quoted\"\n", wantHeader: map[string]string{"X-ClickHouse-Format": "CSV"}},
		{name: "TabSeparated by default, GET", method: http.MethodGet, user: reader, pass: readerPass, params: q("query", "SELECT count(), sum(id) FROM plain"), wantBody: "6\t21\n"},
		{name: "read-only GET refused a write", method: http.MethodGet, user: w, pass: wp, params: q("query", "DROP TABLE plain"), wantStatus: 403, wantCode: codeReadonly},
		{name: "read-only user refused an insert", user: reader, pass: readerPass, params: q("query", "INSERT INTO plain FORMAT CSV"), body: "9,x,2026-11-27 00:00:00", wantStatus: 403, wantCode: codeReadonly},
		{name: "read-only user may not lift readonly", user: reader, pass: readerPass, params: q("query", "SELECT 1 SETTINGS readonly=0"), wantStatus: 403, wantCode: codeReadonly},
		{name: "read-only user may use numbers()", user: reader, pass: readerPass, params: q("query", "SELECT count() FROM numbers(10) AS n, plain"), wantBody: "60\n"},
		{name: "X-ClickHouse-User and -Key", header: map[string]string{"X-ClickHouse-User": reader, "X-ClickHouse-Key": readerPass}, params: q("query", "SELECT 1"), wantBody: "1\n"},
		{name: "settings and parameters from the URL", user: reader, pass: readerPass,
			params: q("query", "SELECT getSetting('max_threads'), {n:UInt8} + 1", "max_threads", "1", "param_n", "41"), wantBody: "1\t42\n"},
		{name: "gzip response when asked", user: reader, pass: readerPass, params: q("query", "SELECT 'zipped'", "enable_http_compression", "1"), wantBody: "zipped\n"},
		{name: "engine error is 500 with the code", user: w, pass: wp, body: "SELECT throwIf(number = 0) FROM numbers(1)", wantStatus: 500, wantCode: 395},
		{name: "syntax error is 400", user: w, pass: wp, body: "SELEC 1", wantStatus: 400, wantCode: 62},
		{name: "unknown table is 404", user: w, pass: wp, body: "SELECT * FROM nope", wantStatus: 404, wantCode: 60},
		{name: "no credentials", body: "SELECT 1", wantStatus: 401, wantCode: codeAuthenticationFailed},
		{name: "wrong password", user: w, pass: "nope", body: "SELECT 1", wantStatus: 401, wantCode: codeAuthenticationFailed},
		{name: "unknown user", user: "mallory", pass: "x", body: "SELECT 1", wantStatus: 401, wantCode: codeAuthenticationFailed},
		{name: "a misspelled keyword on GET is a syntax error, not a role error", method: http.MethodGet, user: reader, pass: readerPass, params: q("query", "SELEC 1"), wantStatus: 400, wantCode: codeSyntaxError},
		{name: "a read-only user's syntax error is the engine's", user: reader, pass: readerPass, body: "DROP TABLE", wantStatus: 400, wantCode: codeSyntaxError},
		{name: "multi-statements refused", user: w, pass: wp, body: "SELECT 1; DROP TABLE plain", wantStatus: 400, wantCode: codeSyntaxError},
		{name: "file() refused", user: w, pass: wp, body: "SELECT * FROM file('/etc/hostname', 'LineAsString')", wantStatus: 403, wantCode: codeAccessDenied},
		{name: "INTO OUTFILE refused", user: w, pass: wp, body: "SELECT 1 INTO OUTFILE '/tmp/x'", wantStatus: 400, wantCode: codeSupportIsDisabled},
		{name: "SET refused", user: w, pass: wp, body: "SET max_threads = 1", wantStatus: 400, wantCode: codeSupportIsDisabled},
		{name: "sessions refused", user: w, pass: wp, params: q("session_id", "s1"), body: "SELECT 1", wantStatus: 400, wantCode: codeSupportIsDisabled},
		{name: "another database refused", user: w, pass: wp, params: q("database", "other"), body: "SELECT 1", wantStatus: 404, wantCode: codeUnknownDatabase},
		{name: "trailing semicolon and comment", user: w, pass: wp, body: "SELECT 7 -- seven\n;", wantBody: "7\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, testAddr) })
	}

	t.Run("ping and metrics", func(t *testing.T) {
		httpCase{method: http.MethodGet}.check(t, testAddr) // GET / with no query is Ok.
		for path, want := range map[string][]string{
			"/ping": {"Ok.\n"},
			"/metrics": {`sentinel_warehouse_http_queries_total{kind="insert"}`, `sentinel_warehouse_http_errors_total{code="164"}`,
				"sentinel_warehouse_http_inserted_rows_total ", "sentinel_warehouse_http_inserted_bytes_total", "sentinel_warehouse_http_query_duration_seconds_bucket"},
		} {
			resp, err := http.Get("http://" + testAddr + path)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, w := range want {
				require.Contains(t, string(b), w, path)
			}
		}
	})
}

// TestLimits checks each limit is enforced with a clear error.
func TestLimits(t *testing.T) {
	addr, srv := serve(t, Config{UsersFile: testUsers, MaxRequestBytes: 1 << 10, MaxQueryBytes: 200,
		QueryTimeout: time.Second, MaxConcurrentQueries: 1})
	w, wp := writer, writerPass
	httpCase{user: w, pass: wp, body: "CREATE TABLE IF NOT EXISTS limits (s String) ENGINE = MergeTree ORDER BY s"}.check(t, addr)
	tests := []httpCase{
		{name: "request too large", user: w, pass: wp, params: q("query", "INSERT INTO limits FORMAT TabSeparated"), body: strings.Repeat("x\n", 1000), wantStatus: 413, wantCode: codeLimitExceeded},
		{name: "gzip bomb capped after decompression", user: w, pass: wp, params: q("query", "INSERT INTO limits FORMAT TabSeparated"), body: strings.Repeat("y\n", 10000), gzipBody: true, wantStatus: 413, wantCode: codeLimitExceeded},
		{name: "query too long", user: w, pass: wp, body: "SELECT '" + strings.Repeat("q", 300) + "'", wantStatus: 413, wantCode: codeSyntaxError},
		{name: "query time", user: w, pass: wp, body: "SELECT sleep(2)", wantStatus: 500, wantCode: codeTimeoutExceeded},
		{name: "within limits", user: w, pass: wp, params: q("query", "INSERT INTO limits FORMAT TabSeparated"), body: "ok\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, addr) })
	}

	t.Run("concurrent queries", func(t *testing.T) {
		slow := make(chan int, 1)
		go func() {
			resp, _ := httpCase{user: w, pass: wp, params: q("max_execution_time", "3"), body: "SELECT sleep(0.9)"}.do(t, addr)
			slow <- resp.StatusCode
		}()
		require.Eventually(t, func() bool { return len(srv.slots) == 1 }, 10*time.Second, time.Millisecond, "the slow query holds the only slot")
		httpCase{user: w, pass: wp, body: "SELECT 1", wantStatus: 503, wantCode: codeTooManyQueries}.check(t, addr)
		require.Equal(t, http.StatusOK, <-slow)
	})
}

func TestAnonymous(t *testing.T) {
	_, err := New(Config{}, testDB)
	require.ErrorIs(t, err, ErrNoUsers)
	addr, _ := serve(t, Config{AllowAnonymous: true})
	httpCase{body: "SELECT 'anon'", wantBody: "anon\n"}.check(t, addr)
	httpCase{user: "default", body: "SELECT 'default user'", wantBody: "default user\n"}.check(t, addr)
	httpCase{user: writer, pass: writerPass, body: "SELECT 1", wantStatus: 401, wantCode: codeAuthenticationFailed}.check(t, addr)
}

func TestUsersFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	require.NoError(t, AddUser(path, "a", "pw1", RoleReadOnly))
	require.NoError(t, AddUser(path, "b", "pw2", RoleReadWrite))
	require.NoError(t, AddUser(path, "a", "pw3", RoleReadWrite)) // replaces a
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(data), "\na:readwrite:$2a$10$", "name:role:bcrypt-hash, the broker's order")
	us, err := LoadUsers(path, nil)
	require.NoError(t, err)
	for _, c := range []struct {
		name, pass string
		role       Role
		ok         bool
	}{{"a", "pw3", RoleReadWrite, true}, {"a", "pw1", "", false}, {"b", "pw2", RoleReadWrite, true}, {"b", "pw2", RoleReadWrite, true}, {"c", "pw", "", false}} {
		role, ok := us.authenticate(c.name, c.pass)
		require.Equal(t, c.ok, ok, c)
		require.Equal(t, c.role, role, c)
	}

	bad := []struct{ name, content, want string }{
		{"two fields", "a:b\n", "want name:role:bcrypt-hash"},
		{"bad role", "a:admin:$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z2xbYlKoxNt6rQ1VY1WBpaAu\n", `role "admin"`},
		{"bad role, old order", "a:$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z2xbYlKoxNt6rQ1VY1WBpaAu:admin\n", `role "admin"`},
		{"plain password", "a:readonly:secret\n", "not a bcrypt hash"},
		{"plain password, old order", "a:secret:readonly\n", "not a bcrypt hash"},
		{"listed twice", "a:readonly:$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z2xbYlKoxNt6rQ1VY1WBpaAu\na:readwrite:$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z2xbYlKoxNt6rQ1VY1WBpaAu\n", "listed twice"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			require.NoError(t, os.WriteFile(p, []byte("# comment\n\n"+c.content), 0o600))
			_, err := LoadUsers(p, nil)
			require.ErrorIs(t, err, ErrBadUsersFile)
			require.ErrorContains(t, err, c.want)
		})
	}
	require.ErrorContains(t, AddUser(path, "x:y", "pw", RoleReadOnly), "invalid user name")
	require.ErrorContains(t, AddUser(path, "x", "", RoleReadOnly), "empty password")
}

// TestOldUsersFileKeepsWorking: a users file written before the
// credentials format was shared (name:bcrypt-hash:role) still serves its
// users, the server warns naming the file and the command that rewrites
// it, and that command (AddUser) leaves a file in the current order with
// every user intact.
func TestOldUsersFileKeepsWorking(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	// As the old AddUser wrote it, hashes at its cost.
	oldHash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
		require.NoError(t, err)
		return string(h)
	}
	old := "# Sentinel warehouse server users: name:bcrypt-hash:role (readwrite or readonly).\n# Edit with `sentinel warehouse adduser`.\n" +
		"old-reader:" + oldHash("r-pw") + ":readonly\nold-writer:" + oldHash("w-pw") + ":readwrite\n"
	require.NoError(t, os.WriteFile(path, []byte(old), 0o600))

	var logs syncBuffer
	addr, _ := serve(t, Config{UsersFile: path, TempDir: filepath.Join(dir, "tmp"), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	httpCase{user: "old-writer", pass: "w-pw", body: "SELECT 'old writer'", wantBody: "old writer\n"}.check(t, addr)
	httpCase{user: "old-reader", pass: "r-pw", body: "SELECT 'old reader'", wantBody: "old reader\n"}.check(t, addr)
	httpCase{user: "old-reader", pass: "r-pw", body: "CREATE TABLE nope (x UInt8) ENGINE = Memory", wantStatus: 403, wantCode: codeReadonly}.check(t, addr)
	httpCase{user: "old-reader", pass: "wrong", body: "SELECT 1", wantStatus: 401, wantCode: codeAuthenticationFailed}.check(t, addr)
	for _, want := range []string{"level=WARN", "old name:bcrypt-hash:role order", "file=" + path, "old_lines=2", "sentinel warehouse adduser --users " + path} {
		require.Contains(t, logs.String(), want)
	}

	require.NoError(t, AddUser(path, "new-reader", "n-pw", RoleReadOnly))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Regexp(t, `(?m)^old-reader:readonly:\$2a\$10\$`, string(data), "rewritten in the current order")
	require.Regexp(t, `(?m)^old-writer:readwrite:\$2a\$10\$`, string(data))
	logs.Reset()
	addr, _ = serve(t, Config{UsersFile: path, TempDir: filepath.Join(dir, "tmp"), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	httpCase{user: "old-writer", pass: "w-pw", body: "SELECT 2", wantBody: "2\n"}.check(t, addr)
	httpCase{user: "new-reader", pass: "n-pw", body: "SELECT 3", wantBody: "3\n"}.check(t, addr)
	require.NotContains(t, logs.String(), "old name:bcrypt-hash:role order", "no warning once rewritten")
}

// syncBuffer is a log destination the server's goroutines may write while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}
