package warehouse

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
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

// The defaults of a zero WriterConfig, exported so that flags state them
// once.
const (
	// DefaultMaxRows is WriterConfig.MaxRows's default.
	DefaultMaxRows = 10000
	// DefaultMaxDelay is WriterConfig.MaxDelay's default.
	DefaultMaxDelay = 250 * time.Millisecond
	// DefaultMaxBytes is WriterConfig.MaxBytes's default: 16 MiB.
	DefaultMaxBytes = 16 << 20
	// DefaultMaxPartitions keeps an insert well under ClickHouse's default
	// max_partitions_per_insert_block (100; "Settings", ClickHouse docs)
	// and short: an insert writes a part per partition, in the table and
	// in each materialised view, so its time grows with its partitions.
	// Measured on 2 cores (ingestor's TestPoisonDays, embedded engine):
	// at load 22, inserts of 100 and 67 partitions took 3.5 s and 1.3 s;
	// at load 10 and falling, 64 took 0.10-0.15 s and 16 took 0.03-0.26 s.
	// With 16, a burst over many days holds the rows behind it for a
	// fraction of a second per insert, not seconds.
	DefaultMaxPartitions = 16
	// DefaultDegradedSlack is how much longer than MaxDelay a commit may
	// be outstanding before the writer is degraded: a full batch of 10,000
	// rows takes about 0.1 s to insert on the embedded engine (BENCHMARKS.md,
	// about 100k rows/s on 2 cores), so 5 s over the flush interval is a
	// warehouse in trouble, not a slow insert.
	DefaultDegradedSlack = 5 * time.Second
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
	// MaxPartitions is the most partitions one insert may span: a batch
	// spanning several is grouped by partition into several inserts. It
	// must not exceed the engine's max_partitions_per_insert_block, over
	// which ClickHouse refuses the whole insert (TOO_MANY_PARTS); an insert
	// refused that way is split further anyway. Default
	// DefaultMaxPartitions.
	MaxPartitions int
	// DegradedAfter is how long a row may wait for its commit before the
	// writer reports itself degraded (Stats.Degraded) and logs it, whatever
	// holds the commit up: inserts refused, or an insert that never
	// returns. Default MaxDelay + DefaultDegradedSlack.
	DegradedAfter time.Duration
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
	if c.MaxPartitions <= 0 {
		c.MaxPartitions = DefaultMaxPartitions
	}
	if c.DegradedAfter <= 0 {
		c.DegradedAfter = c.MaxDelay + DefaultDegradedSlack
	}
}

// WriterStats are a writer's counters since it was made.
type WriterStats struct {
	// Rows is the number of rows committed.
	Rows int64
	// Batches is the number of batches committed.
	Batches int64
	// Failures is the number of failed insert attempts.
	Failures int64
	// Rejected is the number of rows the engine refused for their data,
	// stored in dead_letters instead.
	Rejected int64
	// Degraded is true while the last insert attempt failed, or while a
	// row has waited longer than DegradedAfter for its commit.
	Degraded bool
	// DegradedSince is when the current run of failures began, or when the
	// outstanding commit's oldest row was taken, whichever is earlier;
	// zero when not degraded.
	DegradedSince time.Time
	// Pending is the number of rows taken by Add and not yet committed.
	Pending int64
}

// Writer batches rows of one table and inserts them, flushing on MaxRows,
// MaxBytes or MaxDelay, whichever comes first. A batch spanning several
// partitions goes in as several inserts grouped by partition, hot ones
// first, none spanning more than MaxPartitions, and the inserts of a burst
// over many partitions are spread over flushes so they never hold up the
// rows behind them for long (see flush). A failed insert is told apart by its ClickHouse error code
// (ClassifyInsertError): a retryable one is retried with capped exponential
// backoff until it succeeds or the writer stops; one that blames the data is
// bisected until the rows at fault are found, and those are stored in
// dead_letters with the engine's error instead, while the rest commit. No
// row is dropped while it runs. Each row's done callback runs only after
// the row is committed (or its dead letter is), which is how the ingestor
// acknowledges MQTT messages after, and only after, they are stored.
type Writer[T any] struct {
	db    *DB
	table string
	cfg   WriterConfig
	in    chan item[T]
	done  chan struct{}
	carry [][]item[T] // inserts a flush left to the next; Run's goroutine only

	rows, batches, failures atomic.Int64
	rejected                atomic.Int64
	pending                 atomic.Int64
	degraded                atomic.Bool
	degradedSince           atomic.Int64 // unix nanoseconds
	oldest                  atomic.Int64 // unix nanoseconds the oldest uncommitted row was taken; 0 when none
}

