package httpserver

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/warehouse"
)

// TestRoleLimits checks each role's bounds reach the engine as settings,
// a client may lower them from the URL but not raise them, and New refuses
// limits over the engine's ceiling.
func TestRoleLimits(t *testing.T) {
	engine, ok := testDB.EngineLimits()
	require.True(t, ok)
	require.Equal(t, int64(warehouse.DefaultEngineMaxQueryMemory), engine.MaxQueryMemory)

	_, err := New(Config{UsersFile: testUsers, ReadOnly: RoleLimits{MaxQueryMemory: engine.MaxQueryMemory + 1}}, testDB)
	require.ErrorIs(t, err, ErrBadLimits)
	_, err = New(Config{UsersFile: testUsers, QueryTimeout: time.Second, ReadWrite: RoleLimits{MaxExecutionTime: time.Minute}}, testDB)
	require.ErrorIs(t, err, ErrBadLimits)

	addr, srv := serve(t, Config{UsersFile: testUsers, QueryTimeout: 5 * time.Second,
		ReadOnly: RoleLimits{MaxResultRows: 5, MaxConcurrentQueries: 1}})
	ro, rw := DefaultReadOnlyLimits, srv.cfg.ReadWrite
	tests := []httpCase{
		{name: "read-only memory bound", user: reader, pass: readerPass, body: "SELECT getSetting('max_memory_usage'), getSetting('max_result_rows'), getSetting('max_execution_time')",
			wantBody: fmt.Sprintf("%d\t5\t5\n", ro.MaxQueryMemory)},
		{name: "read-write memory bound", user: writer, pass: writerPass, body: "SELECT getSetting('max_memory_usage'), getSetting('max_result_bytes')",
			wantBody: fmt.Sprintf("%d\t%d\n", rw.MaxQueryMemory, rw.MaxResultBytes)},
		{name: "a URL setting lowers the bound", user: reader, pass: readerPass, params: q("max_memory_usage", "1000000"), body: "SELECT getSetting('max_memory_usage')", wantBody: "1000000\n"},
		{name: "a URL setting may not raise it", user: reader, pass: readerPass, params: q("max_memory_usage", fmt.Sprint(ro.MaxQueryMemory+1)), body: "SELECT 1",
			wantStatus: http.StatusBadRequest, wantCode: codeSettingConstraintViolation},
		{name: "nor lift it", user: writer, pass: writerPass, params: q("max_result_rows", "0"), body: "SELECT 1",
			wantStatus: http.StatusBadRequest, wantCode: codeSettingConstraintViolation},
		{name: "result rows", user: reader, pass: readerPass, body: "SELECT number FROM numbers(10)", wantStatus: http.StatusInternalServerError, wantCode: 396},
		{name: "within the rows", user: reader, pass: readerPass, body: "SELECT number FROM numbers(5) FORMAT CSV", wantBody: "0\n1\n2\n3\n4\n"},
		{name: "a read-write user's SETTINGS stop at the engine's ceiling", user: writer, pass: writerPass, body: fmt.Sprintf("SELECT 1 SETTINGS max_memory_usage = %d", engine.MaxQueryMemory+1),
			wantStatus: http.StatusBadRequest, wantCode: codeSettingConstraintViolation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.check(t, addr) })
	}

	t.Run("concurrent queries per user", func(t *testing.T) {
		slow := make(chan int, 1)
		go func() {
			resp, _ := httpCase{user: reader, pass: readerPass, body: "SELECT sleep(0.9)"}.do(t, addr)
			slow <- resp.StatusCode
		}()
		require.Eventually(t, func() bool { return len(srv.slots) == 1 }, 10*time.Second, time.Millisecond, "the slow query holds its user's only slot")
		httpCase{user: reader, pass: readerPass, body: "SELECT 1", wantStatus: http.StatusServiceUnavailable, wantCode: codeTooManyQueries}.check(t, addr)
		httpCase{user: writer, pass: writerPass, body: "SELECT 2", wantBody: "2\n"}.check(t, addr)
		require.Equal(t, http.StatusOK, <-slow)
	})
}

// TestReloadUsers: users added to, or dropped from, the file take effect
// on ReloadUsers (SIGHUP in `sentinel warehouse`), a bad file keeps the
// old users, and a server without a file says it has none.
func TestReloadUsers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	require.NoError(t, AddUser(path, "old", "pw-old", RoleReadWrite))
	addr, srv := serve(t, Config{UsersFile: path})
	httpCase{user: "new", pass: "pw-new", body: "SELECT 1", wantStatus: http.StatusUnauthorized, wantCode: codeAuthenticationFailed}.check(t, addr)

	require.NoError(t, AddUser(path, "new", "pw-new", RoleReadOnly))
	n, err := srv.ReloadUsers()
	require.NoError(t, err)
	require.Equal(t, 2, n)
	httpCase{user: "new", pass: "pw-new", body: "SELECT 'in'", wantBody: "in\n"}.check(t, addr)
	httpCase{user: "new", pass: "pw-new", body: "DROP TABLE telemetry", wantStatus: http.StatusForbidden, wantCode: codeReadonly}.check(t, addr)

	require.NoError(t, os.WriteFile(path, []byte("broken\n"), 0o600))
	_, err = srv.ReloadUsers()
	require.ErrorIs(t, err, ErrBadUsersFile)
	httpCase{user: "old", pass: "pw-old", body: "SELECT 'still'", wantBody: "still\n"}.check(t, addr)

	_, anon := serve(t, Config{AllowAnonymous: true})
	_, err = anon.ReloadUsers()
	require.ErrorIs(t, err, ErrNoUsersFile)
}
