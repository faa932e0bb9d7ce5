package device

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/stretchr/testify/require"
)

func spec(seed int64, devices int) Spec {
	return Spec{Devices: devices, Seed: seed, FailureShare: 0.15, FromFirmware: "1.4.2", ToFirmware: "1.5.0"}
}

func TestGenerateDeterministic(t *testing.T) {
	a, err := Generate(spec(7, 500))
	require.NoError(t, err)
	b, err := Generate(spec(7, 500))
	require.NoError(t, err)
	require.Equal(t, a, b, "same seed, same fleet")

	c, err := Generate(spec(8, 500))
	require.NoError(t, err)
	differ := func(f func(Profile) any) int {
		n := 0
		for i := range a {
			if f(a[i]) != f(c[i]) {
				n++
			}
		}
		return n
	}
	require.Equal(t, len(a), differ(func(p Profile) any { return p.ID }), "ids")
	require.Greater(t, differ(func(p Profile) any { return p.Region }), 300, "regions")
	require.Greater(t, differ(func(p Profile) any { return p.BatteryPct }), 490, "batteries")
	require.Greater(t, differ(func(p Profile) any { return p.Fate }), 50, "failures")

	// A smaller fleet is a prefix of a larger one with the same seed.
	small, err := Generate(spec(7, 100))
	require.NoError(t, err)
	require.Equal(t, a[:100], small)
}

func TestGenerateFailureShareKeepsIdentity(t *testing.T) {
	base, err := Generate(spec(3, 300))
	require.NoError(t, err)
	s := spec(3, 300)
	s.FailureShare = 0
	none, err := Generate(s)
	require.NoError(t, err)
	for i := range base {
		require.Equal(t, base[i].ID, none[i].ID)
		require.Equal(t, base[i].BatteryPct, none[i].BatteryPct)
		require.NotContains(t, []Fate{FatePartial, FateInstallFailed}, none[i].Fate)
	}
}

func TestGenerateFleetShape(t *testing.T) {
	const n = 5000
	fleet, err := Generate(spec(1, n))
	require.NoError(t, err)

	ids := make(map[string]bool)
	regions := make(map[string]int)
	failedByRegion := make(map[string]int)
	var low, charging, failed, partial, install, verify, boot, download, weak, weakDownload, unrecoverable, cycled int
	for _, p := range fleet {
		require.NoError(t, proto.ValidateID(p.ID), p.ID)
		require.False(t, ids[p.ID], "duplicate id %s", p.ID)
		ids[p.ID] = true
		require.NoError(t, proto.ValidateID(p.Region))
		require.GreaterOrEqual(t, p.BatteryPct, 0.0)
		require.LessOrEqual(t, p.BatteryPct, 100.0)
		require.GreaterOrEqual(t, p.RSSIMean, float64(proto.MinRSSI))
		require.LessOrEqual(t, p.RSSIMean, float64(proto.MaxRSSI))
		require.NotEmpty(t, p.Model)
		require.True(t, p.RolloutAt >= 0 && p.RolloutAt < 1, "rollout at %g", p.RolloutAt)
		require.True(t, p.TelemetryPhase >= 0 && p.TelemetryPhase < 1, "phase %g", p.TelemetryPhase)
		regions[p.Region]++
		if p.BatteryPct < 30 {
			low++
		}
		if p.Power == PowerMains {
			charging++
			require.True(t, p.Charging)
		}
		if p.Power == PowerCycled {
			cycled++
			require.Positive(t, p.ChargePeriod)
		}
		require.Positive(t, p.CapacityMAh)
		if p.WeakSignal() {
			weak++
		}
		switch p.Fate {
		case FatePartial:
			partial++
		case FateInstallFailed:
			install++
		case FateVerifyFailed:
			verify++
		case FateBootFailed:
			boot++
		case FateDownloadFailed:
			download++
			if p.WeakSignal() {
				weakDownload++
			}
		}
		if p.Unrecoverable {
			unrecoverable++
			require.Equal(t, FateBootFailed, p.Fate)
		}
		if p.Fate != FateUpdated && p.Fate != FateDownloadFailed {
			failed++
			failedByRegion[p.Region]++
		}
	}
	share := func(k int) float64 { return float64(k) / n }
	require.Len(t, regions, len(DefaultRegions()))
	require.GreaterOrEqual(t, len(regions), 8)
	require.InDelta(t, 0.175, share(low), 0.03, "share below 30 %% battery")
	require.InDelta(t, ChargingShare, share(charging), 0.02)
	// 0.15 times the weighted mean bias (about 1.14).
	require.InDelta(t, 0.17, share(failed), 0.03)
	require.InDelta(t, 0.35, float64(partial)/float64(failed), 0.05, "partial share of failures")
	require.InDelta(t, 0.30, float64(install)/float64(failed), 0.05, "install_failed share of failures")
	require.InDelta(t, 0.15, float64(verify)/float64(failed), 0.04, "verify_failed share of failures")
	require.InDelta(t, 0.20, float64(boot)/float64(failed), 0.04, "boot_failed share of failures")
	require.Positive(t, unrecoverable)
	require.InDelta(t, CycledChargingShare*(1-ChargingShare), share(cycled), 0.03)
	require.Positive(t, download)
	require.Less(t, share(download), 0.05)
	require.Greater(t, float64(weakDownload)/float64(weak), 5*float64(download-weakDownload)/float64(n-weak),
		"downloads fail far more often on a weak signal")
	require.Positive(t, weak)

	rate := func(r string) float64 { return float64(failedByRegion[r]) / float64(regions[r]) }
	require.Greater(t, rate("ap-south"), 2*rate("eu-north"), "regional bias shows")
}

