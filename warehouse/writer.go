package warehouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Sentinel errors of the writer.
var (
	// ErrWriterStopped means the writer's Run has returned; nothing more is taken.
	ErrWriterStopped = errors.New("warehouse: writer stopped")
	// ErrFaultInjected is what a tripped FaultSwitch fails inserts with
	// unless it was given an error of its own.
	ErrFaultInjected = errors.New("warehouse: fault injected")
)

// FaultSwitch makes the inserts of the writers it is given to fail on
// demand, before they reach the engine: the warehouse outage a test or a
// drill needs, on an engine that cannot be cut off from outside (the
// embedded one). The zero value passes every insert; a nil *FaultSwitch
// too. Safe for concurrent use.
type FaultSwitch struct {
	err atomic.Pointer[error]
}

// Fail makes every insert fail with err (ErrFaultInjected when nil) until Heal.
func (f *FaultSwitch) Fail(err error) {
	if err == nil {
		err = ErrFaultInjected
	}
	f.err.Store(&err)
}

// Heal lets inserts through again.
func (f *FaultSwitch) Heal() { f.err.Store(nil) }

// Err returns the error inserts fail with now, or nil.
func (f *FaultSwitch) Err() error {
	if f == nil {
		return nil
	}
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

// FlushInfo describes one insert attempt of a Writer, for metrics.
type FlushInfo struct {
	// Table is the writer's table.
	Table string
	// Rows and Bytes are the batch's size; Bytes is an estimate of the
	// rows' encoded size.
	Rows, Bytes int
	// Took is how long the attempt took.
	Took time.Duration
	// Attempt counts attempts of this batch, from 1.
	Attempt int
	// Err is the attempt's error; nil means the batch is committed.
	Err error
}

// The defaults of a zero WriterConfig's batch bounds, exported so that
// flags state them once.
const (
	// DefaultMaxRows is WriterConfig.MaxRows's default.
	DefaultMaxRows = 10000
	// DefaultMaxDelay is WriterConfig.MaxDelay's default.
	DefaultMaxDelay = 250 * time.Millisecond
	// DefaultMaxBytes is WriterConfig.MaxBytes's default: 16 MiB.
	DefaultMaxBytes = 16 << 20
)

// WriterConfig configures a Writer. The zero value works.
type WriterConfig struct {
	// MaxRows flushes a batch when it holds this many rows. Default 10000.
	MaxRows int
	// MaxDelay flushes a batch this long after its first row. Default 250ms.
	MaxDelay time.Duration
	// MaxBytes flushes a batch when its rows' estimated encoded size
	// reaches this many bytes. Default 16 MiB.
	MaxBytes int
	// MaxPending is how many rows may wait for a flush before Add blocks:
	// the backpressure that keeps memory bounded when the warehouse is slow.
	// Default 4 * MaxRows.
	MaxPending int
	// MinBackoff and MaxBackoff bound the wait between retries of a failed
	// insert; each failure doubles it, with jitter. Defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// ShutdownTimeout bounds the final flush after Run's context ends.
	// Default 10s.
	ShutdownTimeout time.Duration
	// Logger receives retries and failures. Default: discarded.
	Logger *slog.Logger
	// OnFlush, when set, is called from the writer's goroutine after every
	// insert attempt, failed or not, before the rows' done callbacks run.
	// It must not block. Default: none.
	OnFlush func(FlushInfo)
	// Fault, when set, fails inserts while it is tripped. Default: none.
	Fault *FaultSwitch
}

func (c *WriterConfig) ensureDefaults() {
	if c.MaxRows <= 0 {
		c.MaxRows = DefaultMaxRows
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = DefaultMaxDelay
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 4 * c.MaxRows
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// WriterStats are a writer's counters since it was made.
type WriterStats struct {
	// Rows is the number of rows committed.
	Rows int64
	// Batches is the number of batches committed.
	Batches int64
	// Failures is the number of failed insert attempts (each retried).
	Failures int64
	// Degraded is true while the last insert attempt failed.
	Degraded bool
	// DegradedSince is when the current run of failures began; zero when
	// not degraded.
	DegradedSince time.Time
	// Pending is the number of rows taken by Add and not yet committed.
	Pending int64
}

// Writer batches rows of one table and inserts them, flushing on MaxRows,
// MaxBytes or MaxDelay, whichever comes first. A failed insert is retried with capped
// exponential backoff until it succeeds or the writer stops; rows are never
// reordered or dropped while it runs. Each row's done callback runs only
// after the batch holding it is committed, which is how the ingestor
// acknowledges MQTT messages after, and only after, they are stored.
type Writer[T any] struct {
	db    *DB
	table string
	cfg   WriterConfig
	in    chan item[T]
	done  chan struct{}

	rows, batches, failures atomic.Int64
	pending                 atomic.Int64
	degraded                atomic.Bool
	degradedSince           atomic.Int64 // unix nanoseconds
}

type item[T any] struct {
	row  T
	size int
	done func()
}

// NewWriter returns a writer into table. Start it with Run.
func NewWriter[T any](db *DB, table string, cfg WriterConfig) *Writer[T] {
	cfg.ensureDefaults()
	return &Writer[T]{db: db, table: table, cfg: cfg, in: make(chan item[T], cfg.MaxPending), done: make(chan struct{})}
}

// Add queues row. done, which may be nil, runs after the row is committed.
// Add blocks while MaxPending rows wait, and returns ctx's error if ctx ends
// first, or ErrWriterStopped once Run has returned.
func (w *Writer[T]) Add(ctx context.Context, row T, done func()) error {
	select {
	case <-w.done:
		return ErrWriterStopped
	default:
	}
	select {
	case w.in <- item[T]{row: row, size: rowBytes(&row), done: done}:
		w.pending.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-w.done:
		return ErrWriterStopped
	}
}

// Stats returns the writer's counters.
func (w *Writer[T]) Stats() WriterStats {
	st := WriterStats{Rows: w.rows.Load(), Batches: w.batches.Load(), Failures: w.failures.Load(), Degraded: w.degraded.Load(), Pending: w.pending.Load()}
	if since := w.degradedSince.Load(); st.Degraded && since != 0 {
		st.DegradedSince = time.Unix(0, since)
	}
	return st
}

// Run flushes batches until ctx ends, then flushes what was queued before
// it ended (bounded by ShutdownTimeout) and returns. Rows it could not
// commit by then are not acknowledged: their done callbacks never run.
func (w *Writer[T]) Run(ctx context.Context) error {
	defer close(w.done)
	batch := make([]item[T], 0, w.cfg.MaxRows)
	bytes := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case it := <-w.in:
			if len(batch) == 0 {
				timer.Reset(w.cfg.MaxDelay)
			}
			batch = append(batch, it)
			bytes += it.size
			if len(batch) < w.cfg.MaxRows && bytes < w.cfg.MaxBytes {
				continue
			}
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return w.drain(batch)
		}
		timer.Stop()
		if !w.flush(ctx, batch) {
			return w.drain(batch)
		}
		batch, bytes = batch[:0], 0
	}
}

// drain flushes batch and everything already queued, with a fresh deadline.
func (w *Writer[T]) drain(batch []item[T]) error {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.ShutdownTimeout)
	defer cancel()
	for {
		bytes := 0
		for _, it := range batch {
			bytes += it.size
		}
		for len(batch) < w.cfg.MaxRows && bytes < w.cfg.MaxBytes {
			select {
			case it := <-w.in:
				batch = append(batch, it)
				bytes += it.size
				continue
			default:
			}
			break
		}
		if len(batch) == 0 {
			return nil
		}
		if !w.flush(ctx, batch) {
			return ctx.Err()
		}
		batch = batch[:0]
	}
}

