package httpserver

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// escape is a query that tries to leave the warehouse: read a host file,
// reach the network, run a process, or lift a limit. {canary} is a host
// file's path, {dir} its directory, {loop} a loopback URL and {hostport}
// its address, both of a listener the test opened.
type escape struct {
	name   string
	query  string
	params url.Values
}

// escapes is the escape table: every row must be refused for every role.
// The first two are the ones issue 20 found open on main (backquotes
// around the table function's name got past the text guard).
var escapes = []escape{
	{name: "backquoted file", query: "SELECT * FROM `file`('{canary}', 'LineAsString')"},
	{name: "backquoted url", query: "SELECT * FROM `url`('{loop}', 'LineAsString')"},
	{name: "double-quoted file", query: `SELECT * FROM "file"('{canary}', 'LineAsString')`},
	{name: "plain file", query: "SELECT * FROM file('{canary}', 'LineAsString')"},
	{name: "upper case FILE", query: "SELECT * FROM FILE('{canary}', 'LineAsString')"},
	{name: "mixed case backquoted", query: "SELECT * FROM `FiLe`('{canary}', 'LineAsString')"},
	{name: "comment before the parenthesis", query: "SELECT * FROM `file`/* x */('{canary}', 'LineAsString')"},
	{name: "line comment inside", query: "SELECT * FROM -- c\n`url` -- d\n('{loop}', 'LineAsString')"},
	{name: "relative path", query: "SELECT * FROM `file`('../../../../../../..{canary}', 'LineAsString')"},
	{name: "glob", query: "SELECT * FROM `file`('{dir}/*', 'LineAsString')"},
	{name: "unicode look-alike name", query: "SELECT * FROM `fіle`('{canary}', 'LineAsString')"}, // Cyrillic і
	{name: "fullwidth look-alike", query: "SELECT * FROM ｆｉｌｅ('{canary}', 'LineAsString')"},
	{name: "nested subqueries", query: "SELECT * FROM (SELECT * FROM (SELECT * FROM `file`('{canary}', 'LineAsString')))"},
	{name: "CTE", query: "WITH x AS (SELECT * FROM `file`('{canary}', 'LineAsString')) SELECT * FROM x"},
	{name: "IN subquery", query: "SELECT 1 WHERE 'a' IN (SELECT * FROM `url`('{loop}', 'LineAsString'))"},
	{name: "JOIN", query: "SELECT * FROM numbers(1) AS n CROSS JOIN `file`('{canary}', 'LineAsString') AS f"},
	{name: "UNION ALL", query: "SELECT 'x' UNION ALL SELECT * FROM `file`('{canary}', 'LineAsString')"},
	{name: "view() table function", query: "SELECT * FROM view(SELECT * FROM `file`('{canary}', 'LineAsString'))"},
	{name: "scalar file()", query: "SELECT file('{canary}')"},
	{name: "scalar backquoted file()", query: "SELECT `file`('{canary}')"},
	{name: "scalar file() in a subquery", query: "SELECT * FROM (SELECT lower(`FILE`('{canary}')) AS s)"},
	{name: "DESCRIBE infers from the file", query: "DESCRIBE TABLE `file`('{canary}', 'CSVWithNames')"},
	{name: "s3", query: "SELECT * FROM `s3`('{loop}/b/k', 'LineAsString')"},
	{name: "remote", query: "SELECT * FROM `remote`('{hostport}', system.one)"},
	{name: "mysql", query: "SELECT * FROM `mysql`('{hostport}', 'db', 't', 'u', 'p')"},
	{name: "executable", query: "SELECT * FROM `executable`('cat {canary}', 'LineAsString', 's String')"},
	{name: "urlCluster", query: "SELECT * FROM `urlCluster`('default', '{loop}', 'LineAsString')"},
	{name: "loop over file", query: "SELECT * FROM loop(`file`('{canary}', 'LineAsString')) LIMIT 1"},
	{name: "INSERT INTO FUNCTION file", query: "INSERT INTO FUNCTION `file`('{dir}/out.tsv', 'TSV', 's String') SELECT 'x'"},
	{name: "CREATE TABLE ENGINE = File", query: "CREATE TABLE esc_file (s String) ENGINE = File(LineAsString, '{canary}')"},
	{name: "CREATE TABLE ENGINE = URL", query: "CREATE TABLE esc_url (s String) ENGINE = URL('{loop}', LineAsString)"},
	{name: "CREATE TABLE ENGINE = Executable", query: "CREATE TABLE esc_exec (s String) ENGINE = Executable('x.sh', TabSeparated)"},
	{name: "CREATE TABLE AS file()", query: "CREATE TABLE esc_as AS `file`('{canary}', 'LineAsString')"},
	{name: "CREATE VIEW over file()", query: "CREATE VIEW esc_view AS SELECT * FROM `file`('{canary}', 'LineAsString')"},
	{name: "CREATE DICTIONARY from a file", query: "CREATE DICTIONARY esc_dict (s String) PRIMARY KEY s SOURCE(FILE(path '{canary}' format 'LineAsString')) LAYOUT(FLAT()) LIFETIME(0)"},
	{name: "CREATE DICTIONARY over HTTP", query: "CREATE DICTIONARY esc_dict2 (s String) PRIMARY KEY s SOURCE(HTTP(url '{loop}' format 'TSV')) LAYOUT(FLAT()) LIFETIME(0)"},
	{name: "CREATE DATABASE ENGINE = Filesystem", query: "CREATE DATABASE esc_fs ENGINE = Filesystem('{dir}')"},
	{name: "ATTACH TABLE FROM a path", query: "ATTACH TABLE esc_attach FROM '{dir}' (s String) ENGINE = MergeTree ORDER BY s"},
	{name: "BACKUP to a file", query: "BACKUP TABLE telemetry TO File('{dir}/backup')"},
	{name: "INTO OUTFILE", query: "SELECT 1 INTO OUTFILE '{dir}/out.tsv'"},
	{name: "FROM INFILE", query: "INSERT INTO dead_letters FROM INFILE '{canary}' FORMAT LineAsString"},
	{name: "multi-statement", query: "SELECT 1; SELECT * FROM `file`('{canary}', 'LineAsString')"},
	{name: "SETTINGS lifts the memory limit", query: "SELECT 1 SETTINGS max_memory_usage = 0"},
	{name: "SETTINGS in a subquery lifts the limit", query: "SELECT * FROM (SELECT getSetting('max_memory_usage') SETTINGS max_memory_usage = 0)"},
	{name: "SETTINGS in a CTE lifts the limit", query: "WITH x AS (SELECT 1 AS a SETTINGS max_memory_usage = 0) SELECT * FROM x"},
	{name: "SETTINGS in INSERT SELECT's subquery", query: "INSERT INTO dead_letters (topic) SELECT * FROM (SELECT 't' SETTINGS max_memory_usage = 0)"},
	{name: "CREATE VIEW with SETTINGS", query: "CREATE VIEW esc_sview AS SELECT getSetting('max_memory_usage') AS m SETTINGS max_memory_usage = 0"},
	{name: "SETTINGS readonly lifted", query: "SELECT * FROM (SELECT 1 SETTINGS readonly = 0)"},
	{name: "SETTINGS lifts the engine's total", query: "SELECT 1 SETTINGS max_memory_usage_for_user = 0"},
	{name: "SETTINGS template from a host file", query: "SELECT 1 FORMAT Template SETTINGS format_template_resultset = '{canary}'"},
	{name: "URL setting lifts the memory limit", query: "SELECT 1", params: url.Values{"max_memory_usage": {"0"}}},
	{name: "URL setting lifts the engine's total", query: "SELECT 1", params: url.Values{"max_memory_usage_for_user": {"0"}}},
	{name: "URL setting names a host file", query: "SELECT 1 FORMAT Template", params: url.Values{"format_template_resultset": {"{canary}"}}},
	{name: "URL setting points at a schema registry", query: "SELECT 1 FORMAT AvroConfluent", params: url.Values{"format_avro_schema_registry_url": {"{loop}"}}},
	{name: "SYSTEM SHUTDOWN", query: "SYSTEM SHUTDOWN"},
	{name: "CREATE FUNCTION", query: "CREATE FUNCTION esc_fn AS (x) -> x"},
}