func TestGenerateRejectsBadSpec(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Spec)
	}{
		{"negative devices", func(s *Spec) { s.Devices = -1 }},
		{"no firmware", func(s *Spec) { s.ToFirmware = "" }},
		{"empty regions", func(s *Spec) { s.Regions = []Region{} }},
		{"bad region name", func(s *Spec) { s.Regions = []Region{{Name: "eu/west", Weight: 1, RSSIMean: -70}} }},
		{"zero weight", func(s *Spec) { s.Regions = []Region{{Name: "eu", Weight: 0, RSSIMean: -70}} }},
		{"rssi out of range", func(s *Spec) { s.Regions = []Region{{Name: "eu", Weight: 1, RSSIMean: 5}} }},
		{"unnamed model", func(s *Spec) { s.Models = []Model{{Weight: 1, CapacityMAh: 1}} }},
		{"no capacity", func(s *Spec) { s.Models = []Model{{Name: "m", Weight: 1}} }},
		{"waves not increasing", func(s *Spec) { s.Waves = []float64{10, 5, 100} }},
		{"waves short of 100", func(s *Spec) { s.Waves = []float64{1, 50} }},
		{"unknown bad build region", func(s *Spec) { s.BadBuild = BadBuild{Firmware: "1.5.0", Region: "mars"} }},
		{"negative bad build factor", func(s *Spec) { s.BadBuild = BadBuild{Firmware: "1.5.0", Factor: -1} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec(1, 10)
			tt.mod(&s)
			_, err := Generate(s)
			require.ErrorIs(t, err, ErrSpec)
		})
	}
}

func TestSensorsStayInRange(t *testing.T) {
	fleet, err := Generate(spec(2, 200))
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(1, 2))
	for _, p := range fleet {
		s := NewSensors(p)
		start := s.BatteryPct
		for i := range 50 {
			s.Advance(p, proto.StateInstalling, time.Duration(i+1)*10*time.Minute, 10*time.Minute, r)
			tm := proto.Telemetry{
				Header: proto.NewHeader(p.ID, time.Now(), 1), Region: p.Region, Firmware: "1", State: proto.StateInstalling,
				BatteryPct: s.BatteryPct, Charging: s.Charging, RSSI: s.RSSI, TemperatureC: s.TemperatureC, UptimeS: int64(s.Uptime / time.Second),
			}
			require.NoError(t, tm.Validate())
		}
		switch p.Power {
		case PowerMains:
			require.GreaterOrEqual(t, s.BatteryPct, start)
		case PowerBattery:
			if p.PlugInFor == 0 {
				require.Less(t, s.BatteryPct, start+1e-9)
				require.Equal(t, p.ChargeCycles, s.ChargeCycles)
			}
		}
		require.True(t, s.VoltageV > 2.5 && s.VoltageV <= 4.2, "voltage %g", s.VoltageV)
	}
}

