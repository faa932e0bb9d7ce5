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

// rollout writes status events to the warehouse: n devices of region
// updating from one firmware to another, failed of them failing, busy of
// them still installing (last heard at `at`), the rest updated.
type rollout struct {
	n    int // devices added, for unique IDs
	rows []warehouse.StatusRow
	tel  []warehouse.TelemetryRow
}

func (r *rollout) add(region, from, to string, n, failed, busy int, at time.Time) {
	for i := range n {
		s := proto.StateUpdated
		switch {
		case i < failed:
			s = proto.StatePartial
		case i < failed+busy:
			s = proto.StateInstalling
		}
		r.n++
		id := fmt.Sprintf("%s-%s-%d", region, to, r.n)
		for seq, st := range []proto.State{proto.StateDownloading, s} {
			m := &proto.StatusEvent{Header: proto.NewHeader(id, at, uint64(seq+1)), Region: region, State: st, Firmware: from, TargetFirmware: to}
			r.rows = append(r.rows, warehouse.StatusRowOf(m, at))
		}
	}
}

// readings adds a device's readings on firmware fw, one a minute from at:
// battery falls by drain a reading off the charger, and uptime resets at
// every reading listed in reboots.
func (r *rollout) readings(region, id, fw string, at time.Time, n int, drain float64, reboots map[int]bool, charging map[int]bool) {
	battery, uptime := 90.0, int64(1000)
	for i := range n {
		ts := at.Add(time.Duration(i) * time.Minute)
		if reboots[i] {
			uptime = 5
		}
		m := &proto.Telemetry{Header: proto.NewHeader(id, ts, uint64(i+1)), Region: region, Firmware: fw, State: proto.StateIdle,
			BatteryPct: battery, Charging: charging[i], RSSI: -70, UptimeS: uptime}
		r.tel = append(r.tel, warehouse.TelemetryRowOf(m, ts))
		if !charging[i] && !charging[i+1] {
			battery -= drain
		} else {
			battery += 5
		}
		uptime += 60
	}
}

// TestQueryCounts runs the breaker's query on the real engine: cumulative
// cohort counts with silent devices as failures, the firmware each cohort
// came from, and release health from telemetry.
func TestQueryCounts(t *testing.T) {
	db := warehousetest.Open(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	var r rollout
	r.add("eu", "1.0.0", "1.1.0", 25, 5, 0, now.Add(-time.Minute))
	// Three devices went silent installing 10 minutes ago (deadline 5m):
	// failed; two installing a minute ago are still in time.
	r.add("eu", "1.0.0", "1.1.0", 3, 0, 3, now.Add(-10*time.Minute))
	r.add("eu", "1.0.0", "1.1.0", 2, 0, 2, now.Add(-time.Minute))
	// The previous rollout, hours ago: the baseline.
	r.add("eu", "0.9.0", "1.0.0", 40, 4, 0, now.Add(-5*time.Hour))
	r.add("us", "1.0.0", "1.1.0", 10, 1, 0, now.Add(-2*time.Minute))
	// Outside the lookback.
	r.add("ap", "1.0.0", "1.1.0", 10, 10, 0, now.Add(-48*time.Hour))
	// Release health: one device on 1.1.0 for an hour rebooting twice and
	// losing 1 point a minute, except across a charge; one on 1.0.0
	// losing 0.5 a minute, last heard 30 minutes ago (quiet).
	r.readings("eu", "h1", "1.1.0", now.Add(-61*time.Minute), 61, 1, map[int]bool{10: true, 40: true}, map[int]bool{30: true})
	r.readings("eu", "h2", "1.0.0", now.Add(-91*time.Minute), 61, 0.5, nil, nil)
	require.NoError(t, warehouse.Insert(context.Background(), db, warehouse.TableStatusEvents, r.rows))
	require.NoError(t, warehouse.Insert(context.Background(), db, warehouse.TableTelemetry, r.tel))

	cfg := Config{}
	cfg.ensureDefaults()
	got, err := queryCounts(context.Background(), db, cfg, now)
	require.NoError(t, err)
	by := map[string]Counts{}
	for _, c := range got {
		c.LastEvent = time.Time{}
		by[c.Firmware+"/"+c.Region] = c
	}
	require.Len(t, by, 3, "%+v", got)
	eu := by["1.1.0/eu"]
	require.Equal(t, "1.0.0", eu.FromFirmware)
	require.EqualValues(t, 30, eu.Devices)
	require.EqualValues(t, 28, eu.Settled, "25 ended, 3 silent past the deadline")
	require.EqualValues(t, 8, eu.Failed, "5 partial, 3 silent")
	require.EqualValues(t, 3, eu.Silent)
	require.EqualValues(t, 2, eu.Boots)
	require.InDelta(t, 1.0, eu.RunHours, 1e-9)
	require.InDelta(t, 58.0/60, eu.DrainHours, 1e-9, "the two minutes around the charge do not count")
	require.InDelta(t, 58, eu.Drain, 1e-6)
	require.EqualValues(t, 1, eu.Reporting)
	require.EqualValues(t, 0, eu.Quiet)
	base := by["1.0.0/eu"]
	require.Equal(t, "0.9.0", base.FromFirmware)
	require.EqualValues(t, 40, base.Settled)
	require.EqualValues(t, 4, base.Failed)
	require.InDelta(t, 30, base.Drain, 1e-6)
	require.EqualValues(t, 1, base.Reporting)
	require.EqualValues(t, 1, base.Quiet, "last heard 30 minutes ago")
	require.EqualValues(t, 10, by["1.1.0/us"].Settled)
}
