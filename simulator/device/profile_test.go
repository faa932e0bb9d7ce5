package device

import (
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
	var low, charging, failed, partial, install, download, weak int
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
		if p.Charging {
			charging++
		}
		if p.WeakSignal() {
			weak++
		}
		switch p.Fate {
		case FatePartial:
			partial++
		case FateInstallFailed:
			install++
		case FateDownloadFailed:
			download++
			require.True(t, p.WeakSignal(), "only weak-signal devices fail their download")
		}
		if p.Fate == FatePartial || p.Fate == FateInstallFailed {
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
	require.InDelta(t, 0.5, float64(partial)/float64(failed), 0.06, "partial vs install_failed")
	require.Positive(t, download)
	require.Less(t, share(download), 0.05)
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
		{"unnamed model", func(s *Spec) { s.Models = []Model{{Weight: 1}} }},
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
		for range 50 {
			s.Advance(p, proto.StateInstalling, 10*time.Minute, r)
			tm := proto.Telemetry{
				Header: proto.NewHeader(p.ID, time.Now(), 1), Region: p.Region, Firmware: "1", State: proto.StateInstalling,
				BatteryPct: s.BatteryPct, Charging: s.Charging, RSSI: s.RSSI, TemperatureC: s.TemperatureC, UptimeS: int64(s.Uptime / time.Second),
			}
			require.NoError(t, tm.Validate())
		}
		if p.Charging {
			require.GreaterOrEqual(t, s.BatteryPct, start)
		} else {
			require.Less(t, s.BatteryPct, start+1e-9)
		}
	}
}
