package warehouse_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// runWriter runs w until the test ends and requires a clean return.
func runWriter[T any](t *testing.T, w *warehouse.Writer[T]) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return ctx
}

// flushLog records a writer's insert attempts.
type flushLog struct {
	mu      sync.Mutex
	flushes []warehouse.FlushInfo
}

func (l *flushLog) add(f warehouse.FlushInfo) {
	l.mu.Lock()
	l.flushes = append(l.flushes, f)
	l.mu.Unlock()
}

func (l *flushLog) all() []warehouse.FlushInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]warehouse.FlushInfo(nil), l.flushes...)
}

// TestWriterSplitsByPartition: one batch of readings over 150 days, more
// partitions than ClickHouse takes in one INSERT block (error 252), goes in
// as inserts of at most MaxPartitions partitions, none refused; with
// MaxPartitions set above the engine's limit, a refused insert is split
// until it fits. Either way every row commits where it belongs.
func TestWriterSplitsByPartition(t *testing.T) {
	db := warehousetest.Open(t)
	tests := []struct {
		name          string
		maxPartitions int
		days          int
		wantRefused   bool
	}{
		{"grouped under the engine's limit", 0, 150, false},
		// Inserts of 1, 2, 4, ... 128 partitions: the last is refused.
		{"split after the engine refuses", 1000, 260, true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			table := fmt.Sprintf("writer_partitions_%d", i)
			require.NoError(t, db.Exec(context.Background(), "CREATE TABLE "+table+" AS telemetry"))
			var log flushLog
			w := warehouse.NewWriter[warehouse.TelemetryRow](db, table, warehouse.WriterConfig{
				MaxRows: 1000, MaxDelay: 20 * time.Millisecond, MinBackoff: time.Millisecond, MaxPartitions: tc.maxPartitions, OnFlush: log.add,
			})
			ctx := runWriter(t, w)
			days, today := tc.days, 50
			now := time.Now().UTC()
			var committed atomic.Int64
			add := func(seq int, ts time.Time) {
				require.NoError(t, w.Add(ctx, warehouse.TelemetryRow{DeviceID: "dev-days", Region: "eu-west", Seq: uint64(seq), TS: ts, ReceivedAt: now},
					func() { committed.Add(1) }))
			}
			for d := range days { // interleaved with today's readings, as in a live batch
				add(d, now.AddDate(0, 0, -d-1))
				if d < today {
					add(1000+d, now)
				}
			}
			require.Eventually(t, func() bool { return committed.Load() == int64(days+today) }, 30*time.Second, 5*time.Millisecond)
			n, err := db.QueryInt(ctx, "SELECT count() FROM "+table)
			require.NoError(t, err)
			require.EqualValues(t, days+today, n)
			parts, err := db.QueryInt(ctx, "SELECT uniqExact(_partition_id) FROM "+table)
			require.NoError(t, err)
			require.EqualValues(t, days+1, parts, "each reading in its own day's partition")
			wrong, err := db.QueryInt(ctx, "SELECT count() FROM "+table+" WHERE seq < 1000 AND toDate(ts) != (SELECT toDate(max(ts)) FROM "+table+") - seq - 1")
			require.NoError(t, err)
			require.Zero(t, wrong, "each old reading on its own day")

			var refused int
			for _, f := range log.all() {
				if f.Err != nil {
					refused++
					code, _, ok := warehouse.ErrorCode(f.Err)
					require.True(t, ok, "%v", f.Err)
					require.Equal(t, warehouse.CodeTooManyParts, code, "%v", f.Err)
					require.Equal(t, warehouse.TooManyPartitions, warehouse.ClassifyInsertError(f.Err))
				} else {
					require.LessOrEqual(t, f.Rows, days+today)
				}
			}
			require.Equal(t, tc.wantRefused, refused > 0, "refused inserts: %d", refused)
			require.GreaterOrEqual(t, len(log.all())-refused, 2, "%d partitions take two inserts at least", days+1)
			st := w.Stats()
			require.Zero(t, st.Rejected)
			require.Zero(t, st.Pending)
			require.False(t, st.Degraded)
		})
	}
}