type item[T any] struct {
	row    T
	size   int
	part   int64 // the row's partition, see rowPartition
	taken  int64 // unix nanoseconds of Add
	done   func()
	letter DeadLetterFunc
}

// DeadLetterFunc returns the dead letter stored in place of a row the
// engine refused for its data: reason is RejectReason(err) and err the
// engine's error. The ingestor returns the MQTT message the row came from,
// so what is stored can be replayed. It runs on the writer's goroutine and
// must not block.
type DeadLetterFunc func(reason string, err error) DeadLetterRow

// NewWriter returns a writer into table. Start it with Run.
func NewWriter[T any](db *DB, table string, cfg WriterConfig) *Writer[T] {
	cfg.ensureDefaults()
	return &Writer[T]{db: db, table: table, cfg: cfg, in: make(chan item[T], cfg.MaxPending), done: make(chan struct{})}
}

// Add queues row. done, which may be nil, runs after the row is committed.
// A row the engine refuses for its data is stored in dead_letters as JSON,
// with the engine's error, and done runs once that is committed. Add blocks
// while MaxPending rows wait, and returns ctx's error if ctx ends first, or
// ErrWriterStopped once Run has returned.
func (w *Writer[T]) Add(ctx context.Context, row T, done func()) error {
	return w.AddWithDeadLetter(ctx, row, done, nil)
}

// AddWithDeadLetter is Add with the dead letter to store should the engine
// refuse row for its data; a nil letter stores the row as JSON.
func (w *Writer[T]) AddWithDeadLetter(ctx context.Context, row T, done func(), letter DeadLetterFunc) error {
	select {
	case <-w.done:
		return ErrWriterStopped
	default:
	}
	part, _ := rowPartition(&row)
	select {
	case w.in <- item[T]{row: row, size: rowBytes(&row), part: part, taken: time.Now().UnixNano(), done: done, letter: letter}:
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
	st := WriterStats{Rows: w.rows.Load(), Batches: w.batches.Load(), Failures: w.failures.Load(), Rejected: w.rejected.Load(),
		Degraded: w.degraded.Load(), Pending: w.pending.Load()}
	if since := w.degradedSince.Load(); st.Degraded && since != 0 {
		st.DegradedSince = time.Unix(0, since)
	}
	if since, ok := w.stalledSince(time.Now()); ok {
		st.Degraded = true
		if st.DegradedSince.IsZero() || since.Before(st.DegradedSince) {
			st.DegradedSince = since
		}
	}
	return st
}

// stalledSince reports whether a row has waited longer than DegradedAfter
// for its commit at now, and since when it has waited.
func (w *Writer[T]) stalledSince(now time.Time) (time.Time, bool) {
	oldest := w.oldest.Load()
	if oldest == 0 || now.UnixNano()-oldest <= int64(w.cfg.DegradedAfter) {
		return time.Time{}, false
	}
	return time.Unix(0, oldest), true
}

// Run flushes batches until ctx ends, then flushes what was queued before
// it ended (bounded by ShutdownTimeout) and returns. Rows it could not
// commit by then are not acknowledged: their done callbacks never run.
func (w *Writer[T]) Run(ctx context.Context) error {
	defer close(w.done)
	stopWatch := w.watch()
	defer stopWatch()
	batch := make([]item[T], 0, w.cfg.MaxRows)
	bytes := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case it := <-w.in:
			if len(batch) == 0 {
				timer.Reset(w.cfg.MaxDelay)
				w.oldest.CompareAndSwap(0, it.taken)
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
		if rest, ok := w.flush(ctx, batch); !ok {
			return w.drain(rest)
		}
		batch, bytes = batch[:0], 0
		if len(w.carry) > 0 {
			// Rows left for later: go on with them at once, unless new
			// rows come first, which go ahead of them.
			timer.Reset(0)
		}
	}
}

// watch starts the goroutine that logs when a commit has been outstanding
// longer than DegradedAfter, and when it no longer is: the writer's own
// goroutine cannot, while an insert hangs. The returned function stops it
// and waits for it.
func (w *Writer[T]) watch() (stop func()) {
	quit, exited := make(chan struct{}), make(chan struct{})
	tick := min(max(w.cfg.DegradedAfter/4, 10*time.Millisecond), time.Second)
	go func() {
		defer close(exited)
		t := time.NewTicker(tick)
		defer t.Stop()
		var stalled time.Time
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				since, ok := w.stalledSince(now)
				switch {
				case ok && stalled.IsZero():
					stalled = since
					w.cfg.Logger.Error("warehouse degraded: a commit is outstanding longer than the bound; holding rows unacknowledged",
						"table", w.table, "outstanding_for", now.Sub(since).Round(time.Millisecond), "bound", w.cfg.DegradedAfter, "pending", w.pending.Load())
				case !ok && !stalled.IsZero():
					w.cfg.Logger.Info("warehouse commit no longer outstanding", "table", w.table, "degraded_for", now.Sub(stalled).Round(time.Millisecond))
					stalled = time.Time{}
				}
			}
		}
	}()
	return func() { close(quit); <-exited }
}

