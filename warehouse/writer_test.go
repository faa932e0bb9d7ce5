package warehouse_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// TestWriterFlushes: a batch goes out at MaxRows, MaxBytes or MaxDelay,
// whichever comes first; OnFlush sees every attempt.
func TestWriterFlushes(t *testing.T) {
	db := warehousetest.Open(t)
	tests := []struct {
		name      string
		cfg       warehouse.WriterConfig
		rows      int
		wantBatch int // rows in the first batch
	}{
		{"rows", warehouse.WriterConfig{MaxRows: 10, MaxDelay: time.Hour}, 25, 10},
		{"bytes", warehouse.WriterConfig{MaxRows: 1000, MaxBytes: 1000, MaxDelay: time.Hour}, 25, 9}, // about 111 bytes a row
		{"delay", warehouse.WriterConfig{MaxRows: 1000, MaxDelay: 10 * time.Millisecond}, 5, 5},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var flushes []warehouse.FlushInfo
			tc.cfg.OnFlush = func(f warehouse.FlushInfo) { mu.Lock(); flushes = append(flushes, f); mu.Unlock() }
			table := fmt.Sprintf("writer_flush_%d", i)
			require.NoError(t, db.Exec(context.Background(), "CREATE TABLE "+table+" AS telemetry"))
			w := warehouse.NewWriter[warehouse.TelemetryRow](db, table, tc.cfg)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			var committed atomic.Int64
			for seq := range tc.rows {
				require.NoError(t, w.Add(ctx, warehouse.TelemetryRow{DeviceID: "dev-writer", Region: "eu-west", Seq: uint64(seq), TS: time.Now()}, func() { committed.Add(1) }))
			}
			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(flushes) > 0
			}, 10*time.Second, 5*time.Millisecond)
			cancel()
			require.NoError(t, <-done)
			require.EqualValues(t, tc.rows, committed.Load(), "the final flush commits the rest")
			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, tc.wantBatch, flushes[0].Rows)
			require.Equal(t, table, flushes[0].Table)
			require.NoError(t, flushes[0].Err)
			require.Zero(t, w.Stats().Pending)
		})
	}
}

// TestWriterFaultSwitch: while tripped, inserts fail before the engine,
// nothing is committed or acknowledged, the writer says it is degraded and
// since when; healed, the held rows commit.
func TestWriterFaultSwitch(t *testing.T) {
	db := warehousetest.Open(t)
	var fault warehouse.FaultSwitch
	boom := errors.New("disk on fire")
	fault.Fail(boom)
	var failed atomic.Int64
	w := warehouse.NewWriter[warehouse.TelemetryRow](db, warehouse.TableTelemetry, warehouse.WriterConfig{
		MaxRows: 5, MaxDelay: 5 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Fault: &fault,
		OnFlush: func(f warehouse.FlushInfo) {
			if errors.Is(f.Err, boom) {
				failed.Add(1)
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var committed atomic.Int64
	for seq := range 12 {
		require.NoError(t, w.Add(ctx, warehouse.TelemetryRow{DeviceID: "dev-fault", Region: "eu-west", Seq: uint64(seq), TS: time.Now()}, func() { committed.Add(1) }))
	}
	require.Eventually(t, func() bool { return failed.Load() >= 3 }, 10*time.Second, time.Millisecond)
	st := w.Stats()
	require.True(t, st.Degraded)
	require.False(t, st.DegradedSince.IsZero())
	require.EqualValues(t, 12, st.Pending)
	require.Zero(t, committed.Load())

	fault.Heal()
	require.Eventually(t, func() bool { return committed.Load() == 12 }, 10*time.Second, time.Millisecond)
	st = w.Stats()
	require.False(t, st.Degraded)
	require.True(t, st.DegradedSince.IsZero())
	require.Zero(t, st.Pending)
	cancel()
	require.NoError(t, <-done)
	n, err := db.QueryInt(context.Background(), "SELECT count() FROM telemetry WHERE device_id = 'dev-fault'")
	require.NoError(t, err)
	require.EqualValues(t, 12, n)
}