// checkedRow is a row of a table with a CHECK constraint: rows with a
// negative v are refused by the engine (VIOLATED_CONSTRAINT), a data error
// that lies in some rows of a batch and not others.
type checkedRow struct {
	ID uint64 `ch:"id" json:"id"`
	V  int32  `ch:"v" json:"v"`
}

// TestWriterBisectsRefusedRows runs on both engines: a batch the engine
// refuses for the data of a few rows is bisected until those rows are
// found; they go to dead_letters with the engine's error, the rest
// commit, and every row's done runs once.
func TestWriterBisectsRefusedRows(t *testing.T) {
	db := warehousetest.Open(t)
	engines := []struct {
		name string
		db   func(t *testing.T) *warehouse.DB
	}{
		{"embedded", func(*testing.T) *warehouse.DB { return db }},
		{"clickhouse-go over HTTP", func(t *testing.T) *warehouse.DB {
			sdb, err := warehouse.Open(context.Background(), warehousetest.ServeHTTP(t, db, nil), warehouse.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { sdb.Close() })
			return sdb
		}},
	}
	for i, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			table := fmt.Sprintf("writer_checked_%d", i)
			require.NoError(t, db.Exec(context.Background(), "CREATE TABLE "+table+
				" (id UInt64, v Int32, CONSTRAINT v_positive CHECK v >= 0) ENGINE = MergeTree ORDER BY id"))
			var log flushLog
			w := warehouse.NewWriter[checkedRow](eng.db(t), table, warehouse.WriterConfig{MaxRows: 64, MaxDelay: time.Hour, OnFlush: log.add})
			ctx := runWriter(t, w)
			bad := map[uint64]bool{3: true, 40: true, 41: true}
			var done sync.Map
			for id := range uint64(64) {
				v := int32(id)
				if bad[id] {
					v = -1
				}
				require.NoError(t, w.Add(ctx, checkedRow{ID: id, V: v}, func() {
					_, again := done.LoadOrStore(id, true)
					require.False(t, again, "done runs once for row %d", id)
				}))
			}
			require.Eventually(t, func() bool { return w.Stats().Pending == 0 }, 30*time.Second, 5*time.Millisecond)
			for id := range uint64(64) {
				_, ok := done.Load(id)
				require.True(t, ok, "row %d settled", id)
			}
			n, err := db.QueryInt(ctx, "SELECT count() FROM "+table)
			require.NoError(t, err)
			require.EqualValues(t, 64-len(bad), n, "the good rows commit")
			res, err := db.Query(ctx, "SELECT reason, error, payload FROM dead_letters WHERE error LIKE {t:String} ORDER BY payload",
				warehouse.WithParams(map[string]string{"t": "%" + table + "%"}))
			require.NoError(t, err)
			require.Len(t, res.Rows, len(bad), "the bad rows, and only they, are dead letters")
			for _, r := range res.Rows {
				require.Equal(t, "warehouse_violated_constraint", r[0])
				require.Contains(t, r[1], "v_positive", "the engine's own error")
				require.Contains(t, r[2], `"v":-1`, "the row itself")
			}
			st := w.Stats()
			require.EqualValues(t, len(bad), st.Rejected)
			require.EqualValues(t, 64-len(bad), st.Rows)
			require.False(t, st.Degraded, "a data error is no outage")
			var dataErrs int
			for _, f := range log.all() {
				if f.Err != nil {
					require.Equal(t, warehouse.DataError, warehouse.ClassifyInsertError(f.Err), "%v", f.Err)
					dataErrs++
				}
			}
			// Bisection: about 2 log2(64) refusals per bad row, far fewer than 64.
			require.Less(t, dataErrs, 40)
		})
	}
}

