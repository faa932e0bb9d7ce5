// Package httpserver serves the embedded ClickHouse engine over a subset of
// ClickHouse's HTTP interface, so that services in other processes share
// one engine through clickhouse-go's http:// DSN, tests run the clickhouse-go
// code path production uses, and analysts query the embedded warehouse with
// curl, clickhouse-go or Grafana. Production belongs on a ClickHouse server;
// README.md beside this file lists what is served and what is not.
package httpserver

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sentinel-iot/sentinel/warehouse"
)

// ErrNoUsers means the server would accept nobody: no credentials file and
// no anonymous access.
var ErrNoUsers = errors.New("httpserver: no users: give a credentials file, or allow anonymous access for development")

// Config configures a Server. The zero value with UsersFile or
// AllowAnonymous set works.
type Config struct {
	// UsersFile is the credentials file (see Users). Default: none.
	UsersFile string
	// AllowAnonymous lets requests without credentials (or as user
	// "default" with no password) in, with read-write access. For
	// development only. Default: false.
	AllowAnonymous bool
	// MaxRequestBytes caps a request body after decompression: an INSERT's
	// data, or a query sent in the body. Default: 256 MiB.
	MaxRequestBytes int64
	// MaxQueryBytes caps the text of a query (an INSERT's up to its data).
	// Default: 1 MiB.
	MaxQueryBytes int
	// QueryTimeout caps how long a request waits for the engine and the
	// roles' MaxExecutionTime. Default: 60 s.
	QueryTimeout time.Duration
	// MaxConcurrentQueries caps the queries admitted at once, of all
	// users; the engine runs one at a time, the rest wait. More are refused
	// at once with TOO_MANY_SIMULTANEOUS_QUERIES. Default: 8.
	MaxConcurrentQueries int
	// ReadOnly bounds each query of a read-only user (analysts,
	// dashboards). Zero fields: DefaultReadOnlyLimits.
	ReadOnly RoleLimits
	// ReadWrite bounds each query of a read-write user (the services) and
	// of anonymous requests. Zero fields: DefaultReadWriteLimits.
	ReadWrite RoleLimits
	// TempDir holds INSERT data while the engine reads it. Default:
	// os.TempDir().
	TempDir string
	// Database is the one database served; a request naming another is
	// refused. Default: "default".
	Database string
	// Registerer receives the server's metrics; Handler serves them on
	// /metrics when it is also a Gatherer. Default: a new registry.
	Registerer prometheus.Registerer
	// Logger receives request errors and lifecycle events. Default:
	// discarded.
	Logger *slog.Logger
}

// The defaults of a zero Config's limits, exported so that flags state
// them once.
const (
	// DefaultMaxRequestBytes is Config.MaxRequestBytes's default: 256 MiB.
	DefaultMaxRequestBytes = 256 << 20
	// DefaultMaxQueryBytes is Config.MaxQueryBytes's default: 1 MiB.
	DefaultMaxQueryBytes = 1 << 20
	// DefaultQueryTimeout is Config.QueryTimeout's default.
	DefaultQueryTimeout = 60 * time.Second
	// DefaultMaxConcurrentQueries is Config.MaxConcurrentQueries's default.
	DefaultMaxConcurrentQueries = 8
)

