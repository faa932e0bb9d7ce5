package simulator

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNewDefaults(t *testing.T) {
	f, err := New(Config{Devices: 3})
	require.NoError(t, err)
	c := f.cfg
	require.Equal(t, DefaultBroker, c.Broker)
	require.Equal(t, 3, c.Devices)
	require.Equal(t, int64(DefaultSeed), c.Seed)
	require.Equal(t, DefaultTelemetryInterval, c.TelemetryInterval)
	require.Equal(t, DefaultFailureShare, c.FailureShare)
	require.Equal(t, DefaultFromFirmware, c.FromFirmware)
	require.Equal(t, DefaultToFirmware, c.ToFirmware)
	require.Equal(t, DefaultRolloutSpread, c.RolloutSpread)
	require.Equal(t, DefaultStepDuration, c.StepDuration)
	require.Equal(t, DefaultConnectRate, c.ConnectRate)
	require.NotNil(t, c.Logger)
	require.Len(t, f.Devices(), 3)

	f, err = New(Config{})
	require.NoError(t, err)
	require.Len(t, f.Devices(), DefaultDevices)

	f, err = New(Config{Devices: 1, FailureShare: -1})
	require.NoError(t, err)
	require.Zero(t, f.cfg.FailureShare, "negative share disables injected failures")
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"unparsable broker", Config{Broker: "tcp://[::1"}, "Broker"},
		{"unknown scheme", Config{Broker: "http://127.0.0.1:1883"}, "Broker"},
		{"no host", Config{Broker: "tcp://"}, "Broker"},
		{"negative devices", Config{Devices: -1}, "Devices"},
		{"negative conns", Config{Conns: -1}, "Conns"},
		{"more conns than devices", Config{Devices: 10, Conns: 11}, "Conns"},
		{"negative rate", Config{Rate: -5}, "Rate"},
		{"rate too high", Config{Devices: 10, Rate: 1e6}, "Rate"},
		{"negative interval", Config{TelemetryInterval: -time.Second}, "TelemetryInterval"},
		{"tiny interval", Config{TelemetryInterval: time.Millisecond}, "TelemetryInterval"},
		{"share above one", Config{FailureShare: 1.5}, "FailureShare"},
		{"negative spread", Config{RolloutSpread: -time.Second}, "RolloutSpread"},
		{"negative wave interval", Config{WaveInterval: -time.Second}, "WaveInterval"},
		{"waves not increasing", Config{Waves: []float64{10, 5, 100}}, "Waves"},
		{"waves short of 100", Config{Waves: []float64{1, 10}}, "Waves"},
		{"negative step", Config{StepDuration: -time.Second}, "StepDuration"},
		{"negative connect rate", Config{ConnectRate: -1}, "ConnectRate"},
		{"negative time scale", Config{TimeScale: -1}, "TimeScale"},
		{"negative horizon", Config{Horizon: -time.Hour}, "Horizon"},
		{"horizon without the run's length", Config{Horizon: 24 * time.Hour}, "RunFor"},
		{"same firmware", Config{FromFirmware: "2.0", ToFirmware: "2.0"}, "ToFirmware"},
		{"control character in firmware", Config{ToFirmware: "2.0\n"}, "ToFirmware"},
		{"bad build not the target", Config{BadBuild: "9.9.9"}, "BadBuild"},
		{"bad build region without bad build", Config{BadBuildRegion: "eu-west"}, "BadBuildRegion"},
		{"unknown bad build region", Config{BadBuild: DefaultToFirmware, BadBuildRegion: "mars"}, "BadBuildRegion"},
		{"bad build factor below one", Config{BadBuild: DefaultToFirmware, BadBuildFactor: 0.5}, "BadBuildFactor"},
		{"unknown region weight", Config{RegionWeights: map[string]float64{"mars": 1}}, "RegionWeights"},
		{"zero region weight", Config{RegionWeights: map[string]float64{"eu-west": 0}}, "RegionWeights"},
		{"missing credentials file", Config{CredentialsFile: "/nonexistent/creds"}, "CredentialsFile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			require.ErrorIs(t, err, ErrConfig)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tt.field, ce.Field, err.Error())
		})
	}
}

