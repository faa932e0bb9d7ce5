package device

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
)

// healthRun updates a battery-powered device and runs it for an hour of
// run time (60 hours of device time at the test timing's scale) under
// rules, returning its readings on the new firmware.
func healthRun(t *testing.T, rules []ReleaseHealth) []*proto.Telemetry {
	t.Helper()
	p := profileWith(t, FateUpdated, func(p Profile) bool { return p.Power == PowerBattery && p.BatteryPct > 90 })
	d := NewDevice(p, timing())
	d.SetHealth(rules)
	var on []*proto.Telemetry
	for _, m := range d.Advance(time.Hour, wall, nil) {
		if tm, ok := m.Message.(*proto.Telemetry); ok && tm.Firmware == p.ToFirmware {
			on = append(on, tm)
		}
	}
	return on
}

// TestReleaseHealth checks each release-health behaviour against a
// healthy run of the same device: a crash loop resets uptime and raises
// boot_count at about its rate, a draining build drains about its factor
// faster, a build that cuts devices off leaves them quiet after the
// install, and a rule for another region changes nothing.
func TestReleaseHealth(t *testing.T) {
	fw := spec(11, 1).ToFirmware
	healthy := healthRun(t, nil)
	require.NotEmpty(t, healthy)
	resets := func(ms []*proto.Telemetry) int {
		n := 0
		for i := 1; i < len(ms); i++ {
			if ms[i].UptimeS < ms[i-1].UptimeS {
				n++
			}
		}
		return n
	}
	drained := func(ms []*proto.Telemetry) float64 { return ms[0].BatteryPct - ms[len(ms)-1].BatteryPct }
	require.Zero(t, resets(healthy), "a healthy build does not reboot")

	crash := healthRun(t, []ReleaseHealth{{Firmware: fw, CrashesPerHour: 0.5}})
	n := resets(crash)
	// 60 device-hours at 0.5 an hour: 30 expected; Poisson sd 5.5.
	require.InDelta(t, 30, n, 15, "crash reboots")
	require.EqualValues(t, n, crash[len(crash)-1].BootCount-crash[0].BootCount)

	drain := healthRun(t, []ReleaseHealth{{Firmware: fw, DrainFactor: 2}})
	require.InDelta(t, 2, drained(drain)/drained(healthy), 0.2, "drain factor")

	require.Len(t, healthRun(t, []ReleaseHealth{{Firmware: fw, DropShare: 1}}), 0, "cut off after the install")
	require.Equal(t, healthy, healthRun(t, []ReleaseHealth{{Firmware: fw, Region: "nowhere", CrashesPerHour: 5}}))

	require.ErrorIs(t, CheckHealth([]ReleaseHealth{{CrashesPerHour: 1}}), ErrHealth)
	require.ErrorIs(t, CheckHealth([]ReleaseHealth{{Firmware: fw, DropShare: 2}}), ErrHealth)
	require.NoError(t, CheckHealth([]ReleaseHealth{{Firmware: fw, CrashesPerHour: 6, DrainFactor: 2, DropShare: 0.1}}))
}
