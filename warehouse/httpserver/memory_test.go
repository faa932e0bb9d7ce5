package httpserver

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAnalystMemoryLimitKeepsIngestCommitting: the memory-hungry analyst
// query of issue 20, SELECT uniqExact(number) FROM numbers(1e9) as the
// read-only user, is cut off by the role's memory limit
// (MEMORY_LIMIT_EXCEEDED) while an ingest stream through the same server
// keeps committing: every batch succeeds, before and after it. The engine
// runs one query at a time, so a batch sent while the analyst's query runs
// waits for it to be cut off; the limit is what bounds that wait. The
// role's limit here is 512 MiB rather than the default 2 GiB, to spare the
// shared test machine; the query needs over 16 GiB either way.
func TestAnalystMemoryLimitKeepsIngestCommitting(t *testing.T) {
	addr, _ := serve(t, Config{UsersFile: testUsers, ReadOnly: RoleLimits{MaxQueryMemory: 512 << 20}})
	httpCase{user: writer, pass: writerPass, body: "CREATE TABLE IF NOT EXISTS ingest_stream (batch UInt64, n UInt64) ENGINE = MergeTree ORDER BY (batch, n)"}.check(t, addr)
	httpCase{user: writer, pass: writerPass, body: "TRUNCATE TABLE ingest_stream"}.check(t, addr)

	const rowsPerBatch, maxBatches = 10, 5000
	var committed atomic.Int64
	var slowest atomic.Int64 // ns
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- func() error {
			for b := 0; b < maxBatches; b++ {
				select {
				case <-stop:
					return nil
				default:
				}
				var rows strings.Builder
				for n := 0; n < rowsPerBatch; n++ {
					fmt.Fprintf(&rows, "{\"batch\":%d,\"n\":%d}\n", b, n)
				}
				req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/?query=INSERT+INTO+ingest_stream+FORMAT+JSONEachRow", strings.NewReader(rows.String()))
				if err != nil {
					return err
				}
				req.SetBasicAuth(writer, writerPass)
				sent := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return fmt.Errorf("batch %d: %w", b, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("batch %d: %d %s", b, resp.StatusCode, body)
				}
				if d := int64(time.Since(sent)); d > slowest.Load() {
					slowest.Store(d)
				}
				committed.Add(1)
			}
			return nil
		}()
	}()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}()
	require.Eventually(t, func() bool { return committed.Load() >= 3 }, time.Minute, time.Millisecond, "the ingest stream commits")

	started := time.Now()
	resp, body := httpCase{user: reader, pass: readerPass, body: "SELECT uniqExact(number) FROM numbers(1e9)"}.do(t, addr)
	cutOff := time.Since(started)
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode, body)
	require.Equal(t, "241", resp.Header.Get("X-ClickHouse-Exception-Code"), body)
	require.Contains(t, body, "MEMORY_LIMIT_EXCEEDED")
	at := committed.Load()
	require.Eventually(t, func() bool { return committed.Load() >= at+10 }, time.Minute, time.Millisecond, "the ingest stream keeps committing after the cut-off")
	close(stop)
	require.NoError(t, <-done, "every ingest batch succeeded")
	n := committed.Load()
	httpCase{user: reader, pass: readerPass, body: "SELECT count() FROM ingest_stream", wantBody: fmt.Sprintf("%d\n", n*rowsPerBatch)}.check(t, addr)
	t.Logf("analyst query cut off after %s; %d batches committed, %d of them after the cut-off; slowest batch %s",
		cutOff.Round(time.Millisecond), n, n-at, time.Duration(slowest.Load()).Round(time.Millisecond))
}
