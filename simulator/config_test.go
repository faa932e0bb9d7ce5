package simulator

import (
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
		name string
		cfg  Config
	}{
		{"unparsable broker", Config{Broker: "tcp://[::1"}},
		{"unknown scheme", Config{Broker: "http://127.0.0.1:1883"}},
		{"no host", Config{Broker: "tcp://"}},
		{"negative devices", Config{Devices: -1}},
		{"negative interval", Config{TelemetryInterval: -time.Second}},
		{"share above one", Config{FailureShare: 1.5}},
		{"negative spread", Config{RolloutSpread: -time.Second}},
		{"negative step", Config{StepDuration: -time.Second}},
		{"negative connect rate", Config{ConnectRate: -1}},
		{"same firmware", Config{FromFirmware: "2.0", ToFirmware: "2.0"}},
		{"control character in firmware", Config{ToFirmware: "2.0\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			require.ErrorIs(t, err, ErrConfig)
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
		require.Less(t, d.RolloutOffset, DefaultRolloutSpread)
		if d.RolloutEnd != "updated" {
			failing++
		}
	}
	require.Positive(t, failing)
}