func TestRateSetsInterval(t *testing.T) {
	f, err := New(Config{Devices: 1000, Rate: 250})
	require.NoError(t, err)
	require.Equal(t, 4*time.Second, f.cfg.TelemetryInterval)
}

// TestHorizonSetsTimeScale: a horizon over the run's length is the time
// scale, whatever TimeScale says (the flag always sets it), so 90 s of run
// cover a day of device time and a device's clock ends the run at 24 h.
func TestHorizonSetsTimeScale(t *testing.T) {
	f, err := New(Config{Devices: 10, Horizon: DefaultEfficacyHorizon, RunFor: 90 * time.Second, TimeScale: DefaultTimeScale})
	require.NoError(t, err)
	require.Equal(t, 960.0, f.cfg.TimeScale)
	f, err = New(Config{Devices: 10})
	require.NoError(t, err)
	require.Equal(t, float64(DefaultTimeScale), f.cfg.TimeScale, "no horizon: the time scale decides")
}

func TestConnsSpreadDevices(t *testing.T) {
	f, err := New(Config{Devices: 10, Conns: 3})
	require.NoError(t, err)
	require.Len(t, f.conns, 3)
	sizes := []int{len(f.conns[0].slots), len(f.conns[1].slots), len(f.conns[2].slots)}
	require.Equal(t, []int{4, 3, 3}, sizes)
	require.False(t, f.conns[0].will, "a shared connection has no device's will")
	f, err = New(Config{Devices: 4})
	require.NoError(t, err)
	require.Len(t, f.conns, 4)
	require.True(t, f.conns[0].will)
	require.Equal(t, f.Devices()[0].ID, f.conns[0].id)
}

func TestReadCredentials(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Credentials
		err  string
	}{
		{"per device and shared", "# fleet\n\ndev-1,u1,p1\n*, fleet ,sh,ared\r\n",
			Credentials{"dev-1": {"u1", "p1"}, "*": {"fleet", "sh,ared"}}, ""},
		{"missing field", "dev-1,u1\n", nil, "line 1"},
		{"empty user", "dev-1,,p\n", nil, "line 1"},
		{"duplicate", "a,u,p\na,v,q\n", nil, "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadCredentials(strings.NewReader(tt.in))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			c, ok := got.For("dev-1")
			require.True(t, ok)
			require.Equal(t, "u1", c.Username)
			c, ok = got.For("someone-else")
			require.True(t, ok)
			require.Equal(t, "fleet", c.Username)
		})
	}
}

func TestDevicesDeterministic(t *testing.T) {
	devices := func(seed int64) []DeviceInfo {
		f, err := New(Config{Devices: 200, Seed: seed})
		require.NoError(t, err)
		return f.Devices()
	}
	a, b, c := devices(5), devices(5), devices(6)
	require.Equal(t, a, b, "same seed, same fleet")
	require.NotEqual(t, a, c)

	same := 0
	for i := range a {
		if a[i].Region == c[i].Region && a[i].BatteryPct == c[i].BatteryPct && a[i].RolloutEnd == c[i].RolloutEnd {
			same++
		}
		require.NotEqual(t, a[i].ID, c[i].ID)
	}
	require.Less(t, same, 20, "a different seed gives a different fleet")

	failing := 0
	for _, d := range a {
		require.Equal(t, DefaultFromFirmware, d.FromFirmware)
		require.Less(t, d.RolloutOffset, time.Duration(d.Wave)*DefaultRolloutSpread+DefaultRolloutSpread, "a wave every spread")
		require.GreaterOrEqual(t, d.RolloutOffset, time.Duration(d.Wave)*DefaultRolloutSpread)
		if d.RolloutEnd != "updated" {
			failing++
		}
	}
	require.Positive(t, failing)
}