// drain flushes batch, the rows carried over and everything already
// queued, with a fresh deadline.
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
		if len(batch) == 0 && len(w.carry) == 0 {
			return nil
		}
		if len(batch) > 0 {
			w.oldest.CompareAndSwap(0, batch[0].taken)
		}
		rest, ok := w.flush(ctx, batch)
		if !ok {
			w.cfg.Logger.Error("giving up at shutdown; rows stay unacknowledged", "table", w.table, "rows", len(rest))
			return ctx.Err()
		}
		batch = batch[:0]
	}
}

// flush commits batch, planned into inserts hot partitions first (see
// plan), then the inserts carried over from the last flush, each retried while
// its error is retryable, split on a non-retryable one down to the single
// rows at fault, which go to dead_letters. It runs each row's done
// callback once the row is settled (committed or dead-lettered). Once it
// has spent MaxDelay, the planned inserts still to make are carried over
// to the next flush, so rows arriving meanwhile go ahead of them: a burst
// over many partitions (a device replaying weeks of readings) costs every
// other row at most one flush interval. It reports whether every row was
// settled or carried over, and when not (ctx ended), the rows that were
// not.
func (w *Writer[T]) flush(ctx context.Context, batch []item[T]) (rest []item[T], ok bool) {
	var todo [][]item[T]
	if len(batch) > 0 {
		todo = plan(batch, w.cfg.MaxPartitions)
	}
	todo = append(todo, w.carry...)
	w.carry = nil
	if len(todo) == 0 {
		return nil, true
	}
	start := time.Now()
	// A stack of inserts still to make, the next on top; the bottom
	// planned of them are planned ones, the rest splits of a refused one.
	slices.Reverse(todo)
	planned, made := len(todo), 0
	for len(todo) > 0 {
		// Carry over once the budget is spent: after the first planned
		// insert, and never while a refused one is being split.
		if len(todo) == planned && made > 0 && time.Since(start) >= w.cfg.MaxDelay {
			break
		}
		chunk := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if len(todo) < planned {
			planned, made = len(todo), made+1
		}
		kind, err := w.insert(ctx, chunk)
		switch {
		case err == nil:
			w.rows.Add(int64(len(chunk)))
			w.pending.Add(-int64(len(chunk)))
			w.batches.Add(1)
			for _, it := range chunk {
				if it.done != nil {
					it.done()
				}
			}
		case kind == Retryable: // ctx ended
			w.oldest.Store(0)
			return unsettled(chunk, todo), false
		case kind == TooManyPartitions:
			a, b := splitPartitions(chunk)
			w.cfg.Logger.Warn("insert spans more partitions than the engine allows; splitting it", "table", w.table, "rows", len(chunk), "err", err)
			todo = append(todo, b, a)
		case len(chunk) > 1: // DataError: find the rows at fault
			half := len(chunk) / 2
			todo = append(todo, chunk[half:], chunk[:half])
		default:
			if !w.reject(ctx, chunk[0], err) {
				w.oldest.Store(0)
				return unsettled(chunk, todo), false
			}
		}
	}
	if len(todo) > 0 {
		// Copies: batch's array is the caller's to reuse.
		oldest := todo[0][0].taken
		for _, c := range slices.Backward(todo) {
			w.carry = append(w.carry, slices.Clone(c))
			for _, it := range c {
				oldest = min(oldest, it.taken)
			}
		}
		w.oldest.Store(oldest)
		return nil, true
	}
	w.oldest.Store(0)
	if w.degraded.Swap(false) {
		since := time.Unix(0, w.degradedSince.Swap(0))
		w.cfg.Logger.Info("warehouse insert recovered", "table", w.table, "degraded_for", time.Since(since).Round(time.Millisecond))
	}
	return nil, true
}