// TestWriterDeadLetterFunc: a row added with its own dead letter is stored
// as that letter, with the reason and error the writer passes.
func TestWriterDeadLetterFunc(t *testing.T) {
	db := warehousetest.Open(t)
	require.NoError(t, db.Exec(context.Background(), "CREATE TABLE writer_letter (id UInt64, v Int32, CONSTRAINT v_positive CHECK v >= 0) ENGINE = MergeTree ORDER BY id"))
	w := warehouse.NewWriter[checkedRow](db, "writer_letter", warehouse.WriterConfig{MaxRows: 2, MaxDelay: time.Hour})
	ctx := runWriter(t, w)
	var settled atomic.Int64
	require.NoError(t, w.AddWithDeadLetter(ctx, checkedRow{ID: 1, V: -5}, func() { settled.Add(1) },
		func(reason string, err error) warehouse.DeadLetterRow {
			return warehouse.DeadLetterRow{ReceivedAt: time.Now(), Topic: "fleet/eu-west/dev-x/telemetry", Reason: reason, Error: err.Error(), Payload: "original"}
		}))
	require.NoError(t, w.Add(ctx, checkedRow{ID: 2, V: 5}, func() { settled.Add(1) }))
	require.Eventually(t, func() bool { return settled.Load() == 2 }, 30*time.Second, 5*time.Millisecond)
	res, err := db.Query(ctx, "SELECT topic, reason, payload FROM dead_letters WHERE topic = 'fleet/eu-west/dev-x/telemetry'")
	require.NoError(t, err)
	require.Equal(t, [][]string{{"fleet/eu-west/dev-x/telemetry", "warehouse_violated_constraint", "original"}}, res.Rows)
}

// TestClassifyInsertError tells the kinds apart on real errors of both
// engines: what the data causes, and what an outage, a timeout, a lost
// connection or a schema problem causes.
func TestClassifyInsertError(t *testing.T) {
	db := warehousetest.Open(t)
	ctx := context.Background()
	require.NoError(t, db.Exec(ctx, "CREATE TABLE classify_checked (id UInt64, v Int32, CONSTRAINT v_positive CHECK v >= 0) ENGINE = MergeTree ORDER BY id"))
	sdb, err := warehouse.Open(ctx, warehousetest.ServeHTTP(t, db, nil), warehouse.Options{})
	require.NoError(t, err)
	defer sdb.Close()

	// A server that is gone, one that takes requests and never answers,
	// and a closed connection.
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	goneAddr := gone.Addr().String()
	gone.Close()
	var gate warehousetest.Gate
	dsn := warehousetest.ServeHTTP(t, db, gate.Wrap)
	gdb, err := warehouse.Open(ctx, dsn, warehouse.Options{})
	require.NoError(t, err)
	defer gdb.Close()
	closed, err := warehouse.Open(ctx, dsn, warehouse.Options{})
	require.NoError(t, err)
	require.NoError(t, closed.Close())

	days := make([]warehouse.TelemetryRow, 101)
	for i := range days {
		days[i] = warehouse.TelemetryRow{DeviceID: "dev-classify", Region: "eu-west", Seq: uint64(i), TS: time.Now().AddDate(0, 0, -i)}
	}
	bad := []checkedRow{{ID: 1, V: -1}}
	tests := []struct {
		name string
		err  func() error
		want warehouse.ErrorKind
	}{
		{"embedded: constraint violated", func() error { return warehouse.Insert(ctx, db, "classify_checked", bad) }, warehouse.DataError},
		{"server: constraint violated", func() error { return warehouse.Insert(ctx, sdb, "classify_checked", bad) }, warehouse.DataError},
		{"embedded: 101 partitions", func() error { return warehouse.Insert(ctx, db, warehouse.TableTelemetry, days) }, warehouse.TooManyPartitions},
		{"server: 101 partitions", func() error { return warehouse.Insert(ctx, sdb, warehouse.TableTelemetry, days) }, warehouse.TooManyPartitions},
		{"embedded: bad datetime", func() error {
			return db.Exec(ctx, "INSERT INTO classify_checked SELECT 1, toInt32(toDateTime('not a time'))")
		}, warehouse.DataError},
		{"embedded: unknown table", func() error { return warehouse.Insert(ctx, db, "no_such_table", bad) }, warehouse.Retryable},
		{"server: unknown table", func() error { return warehouse.Insert(ctx, sdb, "no_such_table", bad) }, warehouse.Retryable},
		{"server: connection refused", func() error {
			_, err := warehouse.Open(ctx, "http://"+goneAddr+"/default", warehouse.Options{})
			return err
		}, warehouse.Retryable},
		{"server: no answer", func() error {
			gate.Shut()
			defer gate.Open()
			c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			return warehouse.Insert(c, gdb, "classify_checked", []checkedRow{{ID: 2, V: 2}})
		}, warehouse.Retryable},
		{"context deadline", func() error {
			c, cancel := context.WithTimeout(ctx, 0)
			defer cancel()
			return warehouse.Insert(c, db, "classify_checked", bad)
		}, warehouse.Retryable},
		{"closed warehouse", func() error { return warehouse.Insert(ctx, closed, "classify_checked", bad) }, warehouse.Retryable},
		{"fault injected", func() error { return warehouse.ErrFaultInjected }, warehouse.Retryable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			require.Error(t, err)
			require.Equal(t, tc.want, warehouse.ClassifyInsertError(err), "%v", err)
		})
	}
}