func TestGenerateWavesAndBadBuild(t *testing.T) {
	s := spec(4, 20000)
	s.Waves = []float64{1, 10, 50, 100}
	base, err := Generate(s)
	require.NoError(t, err)
	s.BadBuild = BadBuild{Firmware: "1.5.0", Region: "eu-west"}
	bad, err := Generate(s)
	require.NoError(t, err)

	waves := make([]int, 4)
	failed := map[bool]int{}
	devices := map[bool]int{}
	for i, p := range bad {
		waves[p.Wave]++
		require.Equal(t, base[i].ID, p.ID, "the bad build changes failures, not identities")
		require.Equal(t, p.Region == "eu-west", p.BadBuild)
		if p.Region == "eu-west" {
			devices[true]++
			if base[i].Fate != FateUpdated && base[i].Fate != FateDownloadFailed {
				failed[false]++
			}
			if p.Fate != FateUpdated && p.Fate != FateDownloadFailed {
				failed[true]++
			}
		}
	}
	n := float64(len(bad))
	require.InDelta(t, 0.01, float64(waves[0])/n, 0.005)
	require.InDelta(t, 0.09, float64(waves[1])/n, 0.01)
	require.InDelta(t, 0.40, float64(waves[2])/n, 0.02)
	require.InDelta(t, 0.50, float64(waves[3])/n, 0.02)
	require.Greater(t, failed[true], 3*failed[false], "the bad build fails far more often in its region")
}

func TestChargingAt(t *testing.T) {
	p := Profile{Power: PowerCycled, ChargePeriod: 4 * time.Hour, ChargeOn: 0.25, ChargePhase: 0.5}
	require.False(t, p.ChargingAt(0))
	require.True(t, p.ChargingAt(2*time.Hour))
	require.True(t, p.ChargingAt(2*time.Hour+59*time.Minute))
	require.False(t, p.ChargingAt(3*time.Hour+time.Minute))
	require.True(t, Profile{Power: PowerMains}.ChargingAt(time.Hour))
	require.False(t, Profile{Power: PowerBattery}.ChargingAt(time.Hour))
	plugged := Profile{Power: PowerBattery, PlugInAt: 3 * time.Hour, PlugInFor: 2 * time.Hour}
	require.False(t, plugged.ChargingAt(3*time.Hour-time.Second))
	require.True(t, plugged.ChargingAt(4*time.Hour))
	require.False(t, plugged.ChargingAt(5*time.Hour))
}

// TestGeneratedSchedules: the generated chargers are daily, overnight
// (21:00-23:00 start) or in working hours (08:00-10:00), with the share
// of each; a share of the battery-only devices is plugged in once; the
// signal behaviours come in their shares.
func TestGeneratedSchedules(t *testing.T) {
	const n = 5000
	fleet, err := Generate(spec(3, n))
	require.NoError(t, err)
	var cycled, overnight, battery, plugged, movers, basement int
	for _, p := range fleet {
		switch p.Power {
		case PowerCycled:
			cycled++
			require.Equal(t, 24*time.Hour, p.ChargePeriod)
			require.True(t, p.ChargeOn >= 6.0/24 && p.ChargeOn <= 9.0/24, "on %g", p.ChargeOn)
			// The hour the charger comes on, counted from the run's start at noon.
			on := math.Mod((1-p.ChargePhase)*24+RunStartHour, 24)
			if p.Overnight {
				overnight++
				require.True(t, on >= 21-1e-6 && on <= 23+1e-6, "overnight charger on at %g h", on)
				require.False(t, p.ChargingAt(0), "an overnight charger is off at noon")
			} else {
				require.True(t, on >= 8-1e-6 && on <= 10+1e-6, "working-hours charger on at %g h", on)
				require.True(t, p.ChargingAt(0), "a working-hours charger is on at noon")
			}
		case PowerBattery:
			battery++
			if p.PlugInFor > 0 {
				plugged++
				require.True(t, p.PlugInAt >= 0 && p.PlugInAt <= 24*time.Hour)
				require.True(t, p.PlugInFor >= 2*time.Hour && p.PlugInFor <= 6*time.Hour)
			}
		}
		switch p.Signal {
		case SignalMover:
			movers++
			require.NotEqual(t, p.RSSIMeanAt(0), p.RSSIMeanAt(p.SignalPeriod/4))
		case SignalBasement:
			basement++
			require.Equal(t, p.RSSIMean, p.RSSIMeanAt(7*time.Hour))
		}
	}
	require.InDelta(t, OvernightShare, float64(overnight)/float64(cycled), 0.04)
	require.InDelta(t, PlugInShare, float64(plugged)/float64(battery), 0.04)
	require.InDelta(t, MoverShare, float64(movers)/n, 0.02)
	require.InDelta(t, BasementShare, float64(basement)/n, 0.01)
}