// insert inserts chunk, retrying while the error is retryable, until it
// commits (nil), fails in a way retrying cannot mend (that error and its
// kind), or ctx ends (ctx's error, Retryable).
func (w *Writer[T]) insert(ctx context.Context, chunk []item[T]) (ErrorKind, error) {
	rows := make([]T, len(chunk))
	size := 0
	for i, it := range chunk {
		rows[i] = it.row
		size += it.size
	}
	var kind ErrorKind
	err := w.retry(ctx, w.table, len(rows), size, func() (error, bool) {
		err := Insert(ctx, w.db, w.table, rows)
		if err == nil {
			return nil, false
		}
		kind = ClassifyInsertError(err)
		if kind == TooManyPartitions && !spansPartitions(chunk) {
			kind = Retryable // merges lag behind inserts: wait for them
		}
		return err, kind == Retryable
	})
	if err != nil && ctx.Err() != nil {
		return Retryable, err
	}
	return kind, err
}

// reject stores it in dead_letters in place of its row, which the engine
// refused with err, and settles it. It reports false if ctx ended first.
func (w *Writer[T]) reject(ctx context.Context, it item[T], err error) bool {
	reason := RejectReason(err)
	var dl DeadLetterRow
	if it.letter != nil {
		dl = it.letter(reason, err)
	} else {
		// No message behind the row: keep the row itself, and the table
		// it was for in the error, which names it.
		payload, jerr := json.Marshal(it.row)
		if jerr != nil {
			payload = fmt.Appendf(nil, "%+v", it.row)
		}
		size := len(payload)
		if len(payload) > MaxDeadLetterPayload {
			payload = payload[:MaxDeadLetterPayload]
		}
		dl = DeadLetterRow{ReceivedAt: time.Now().UTC(), Reason: reason, Error: err.Error(), Payload: string(payload), PayloadBytes: uint32(size)}
	}
	w.cfg.Logger.Warn("row refused by the engine; storing it as a dead letter", "table", w.table, "reason", dl.Reason, "err", err)
	letters := []DeadLetterRow{dl}
	// A dead letter is strings only: nothing in it for the engine to refuse,
	// so its every failure is the warehouse's and is retried.
	if derr := w.retry(ctx, TableDeadLetters, 1, rowBytes(&dl), func() (error, bool) {
		return Insert(ctx, w.db, TableDeadLetters, letters), true
	}); derr != nil {
		return false
	}
	w.rejected.Add(1)
	w.pending.Add(-1)
	if it.done != nil {
		it.done()
	}
	return true
}