// TestWriterDegradedWhileInsertHangs: an insert that never returns (a
// warehouse that took the request and hangs) makes the writer degraded
// once a row has waited longer than DegradedAfter, and the log says when
// it starts and ends; the rows commit when the warehouse answers again.
func TestWriterDegradedWhileInsertHangs(t *testing.T) {
	db := warehousetest.Open(t)
	var gate warehousetest.Gate
	sdb, err := warehouse.Open(context.Background(), warehousetest.ServeHTTP(t, db, gate.Wrap), warehouse.Options{})
	require.NoError(t, err)
	defer sdb.Close()
	var logs warehousetest.LogBuffer
	w := warehouse.NewWriter[warehouse.TelemetryRow](sdb, warehouse.TableTelemetry, warehouse.WriterConfig{
		MaxRows: 10, MaxDelay: 10 * time.Millisecond, DegradedAfter: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	ctx := runWriter(t, w)
	gate.Shut()
	var committed atomic.Int64
	for seq := range 5 {
		require.NoError(t, w.Add(ctx, warehouse.TelemetryRow{DeviceID: "dev-hang", Region: "eu-west", Seq: uint64(seq), TS: time.Now()}, func() { committed.Add(1) }))
	}
	require.Eventually(t, func() bool { return gate.Held() > 0 }, 10*time.Second, time.Millisecond, "the insert reaches the server")
	require.False(t, w.Stats().Degraded, "not before the bound")
	require.Eventually(t, func() bool { return w.Stats().Degraded }, 10*time.Second, 5*time.Millisecond)
	st := w.Stats()
	require.False(t, st.DegradedSince.IsZero())
	require.Zero(t, st.Failures, "nothing failed: the insert just never returns")
	require.Eventually(t, func() bool {
		return bytes.Contains(logs.Bytes(), []byte("commit is outstanding longer than the bound"))
	}, 10*time.Second, 5*time.Millisecond)
	require.Zero(t, committed.Load())

	gate.Open()
	require.Eventually(t, func() bool { return committed.Load() == 5 }, 30*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return !w.Stats().Degraded }, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return bytes.Contains(logs.Bytes(), []byte("commit no longer outstanding")) }, 10*time.Second, 5*time.Millisecond)
}

// TestRowPartitionMatchesSchema: the writer groups rows by the partition
// key it assumes for each table (toDate of ts, or of received_at for dead
// letters); a migration that changes a key must change the writer too.
func TestRowPartitionMatchesSchema(t *testing.T) {
	db := warehousetest.Open(t)
	want := map[string]string{
		warehouse.TableTelemetry: "toDate(ts)", warehouse.TableStatusEvents: "toDate(ts)", warehouse.TableCommands: "toDate(ts)",
		warehouse.TableDecisions: "toDate(ts)", warehouse.TableDeadLetters: "toDate(received_at)",
	}
	for table, key := range want {
		res, err := db.Query(context.Background(), "SELECT partition_key FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
			warehouse.WithParams(map[string]string{"t": table}))
		require.NoError(t, err)
		require.Equal(t, [][]string{{key}}, res.Rows, table)
	}
}