func (c *Config) ensureDefaults() {
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxQueryBytes <= 0 {
		c.MaxQueryBytes = DefaultMaxQueryBytes
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.MaxConcurrentQueries <= 0 {
		c.MaxConcurrentQueries = DefaultMaxConcurrentQueries
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	if c.Database == "" {
		c.Database = "default"
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Server serves one embedded warehouse over HTTP.
type Server struct {
	cfg     Config
	perUser userSlots
	db      *warehouse.DB
	users   *Users
	metrics *metrics
	slots   chan struct{}
	log     *slog.Logger
}

// New validates cfg and returns a server for db, which must be embedded
// and stays owned by the caller (`sentinel run` serves the DB its own
// pipeline writes to).
func New(cfg Config, db *warehouse.DB) (*Server, error) {
	cfg.ensureDefaults()
	if !db.Embedded() {
		return nil, fmt.Errorf("httpserver: serve %s: %w", db.Engine(), warehouse.ErrNotEmbedded)
	}
	engine, _ := db.EngineLimits()
	cfg.ReadOnly.ensureDefaults(DefaultReadOnlyLimits, engine.MaxQueryMemory, cfg.QueryTimeout)
	cfg.ReadWrite.ensureDefaults(DefaultReadWriteLimits, engine.MaxQueryMemory, cfg.QueryTimeout)
	if err := cfg.ReadOnly.validate(RoleReadOnly, engine.MaxQueryMemory, cfg.QueryTimeout); err != nil {
		return nil, err
	}
	if err := cfg.ReadWrite.validate(RoleReadWrite, engine.MaxQueryMemory, cfg.QueryTimeout); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, db: db, slots: make(chan struct{}, cfg.MaxConcurrentQueries), log: cfg.Logger}
	if cfg.UsersFile != "" {
		us, err := LoadUsers(cfg.UsersFile, cfg.Logger)
		if err != nil {
			return nil, err
		}
		s.users = us
	} else if !cfg.AllowAnonymous {
		return nil, ErrNoUsers
	}
	if err := os.MkdirAll(cfg.TempDir, 0o700); err != nil {
		return nil, fmt.Errorf("httpserver: create temp dir: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("httpserver: register metrics: %w", err)
	}
	s.metrics = m
	return s, nil
}

// Handler returns the HTTP handler: / for queries, /ping, and /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "Ok.\n") })
	if g, ok := s.cfg.Registerer.(prometheus.Gatherer); ok {
		mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("/", s.serveQuery)
	return mux
}

// Serve answers requests on ln until ctx ends, then stops accepting, lets
// the queries in flight finish (up to QueryTimeout) and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("warehouse HTTP server listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("httpserver: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.QueryTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("httpserver: shut down: %w", err)
	}
	return nil
}

// serverParams are URL parameters the server acts on itself; every other
// parameter, except param_*, is a ClickHouse setting for the query.
var serverParams = map[string]bool{
	"query": true, "database": true, "default_format": true, "query_id": true, "user": true,
	"password": true, "quota_key": true, "enable_http_compression": true, "http_zlib_compression_level": true,
	"client_protocol_version": true, "wait_end_of_query": true, "send_progress_in_http_headers": true,
	"http_headers_progress_interval_ms": true, "buffer_size": true, "readonly": true, "max_execution_time": true,
	"max_result_bytes": true, "max_memory_usage": true, "max_result_rows": true, "result_overflow_mode": true, "add_http_cors_header": true,
	"compress": true, "decompress": true, "session_id": true, "session_timeout": true, "session_check": true,
}

// request is one query being served.
type request struct {
	w        http.ResponseWriter
	r        *http.Request
	params   map[string][]string
	user     string
	role     Role
	readonly bool
	started  time.Time
	queryID  string
}

func (s *Server) serveQuery(w http.ResponseWriter, r *http.Request) {
	q := &request{w: w, r: r, params: r.URL.Query(), started: time.Now()}
	q.queryID = q.param("query_id")
	if q.queryID == "" {
		var b [16]byte
		rand.Read(b[:])
		q.queryID = hex.EncodeToString(b[:])
	}
	w.Header().Set("X-ClickHouse-Query-Id", q.queryID)
	w.Header().Set("X-ClickHouse-Server-Display-Name", "sentinel-warehouse")
	if r.URL.Path != "/" {
		s.fail(q, "other", &Exception{Code: codeUnsupportedMethod, Name: "UNSUPPORTED_METHOD", Status: http.StatusNotFound,
			Message: fmt.Sprintf("Code: %d. DB::Exception: There is no handle %s: use / for queries, /ping, /metrics (UNSUPPORTED_METHOD)", codeUnsupportedMethod, r.URL.Path)})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		s.fail(q, "other", newException(codeUnsupportedMethod, "method "+r.Method+" is not allowed: use GET (read-only) or POST"))
		return
	}
	if r.Method == http.MethodGet && q.param("query") == "" {
		io.WriteString(w, "Ok.\n")
		return
	}
	if err := s.authenticate(q); err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="sentinel warehouse"`)
		s.fail(q, "other", err)
		return
	}
	if err := s.checkUnsupported(q); err != nil {
		s.fail(q, "other", err)
		return
	}
	limits := s.limits(q)
	if !s.perUser.acquire(q.user, limits.MaxConcurrentQueries) {
		s.fail(q, "other", newException(codeTooManyQueries, fmt.Sprintf("Too many simultaneous queries for user %s: %d are running or waiting, the limit of role %s", q.user, limits.MaxConcurrentQueries, q.role)))
		return
	}
	defer s.perUser.release(q.user)
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		s.fail(q, "other", newException(codeTooManyQueries, fmt.Sprintf("Too many simultaneous queries: %d are running or waiting for the engine, the limit of this server", s.cfg.MaxConcurrentQueries)))
		return
	}
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()

	body, err := s.body(q)
	if err != nil {
		s.fail(q, "other", err)
		return
	}
	st, data, err := s.statementOf(q, body)
	if err != nil {
		s.fail(q, "other", err)
		return
	}
	kindLabel := st.kind.String()
	s.metrics.queries.WithLabelValues(kindLabel).Inc()
	defer func() { s.metrics.duration.WithLabelValues(kindLabel).Observe(time.Since(q.started).Seconds()) }()
	if err := s.confine(q.r.Context(), q, st); err != nil {
		s.fail(q, kindLabel, err)
		return
	}
	if q.readonly && st.kind != kindRead {
		s.fail(q, kindLabel, newException(codeReadonly, q.user+": Cannot execute query in readonly mode. For queries over HTTP, method GET implies readonly; read-only users may only read"))
		return
	}
	if err := s.execute(q, st, data); err != nil {
		s.fail(q, kindLabel, err)
	}
}

// queryParams are the query parameters (param_<name>) of the request.
func (q *request) queryParams() map[string]string {
	params := map[string]string{}
	for name, vals := range q.params {
		if strings.HasPrefix(name, "param_") {
			params[strings.TrimPrefix(name, "param_")] = vals[0]
		}
	}
	return params
}

func (q *request) param(name string) string {
	if v := q.params[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// authenticate finds the user from HTTP basic auth, the X-ClickHouse-User
// and -Key headers, or the user and password URL parameters.
func (s *Server) authenticate(q *request) error {
	name, password, ok := q.r.BasicAuth()
	if !ok {
		name, password = q.r.Header.Get("X-ClickHouse-User"), q.r.Header.Get("X-ClickHouse-Key")
	}
	if name == "" {
		name, password = q.param("user"), q.param("password")
	}
	anonymous := name == "" || name == "default" && password == ""
	switch {
	case anonymous && s.cfg.AllowAnonymous:
		q.user, q.role = "default", RoleReadWrite
	case s.users != nil && !anonymous:
		role, ok := s.users.authenticate(name, password)
		if !ok {
			return newException(codeAuthenticationFailed, name+": Authentication failed: password is incorrect, or there is no user with such name")
		}
		q.user, q.role, q.readonly = name, role, role == RoleReadOnly
	case anonymous:
		return newException(codeAuthenticationFailed, "Authentication required: send HTTP basic auth or X-ClickHouse-User and X-ClickHouse-Key (this server allows no anonymous access)")
	default:
		return newException(codeAuthenticationFailed, name+": Authentication failed: this server has no users file; it accepts anonymous requests only")
	}
	if q.r.Method == http.MethodGet {
		q.readonly = true
	}
	if v := q.param("readonly"); v != "" && v != "0" {
		q.readonly = true
	}
	return nil
}

// checkUnsupported refuses, with a reason, what the server does not serve.
func (s *Server) checkUnsupported(q *request) error {
	if db := q.param("database"); db == "" {
		if db = q.r.Header.Get("X-ClickHouse-Database"); db != "" && db != s.cfg.Database {
			return newException(codeUnknownDatabase, "Database "+db+" is not served here: this server serves one database, "+s.cfg.Database)
		}
	} else if db != s.cfg.Database {
		return newException(codeUnknownDatabase, "Database "+db+" is not served here: this server serves one database, "+s.cfg.Database)
	}
	if q.param("session_id") != "" {
		return newException(codeSupportIsDisabled, "sessions (session_id) are not supported: each request stands alone")
	}
	if q.param("compress") == "1" || q.param("decompress") == "1" {
		return newException(codeSupportIsDisabled, "ClickHouse native compression (compress, decompress: LZ4, ZSTD) is not supported: use gzip or deflate HTTP compression")
	}
	if strings.HasPrefix(q.r.Header.Get("Content-Type"), "multipart/form-data") {
		return newException(codeSupportIsDisabled, "external tables (multipart/form-data) are not supported")
	}
	for name := range q.params {
		if strings.HasSuffix(name, "_structure") || strings.HasSuffix(name, "_types") {
			return newException(codeSupportIsDisabled, "external tables ("+name+") are not supported")
		}
	}
	return nil
}

// body returns the request body decompressed and capped at MaxRequestBytes.
func (s *Server) body(q *request) (io.Reader, error) {
	raw := http.MaxBytesReader(q.w, q.r.Body, s.cfg.MaxRequestBytes)
	var rd io.Reader = raw
	switch enc := strings.ToLower(q.r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(raw)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, newException(codeCannotDecompress, "read gzip request body: "+err.Error())
		}
		if zr != nil {
			rd = zr
		} else {
			rd = strings.NewReader("")
		}
	case "deflate":
		zr, err := zlib.NewReader(raw)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, newException(codeCannotDecompress, "read deflate request body: "+err.Error())
		}
		if zr != nil {
			rd = zr
		} else {
			rd = strings.NewReader("")
		}
	default:
		return nil, newException(codeSupportIsDisabled, "Content-Encoding "+enc+" is not supported: use gzip or deflate")
	}
	return &cappedReader{r: rd, left: s.cfg.MaxRequestBytes}, nil
}

// cappedReader fails with LIMIT_EXCEEDED past its limit, so a small
// compressed body cannot expand without bound.
type cappedReader struct {
	r    io.Reader
	left int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n == 0 && errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		if n == 0 && err != nil {
			return 0, c.tooLarge(err)
		}
		return 0, errRequestTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, c.tooLarge(err)
}

// tooLarge turns the raw body's own limit into LIMIT_EXCEEDED.
func (c *cappedReader) tooLarge(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errRequestTooLarge
	}
	return err
}

var errRequestTooLarge = newException(codeLimitExceeded, "Request body too large: over this server's limit (sentinel warehouse --max-request-size)")

// statementOf finds the query in the query parameter and the body, as
// ClickHouse does: an INSERT's data follows its FORMAT clause, in the
// query parameter, the body, or both.
func (s *Server) statementOf(q *request, body io.Reader) (*statement, io.Reader, error) {
	tooLong := newException(codeSyntaxError, fmt.Sprintf("Max query size exceeded: the query is over %d bytes (sentinel warehouse --max-query-size)", s.cfg.MaxQueryBytes))
	tooLong.Status = http.StatusRequestEntityTooLarge
	text := q.param("query")
	if len(text) > s.cfg.MaxQueryBytes {
		return nil, nil, tooLong
	}
	if text != "" {
		st, err := parseStatement(text)
		if err != nil {
			return nil, nil, err
		}
		if st.kind == kindInsert {
			return st, io.MultiReader(strings.NewReader(text[st.data:]), body), nil
		}
		rest, err := readAtMost(body, s.cfg.MaxQueryBytes-len(text))
		if err != nil {
			return nil, nil, err
		}
		if len(rest) == 0 {
			return st, nil, nil
		}
		if len(text)+len(rest) > s.cfg.MaxQueryBytes {
			return nil, nil, tooLong
		}
		text += " " + string(rest)
	} else {
		head, err := readAtMost(body, s.cfg.MaxQueryBytes)
		if err != nil {
			return nil, nil, err
		}
		text = string(head)
		st, err := parseStatement(text)
		if err == nil && st.kind == kindInsert {
			return st, io.MultiReader(strings.NewReader(text[st.data:]), body), nil
		}
		if len(text) > s.cfg.MaxQueryBytes {
			return nil, nil, tooLong
		}
		if err != nil {
			return nil, nil, err
		}
		return st, nil, nil
	}
	st, err := parseStatement(text)
	if err != nil {
		return nil, nil, err
	}
	if st.kind == kindInsert {
		return nil, nil, newException(codeSyntaxError, "INSERT data must follow the query: put the query in the query parameter and the data in the body")
	}
	return st, nil, nil
}

// readAtMost reads up to max+1 bytes, so the caller can tell "too long".
func readAtMost(r io.Reader, max int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, exceptionOf(err)
	}
	return b, nil
}

// execute runs st and writes the result.
func (s *Server) execute(q *request, st *statement, data io.Reader) error {
	ctx, cancel := context.WithTimeout(q.r.Context(), s.cfg.QueryTimeout)
	defer cancel()
	params := q.queryParams()
	var settings []string
	for name, vals := range q.params {
		switch {
		case strings.HasPrefix(name, "param_"), serverParams[name]:
		default:
			lit, err := settingLiteral(name, vals[0])
			if err != nil {
				return err
			}
			settings = append(settings, lit)
		}
	}
	bounds, err := s.limits(q).settings(q.role, q.params, st.kind == kindRead)
	if err != nil {
		return err
	}
	settings = append(settings, bounds...)

	format := q.param("default_format")
	if format == "" {
		format = "TabSeparated"
	}
	if st.kind == kindRead && st.format != "" {
		format = st.format
	}
	var sql string
	switch st.kind {
	case kindRead:
		if isHello(st.text) && strings.EqualFold(format, "Native") {
			return s.hello(ctx, q)
		}
		settings = append(settings, "result_overflow_mode='throw'")
		if q.readonly {
			settings = append(settings, "readonly=1") // last: the settings before it still apply
		}
		sql = st.text + "\nSETTINGS " + strings.Join(settings, ", ")
	case kindInsertSelect:
		sql = st.text + "\nSETTINGS " + strings.Join(settings, ", ")
	case kindWrite:
		sql = st.text
	case kindInsert:
		return s.insert(ctx, q, st, data, settings)
	}
	res, err := s.db.RawQuery(ctx, sql, format, warehouse.WithParams(params))
	if err != nil {
		return s.engineError(err)
	}
	h := q.w.Header()
	h.Set("Content-Type", contentType(format))
	h.Set("X-ClickHouse-Format", format)
	h.Set("X-ClickHouse-Summary", fmt.Sprintf(`{"read_rows":"%d","written_rows":"0","elapsed_ns":"%d"}`, res.RowsRead, res.Elapsed.Nanoseconds()))
	return s.write(q, res.Data)
}

// limits are the bounds of q's role.
func (s *Server) limits(q *request) RoleLimits {
	if q.role == RoleReadOnly {
		return s.cfg.ReadOnly
	}
	return s.cfg.ReadWrite
}

// engineError turns the engine's error into the exception to send; a
// context deadline is the server's query timeout.
func (s *Server) engineError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return newException(codeTimeoutExceeded, fmt.Sprintf("Timeout exceeded: the query waited over %s for the engine", s.cfg.QueryTimeout))
	}
	return exceptionOf(err)
}

// insert spools data to a temporary file, so a large INSERT is never held
// in memory, and has the engine read it with INSERT ... FROM INFILE, which
// parses it with the table's own column types, as an INSERT with data does.
func (s *Server) insert(ctx context.Context, q *request, st *statement, data io.Reader, settings []string) error {
	f, err := os.CreateTemp(s.cfg.TempDir, "sentinel-insert-*")
	if err != nil {
		return fmt.Errorf("httpserver: spool insert data: %w", err)
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return exceptionOf(err)
	}
	s.metrics.insertedBytes.Add(float64(n))
	if st.settings != "" {
		settings = append([]string{st.settings}, settings...)
	}
	path := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(f.Name())
	sql := fmt.Sprintf("%s FROM INFILE '%s' SETTINGS %s FORMAT %s", st.head, path, strings.Join(settings, ", "), st.format)
	res, err := s.db.RawQuery(ctx, sql, "TabSeparated")
	if err != nil {
		return s.engineError(err)
	}
	s.metrics.insertedRows.Add(float64(res.RowsRead))
	q.w.Header().Set("X-ClickHouse-Summary", fmt.Sprintf(`{"read_rows":"%d","written_rows":"%d","written_bytes":"%d","elapsed_ns":"%d"}`, res.RowsRead, res.RowsRead, n, res.Elapsed.Nanoseconds()))
	return s.write(q, nil)
}

// hello answers clickhouse-go's connection handshake query (see helloBlock).
func (s *Server) hello(ctx context.Context, q *request) error {
	res, err := s.db.RawQuery(ctx, "SELECT displayName(), version(), timezone()", "TabSeparated")
	if err != nil {
		return s.engineError(err)
	}
	f := strings.Split(strings.TrimRight(string(res.Data), "\n"), "\t")
	if len(f) != 3 {
		return newException(codeUnknownException, fmt.Sprintf("unexpected engine answer to the hello query: %q", res.Data))
	}
	withInfo := q.param("client_protocol_version") != "" && q.param("client_protocol_version") != "0"
	q.w.Header().Set("Content-Type", contentType("Native"))
	q.w.Header().Set("X-ClickHouse-Format", "Native")
	return s.write(q, helloBlock(f[0], f[1], f[2], withInfo))
}

// write sends a successful body, gzip- or deflate-compressed when the
// client sets enable_http_compression=1 and accepts the encoding, as
// ClickHouse requires.
func (s *Server) write(q *request, data []byte) error {
	h := q.w.Header()
	if len(data) > 0 && q.param("enable_http_compression") == "1" {
		accept := strings.ToLower(q.r.Header.Get("Accept-Encoding"))
		var buf bytes.Buffer
		var zw io.WriteCloser
		switch {
		case strings.Contains(accept, "gzip"):
			zw, h["Content-Encoding"] = gzip.NewWriter(&buf), []string{"gzip"}
		case strings.Contains(accept, "deflate"):
			zw, h["Content-Encoding"] = zlib.NewWriter(&buf), []string{"deflate"}
		}
		if zw != nil {
			zw.Write(data)
			zw.Close()
			data = buf.Bytes()
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(data)))
	q.w.WriteHeader(http.StatusOK)
	if _, err := q.w.Write(data); err != nil {
		s.log.Debug("write response", "query_id", q.queryID, "err", err)
	}
	return nil
}

// fail sends err the way ClickHouse does: status, X-ClickHouse-Exception-Code
// and the "Code: N. DB::Exception: ..." text.
func (s *Server) fail(q *request, kind string, err error) {
	ex := exceptionOf(err)
	s.metrics.errors.WithLabelValues(strconv.Itoa(ex.Code)).Inc()
	lvl := slog.LevelDebug
	if ex.Status >= 500 {
		lvl = slog.LevelWarn
	}
	s.log.Log(q.r.Context(), lvl, "query failed", "query_id", q.queryID, "user", q.user, "kind", kind, "code", ex.Code, "status", ex.Status, "err", ex.Message)
	h := q.w.Header()
	h.Del("Content-Encoding")
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("X-ClickHouse-Exception-Code", strconv.Itoa(ex.Code))
	if ex.Name != "" {
		h.Set("X-ClickHouse-Exception-Name", ex.Name)
	}
	q.w.WriteHeader(ex.Status)
	io.WriteString(q.w, ex.Message+"\n")
}

// settingLiteral renders a URL-parameter setting as name=value for a
// SETTINGS clause: numbers as they are, anything else quoted.
func settingLiteral(name, value string) (string, error) {
	if !isIdentifier(name) {
		return "", newException(codeSyntaxError, fmt.Sprintf("URL parameter %q is neither a setting name nor one this server knows", name))
	}
	if _, err := strconv.ParseFloat(value, 64); err == nil && !strings.ContainsAny(value, "xXnN") {
		return name + "=" + value, nil
	}
	return name + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(value) + "'", nil
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// contentType is the Content-Type ClickHouse sends for a format.
func contentType(format string) string {
	f := strings.ToLower(format)
	switch {
	case strings.HasPrefix(f, "json"):
		return "application/json; charset=UTF-8"
	case strings.HasPrefix(f, "csv"):
		return "text/csv; charset=UTF-8; header=absent"
	case strings.HasPrefix(f, "tabseparated"), strings.HasPrefix(f, "tsv"):
		return "text/tab-separated-values; charset=UTF-8"
	case f == "native", strings.HasPrefix(f, "rowbinary"), f == "parquet", f == "arrow", f == "orc":
		return "application/octet-stream"
	}
	return "text/plain; charset=UTF-8"
}