// canaryEnv is a host file with a secret and a loopback listener that
// counts the requests reaching it: what an escape would read or reach.
type canaryEnv struct {
	secret, path, dir string
	srv               *httptest.Server
	hits              atomic.Int64
}

func newCanaryEnv(t testing.TB) *canaryEnv {
	t.Helper()
	var b [16]byte
	rand.Read(b[:])
	e := &canaryEnv{secret: "canary-" + hex.EncodeToString(b[:]), dir: t.TempDir()}
	e.path = filepath.Join(e.dir, "secret.csv")
	require.NoError(t, os.WriteFile(e.path, []byte("name\n"+e.secret+"\n"), 0o644))
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		e.hits.Add(1)
		io.WriteString(w, e.secret+"\n")
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *canaryEnv) expand(s string) string {
	return strings.NewReplacer("{canary}", e.path, "{dir}", e.dir, "{loop}", e.srv.URL,
		"{hostport}", strings.TrimPrefix(e.srv.URL, "http://")).Replace(s)
}

// TestEscapes runs the escape table as each role: every query is refused
// with a ClickHouse-style error, no response carries the canary file's
// secret, and nothing reaches the test's listener.
func TestEscapes(t *testing.T) {
	require.GreaterOrEqual(t, len(escapes), 30)
	env := newCanaryEnv(t)
	for _, role := range []struct{ name, user, pass string }{{"readwrite", writer, writerPass}, {"readonly", reader, readerPass}} {
		for _, e := range escapes {
			t.Run(role.name+"/"+e.name, func(t *testing.T) {
				params := url.Values{}
				for k, v := range e.params {
					params[k] = []string{env.expand(v[0])}
				}
				before := env.hits.Load()
				resp, body := httpCase{user: role.user, pass: role.pass, params: params, body: env.expand(e.query)}.do(t, testAddr)
				require.NotContains(t, body, env.secret, "the response carries the host file's contents")
				require.Equal(t, before, env.hits.Load(), "the server reached the test's loopback listener")
				require.GreaterOrEqual(t, resp.StatusCode, 400, "not refused: %s", body)
				code := resp.Header.Get("X-ClickHouse-Exception-Code")
				require.NotEmpty(t, code, body)
				require.True(t, strings.HasPrefix(body, fmt.Sprintf("Code: %s. DB::Exception: ", code)), body)
			})
		}
	}
}

// FuzzEscapes mutates the escape table's queries and sends each as a
// read-write or a read-only user: whatever the engine makes of it, no
// response may carry the canary file's secret and nothing may reach the
// test's loopback listener. (`make test` runs it for a few seconds; the
// seeds run in every `go test`.)
func FuzzEscapes(f *testing.F) {
	env := newCanaryEnv(f)
	for _, e := range escapes {
		f.Add(env.expand(e.query), false)
		f.Add(env.expand(e.query), true)
	}
	f.Fuzz(func(t *testing.T, query string, readonly bool) {
		user, pass := writer, writerPass
		if readonly {
			user, pass = reader, readerPass
		}
		before := env.hits.Load()
		_, body := httpCase{user: user, pass: pass, body: query}.do(t, testAddr)
		require.NotContains(t, body, env.secret, "the response carries the host file's contents")
		require.Equal(t, before, env.hits.Load(), "the server reached the test's loopback listener")
	})
}
