package analytics

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/sentinel-iot/sentinel/warehouse"
)

// GenerateSpec sizes a synthetic fleet history for benchmarks.
type GenerateSpec struct {
	// Rows is the number of status events to write.
	Rows int64
	// EventsPerDevice sets the fleet size: Rows / EventsPerDevice devices.
	// Default 50.
	EventsPerDevice int64
}

// Generate writes spec.Rows synthetic status events into db's
// status_events inside the engine (INSERT ... SELECT FROM numbers), with
// eight regions of different failure bias and two target firmwares, so
// the library's queries have realistic work. It reports progress to
// progress, one line per batch.
func Generate(ctx context.Context, db *warehouse.DB, spec GenerateSpec, progress io.Writer) error {
	if spec.Rows <= 0 {
		return fmt.Errorf("analytics: generate: rows must be positive, got %d", spec.Rows)
	}
	if spec.EventsPerDevice <= 0 {
		spec.EventsPerDevice = 50
	}
	devices := max(1, spec.Rows/spec.EventsPerDevice)
	const batch = 10_000_000
	start := time.Now()
	for off := int64(0); off < spec.Rows; off += batch {
		n := min(batch, spec.Rows-off)
		// Event k of device d is at minute k; its state depends on a hash
		// of (d, k) with a failure share that grows with the region index.
		q := fmt.Sprintf(`INSERT INTO status_events
SELECT
    concat('dev-', toString(d)) AS device_id,
    ['eu-west', 'eu-north', 'us-east', 'us-west', 'sa-east', 'ap-south', 'ap-northeast', 'af-south'][1 + r] AS region,
    toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + toIntervalSecond(k * 60 + d %% 60) AS ts,
    toUInt64(k + 1) AS seq,
    if(h %% 1000 < 20 + 15 * r,
       ['download_failed', 'verify_failed', 'install_failed', 'partial', 'partial', 'boot_failed'][1 + (h %% 6)],
       ['idle', 'downloading', 'verifying', 'installing', 'rebooting', 'updated'][1 + (h %% 6)]) AS state,
    '1.4.2' AS firmware,
    ['1.5.0', '1.6.0'][1 + d %% 2] AS target_firmware,
    '' AS detail, '' AS command_id, '' AS action, '' AS outcome,
    ts AS received_at,
    toUInt16(1 + d %% 4) AS wave
FROM (
    SELECT number %% %[1]d AS d, intDiv(number, %[1]d) AS k, cityHash64(number) AS h, cityHash64(number %% %[1]d) %% 8 AS r
    FROM numbers(%[2]d, %[3]d)
)`, devices, off, n)
		if err := db.Exec(ctx, q); err != nil {
			return fmt.Errorf("analytics: generate rows %d..%d: %w", off, off+n, err)
		}
		fmt.Fprintf(progress, "generated %d/%d rows (%d devices) in %s\n", off+n, spec.Rows, devices, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// Timing is how long one query took over several runs.
type Timing struct {
	// Query is the library name.
	Query string
	// Rows is how many rows the result had.
	Rows int
	// Runs are the wall times, sorted.
	Runs []time.Duration
}

// Median returns the middle run.
func (t Timing) Median() time.Duration { return t.Runs[len(t.Runs)/2] }

// Time runs each named query runs times (after one warm-up run) with f and
// returns the wall times.
func Time(ctx context.Context, db *warehouse.DB, names []string, f Filter, runs int) ([]Timing, error) {
	var out []Timing
	for _, name := range names {
		res, err := Run(ctx, db, name, f) // warm-up: caches, lazy loading
		if err != nil {
			return nil, err
		}
		t := Timing{Query: name, Rows: len(res.Rows)}
		for i := 0; i < runs; i++ {
			start := time.Now()
			if _, err := Run(ctx, db, name, f); err != nil {
				return nil, err
			}
			t.Runs = append(t.Runs, time.Since(start))
		}
		sort.Slice(t.Runs, func(i, j int) bool { return t.Runs[i] < t.Runs[j] })
		out = append(out, t)
	}
	return out, nil
}