// flush inserts batch, retrying until it commits or ctx ends, and runs the
// done callbacks on success. It reports whether the batch committed.
func (w *Writer[T]) flush(ctx context.Context, batch []item[T]) bool {
	if len(batch) == 0 {
		return true
	}
	rows := make([]T, len(batch))
	size := 0
	for i, it := range batch {
		rows[i] = it.row
		size += it.size
	}
	backoff := w.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := w.cfg.Fault.Err()
		if err != nil {
			err = fmt.Errorf("warehouse: insert %d rows into %s: %w", len(rows), w.table, err)
		} else {
			err = Insert(ctx, w.db, w.table, rows)
		}
		if w.cfg.OnFlush != nil {
			w.cfg.OnFlush(FlushInfo{Table: w.table, Rows: len(rows), Bytes: size, Took: time.Since(start), Attempt: attempt, Err: err})
		}
		if err == nil {
			break
		}
		w.failures.Add(1)
		if !w.degraded.Swap(true) {
			w.degradedSince.Store(start.UnixNano())
			w.cfg.Logger.Error("warehouse degraded: insert failing; holding rows unacknowledged and retrying", "table", w.table, "rows", len(rows), "err", err)
		}
		if ctx.Err() != nil {
			w.cfg.Logger.Error("giving up on batch at shutdown; its rows stay unacknowledged", "table", w.table, "rows", len(rows), "err", err)
			return false
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		w.cfg.Logger.Warn("insert failed; retrying", "table", w.table, "rows", len(rows), "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			// One last try with the shutdown budget happens in drain.
			w.cfg.Logger.Warn("stopping with a failed batch pending", "table", w.table, "rows", len(rows))
			return false
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
	}
	if w.degraded.Swap(false) {
		since := time.Unix(0, w.degradedSince.Swap(0))
		w.cfg.Logger.Info("warehouse insert recovered", "table", w.table, "degraded_for", time.Since(since).Round(time.Millisecond))
	}
	w.rows.Add(int64(len(rows)))
	w.pending.Add(-int64(len(rows)))
	w.batches.Add(1)
	for _, it := range batch {
		if it.done != nil {
			it.done()
		}
	}
	return true
}

// rowBytes estimates a row's encoded size for MaxBytes: the variable-length
// strings plus a fixed share for the rest.
func rowBytes(r any) int {
	switch r := r.(type) {
	case *TelemetryRow:
		return 96 + len(r.DeviceID) + len(r.Region) + len(r.Firmware) + len(r.State)
	case *StatusRow:
		return 64 + len(r.DeviceID) + len(r.Region) + len(r.State) + len(r.Firmware) + len(r.TargetFirmware) +
			len(r.Detail) + len(r.CommandID) + len(r.Action) + len(r.Outcome)
	case *DeadLetterRow:
		return 32 + len(r.Topic) + len(r.Reason) + len(r.Error) + len(r.Payload)
	}
	return 256
}
