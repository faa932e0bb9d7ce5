package analytics_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/analytics"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

func TestLibrary(t *testing.T) {
	qs, err := analytics.Queries()
	require.NoError(t, err)
	require.NotEmpty(t, qs)
	for _, q := range qs {
		require.NotEmpty(t, q.Name)
		require.NotEmpty(t, q.Title, "query %s needs a title", q.Name)
		require.NotEmpty(t, q.Doc, "query %s needs a why", q.Name)
		// What an analyst checks a number against (issue 18).
		for _, part := range []string{"Unit:", "Denominator", "Excludes:"} {
			require.Contains(t, q.Doc, part, "query %s's header states its %s", q.Name, part)
		}
		require.NotContains(t, q.Doc, "empty:", "query %s: the empty: line is Query.Empty, not doc", q.Name)
	}
	for _, name := range []string{"stuck_devices", "failure_hotspots"} {
		q, err := analytics.Get(name)
		require.NoError(t, err)
		require.NotEmpty(t, q.Empty, "%s says why it can be empty on a short run", name)
	}
	_, err = analytics.Get("nope")
	require.ErrorIs(t, err, analytics.ErrUnknownQuery)
	require.ErrorContains(t, err, "regional_ranking")
}

// fleetEvents builds status events for a fixture fleet: per region, how many
// devices update to firmware and how many of those go partial (and, to check
// the query ignores them, other failures and repeats).
func fleetEvents(firmware string, plan map[string][2]int) []warehouse.StatusRow {
	var rows []warehouse.StatusRow
	ts := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	for region, p := range plan {
		devices, partial := p[0], p[1]
		for d := 0; d < devices; d++ {
			id := fmt.Sprintf("%s-%s-%03d", region, firmware, d)
			states := []string{"idle", "downloading", "verifying", "installing"}
			if d < partial {
				// Partial twice (a retry that failed again) must count once.
				states = append(states, "partial", "installing", "partial")
			} else if d == partial {
				states = append(states, "install_failed")
			} else {
				states = append(states, "rebooting", "updated")
			}
			for i, s := range states {
				rows = append(rows, warehouse.StatusRow{
					DeviceID: id, Region: region, TS: ts.Add(time.Duration(i) * time.Second), Seq: uint64(i + 1),
					State: s, Firmware: "1.4.2", TargetFirmware: firmware, ReceivedAt: ts,
				})
			}
		}
	}
	return rows
}

func TestRegionalRanking(t *testing.T) {
	ctx := context.Background()
	db := warehousetest.Open(t)
	rows := append(
		fleetEvents("1.5.0", map[string][2]int{"eu-west": {10, 1}, "us-east": {20, 6}, "ap-south": {10, 3}, "sa-east": {5, 0}}),
		fleetEvents("1.6.0", map[string][2]int{"eu-west": {4, 2}, "us-east": {8, 1}})...,
	)
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableStatusEvents, rows))
	// Redelivered events must not change the result.
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableStatusEvents, rows[:40]))

	res, err := analytics.Run(ctx, db, "regional_ranking", analytics.Filter{})
	require.NoError(t, err)
	require.Equal(t, []string{"firmware", "rank", "region", "devices", "partial", "failed_any", "partial_rate"}, names(res))
	// Worked out by hand: partial/devices per region; us-east and ap-south
	// tie at 0.3 and share rank 1, so the next rank is 3 (RANK, not DENSE_RANK).
	// failed_any adds the one install_failed device of each region (when it has
	// more devices than partial ones).
	require.Equal(t, [][]string{
		{"1.5.0", "1", "ap-south", "10", "3", "4", "0.3"},
		{"1.5.0", "1", "us-east", "20", "6", "7", "0.3"},
		{"1.5.0", "3", "eu-west", "10", "1", "2", "0.1"},
		{"1.5.0", "4", "sa-east", "5", "0", "1", "0"},
		{"1.6.0", "1", "eu-west", "4", "2", "3", "0.5"},
		{"1.6.0", "2", "us-east", "8", "1", "2", "0.125"},
	}, res.Rows)
}

func names(r *warehouse.Result) []string {
	var out []string
	for _, c := range r.Columns {
		out = append(out, c.Name)
	}
	return out
}
