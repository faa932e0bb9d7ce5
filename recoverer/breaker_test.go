package recoverer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// TestQueryCohorts runs the breaker's query on the real engine: the
// warehouse view decides which cohorts trip, with the minimum sample, and
// only events inside the window count.
func TestQueryCohorts(t *testing.T) {
	db := warehousetest.Open(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	var rows []warehouse.StatusRow
	add := func(region string, n, failed, busy int, at time.Time) {
		for i := range n {
			s := proto.StateUpdated
			switch {
			case i < failed:
				s = proto.StatePartial
			case i < failed+busy:
				s = proto.StateInstalling
			}
			id := fmt.Sprintf("%s-%d-%d", region, at.Unix(), i)
			for seq, st := range []proto.State{proto.StateDownloading, s} {
				m := &proto.StatusEvent{Header: proto.NewHeader(id, at, uint64(seq+1)), Region: region, State: st, Firmware: "1.0.0", TargetFirmware: "1.1.0"}
				rows = append(rows, warehouse.StatusRowOf(m, at))
			}
		}
	}
	add("eu", 25, 20, 0, now.Add(-time.Minute))    // 80 %, at least 64 % with 95 % confidence: trips
	add("eu2", 25, 15, 0, now.Add(-time.Minute))   // 60 %, but of 25 it may well be 44 %: does not
	add("us", 25, 2, 0, now.Add(-time.Minute))     // 8 %: does not
	add("ap", 10, 9, 0, now.Add(-time.Minute))     // 90 % of too few: does not
	add("af", 30, 30, 0, now.Add(-30*time.Minute)) // outside the window
	// 18 failed, 4 updated, 18 still installing: 45 % of all who started,
	// but 82 % of the 22 whose update ended; the breaker does not wait
	// for the busy ones.
	add("sa", 40, 18, 18, now.Add(-time.Minute))
	require.NoError(t, warehouse.Insert(context.Background(), db, warehouse.TableStatusEvents, rows))

	cfg := Config{}
	cfg.ensureDefaults()
	got, err := queryCohorts(context.Background(), db, cfg, now)
	require.NoError(t, err)
	byRegion := map[string]CohortRate{}
	for _, c := range got {
		byRegion[c.Region] = c
	}
	require.Len(t, byRegion, 5, "%+v", got)
	require.Equal(t, CohortRate{Firmware: "1.1.0", Region: "eu", Devices: 25, FailedDevices: 20, FailureRate: 0.8, Tripped: true}, byRegion["eu"])
	require.False(t, byRegion["eu2"].Tripped)
	require.False(t, byRegion["us"].Tripped)
	require.False(t, byRegion["ap"].Tripped)
	require.Equal(t, CohortRate{Firmware: "1.1.0", Region: "sa", Devices: 22, FailedDevices: 18, FailureRate: 0.8182, Tripped: true}, byRegion["sa"])
}