// retry runs attempt until it succeeds, fails with again false, or ctx
// ends, backing off between attempts. Every attempt is reported to OnFlush
// and every failure counted; a retried failure marks the writer degraded
// until a batch commits. It returns the last attempt's error.
func (w *Writer[T]) retry(ctx context.Context, table string, rows, size int, attempt func() (err error, again bool)) error {
	backoff := w.cfg.MinBackoff
	for n := 1; ; n++ {
		start := time.Now()
		err, again := w.cfg.Fault.Err(), true
		if err != nil {
			err = fmt.Errorf("warehouse: insert %d rows into %s: %w", rows, table, err)
		} else {
			err, again = attempt()
		}
		if w.cfg.OnFlush != nil {
			w.cfg.OnFlush(FlushInfo{Table: table, Rows: rows, Bytes: size, Took: time.Since(start), Attempt: n, Err: err})
		}
		if err == nil {
			return nil
		}
		w.failures.Add(1)
		if !again {
			return err
		}
		if !w.degraded.Swap(true) {
			w.degradedSince.Store(start.UnixNano())
			w.cfg.Logger.Error("warehouse degraded: insert failing; holding rows unacknowledged and retrying", "table", table, "rows", rows, "err", err)
		}
		if ctx.Err() != nil {
			w.cfg.Logger.Error("giving up on batch at shutdown; its rows stay unacknowledged", "table", table, "rows", rows, "err", err)
			return err
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		w.cfg.Logger.Warn("insert failed; retrying", "table", table, "rows", rows, "attempt", n, "retry_in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			// One last try with the shutdown budget happens in drain.
			w.cfg.Logger.Warn("stopping with a failed batch pending", "table", table, "rows", rows)
			return err
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
	}
}

// unsettled is chunk and the inserts still to make, in one new slice (the
// chunks share the batch's array, which appending in place would clobber).
func unsettled[T any](chunk []item[T], todo [][]item[T]) []item[T] {
	rest := append([]item[T](nil), chunk...)
	for _, c := range slices.Backward(todo) {
		rest = append(rest, c...)
	}
	return rest
}

// plan orders the inserts of rows hot partitions first: partitions by
// the rows they hold, most first (ties: the later day first); the first
// insert holds one partition, each next one twice as many as the one
// before, up to max. The live stream's partition (today's) goes in the
// first, small, insert, and a burst spread over many days follows it in a
// few inserts (about log2 of its partitions), none spanning more than max.
// Rows of one partition keep their order.
func plan[T any](rows []item[T], max int) [][]item[T] {
	counts := map[int64]int{}
	for _, it := range rows {
		counts[it.part]++
	}
	if len(counts) == 1 {
		return [][]item[T]{rows}
	}
	parts := slices.Collect(maps.Keys(counts))
	slices.SortFunc(parts, func(a, b int64) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return cmp.Compare(b, a)
	})
	rank := make(map[int64]int, len(parts))
	for i, p := range parts {
		rank[p] = i
	}
	slices.SortStableFunc(rows, func(a, b item[T]) int { return cmp.Compare(rank[a.part], rank[b.part]) })
	var chunks [][]item[T]
	start, n, size := 0, 0, 1
	for i := 1; i < len(rows); i++ {
		if rows[i].part == rows[i-1].part {
			continue
		}
		if n++; n == size {
			chunks = append(chunks, rows[start:i])
			start, n, size = i, 0, min(2*size, max)
		}
	}
	return append(chunks, rows[start:])
}

// splitPartitions sorts chunk by partition and cuts it in two, each half
// holding about half of its partitions.
func splitPartitions[T any](chunk []item[T]) (a, b []item[T]) {
	slices.SortStableFunc(chunk, func(a, b item[T]) int { return cmp.Compare(a.part, b.part) })
	var bounds []int // indexes where a new partition starts
	for i := 1; i < len(chunk); i++ {
		if chunk[i].part != chunk[i-1].part {
			bounds = append(bounds, i)
		}
	}
	cut := bounds[len(bounds)/2]
	return chunk[:cut], chunk[cut:]
}

// spansPartitions reports whether chunk's rows fall in more than one partition.
func spansPartitions[T any](chunk []item[T]) bool {
	for _, it := range chunk[1:] {
		if it.part != chunk[0].part {
			return true
		}
	}
	return false
}

// rowPartition is the partition a row lands in, as the schema partitions
// its table (migration 1): toDate(ts) for telemetry, status_events,
// commands and decisions, toDate(received_at) for dead_letters, as days
// since 1970-01-01 in UTC, the columns' time zone. Other rows report
// false and count as one partition. TestRowPartitionMatchesSchema holds
// this to the tables' partition keys.
func rowPartition(r any) (int64, bool) {
	switch r := r.(type) {
	case *TelemetryRow:
		return utcDay(r.TS), true
	case *StatusRow:
		return utcDay(r.TS), true
	case *CommandRow:
		return utcDay(r.TS), true
	case *DecisionRow:
		return utcDay(r.TS), true
	case *DeadLetterRow:
		return utcDay(r.ReceivedAt), true
	}
	return 0, false
}

// utcDay is t's day as toDate gives it for a UTC column: days since the
// epoch, rounded down (before 1970 too).
func utcDay(t time.Time) int64 {
	const msPerDay = 24 * 60 * 60 * 1000
	ms := t.UnixMilli()
	d := ms / msPerDay
	if ms%msPerDay < 0 {
		d--
	}
	return d
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
