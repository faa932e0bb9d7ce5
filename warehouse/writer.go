package warehouse

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// ErrWriterStopped means the writer's Run has returned; nothing more is taken.
var ErrWriterStopped = errors.New("warehouse: writer stopped")

// WriterConfig configures a Writer. The zero value works.
type WriterConfig struct {
	// MaxRows flushes a batch when it holds this many rows. Default 10000.
	MaxRows int
	// MaxDelay flushes a batch this long after its first row. Default 250ms.
	MaxDelay time.Duration
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
}

func (c *WriterConfig) ensureDefaults() {
	if c.MaxRows <= 0 {
		c.MaxRows = 10000
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = 250 * time.Millisecond
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
}

// Writer batches rows of one table and inserts them, flushing on MaxRows or
// MaxDelay, whichever comes first. A failed insert is retried with capped
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
	degraded                atomic.Bool
}

type item[T any] struct {
	row  T
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
	case w.in <- item[T]{row: row, done: done}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-w.done:
		return ErrWriterStopped
	}
}

// Stats returns the writer's counters.
func (w *Writer[T]) Stats() WriterStats {
	return WriterStats{Rows: w.rows.Load(), Batches: w.batches.Load(), Failures: w.failures.Load(), Degraded: w.degraded.Load()}
}

// Run flushes batches until ctx ends, then flushes what was queued before
// it ended (bounded by ShutdownTimeout) and returns. Rows it could not
// commit by then are not acknowledged: their done callbacks never run.
func (w *Writer[T]) Run(ctx context.Context) error {
	defer close(w.done)
	batch := make([]item[T], 0, w.cfg.MaxRows)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case it := <-w.in:
			if len(batch) == 0 {
				timer.Reset(w.cfg.MaxDelay)
			}
			batch = append(batch, it)
			if len(batch) < w.cfg.MaxRows {
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
		batch = batch[:0]
	}
}

// drain flushes batch and everything already queued, with a fresh deadline.
func (w *Writer[T]) drain(batch []item[T]) error {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.ShutdownTimeout)
	defer cancel()
	for {
		for len(batch) < w.cfg.MaxRows {
			select {
			case it := <-w.in:
				batch = append(batch, it)
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
	for i, it := range batch {
		rows[i] = it.row
	}
	backoff := w.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		err := Insert(ctx, w.db, w.table, rows)
		if err == nil {
			break
		}
		w.failures.Add(1)
		w.degraded.Store(true)
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
		w.cfg.Logger.Info("warehouse insert recovered", "table", w.table)
	}
	w.rows.Add(int64(len(rows)))
	w.batches.Add(1)
	for _, it := range batch {
		if it.done != nil {
			it.done()
		}
	}
	return true
}
