package broker_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/broker/hooks/limits"
)

func TestNewValidatesConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     broker.Config
		wantErr bool
	}{
		{name: "zero takes defaults", cfg: broker.Config{}},
		{name: "largest packet", cfg: broker.Config{MaxPacketSize: broker.MaxPacketSizeLimit}},
		{name: "packet too large", cfg: broker.Config{MaxPacketSize: broker.MaxPacketSizeLimit + 1}, wantErr: true},
		{name: "negative connections", cfg: broker.Config{Limits: broker.LimitsConfig{MaxConnections: -1}}, wantErr: true},
		{name: "one connection", cfg: broker.Config{Limits: broker.LimitsConfig{MaxConnections: 1}}},
		{name: "session expiry under 1s", cfg: broker.Config{Limits: broker.LimitsConfig{MaxSessionExpiry: time.Millisecond}}, wantErr: true},
		{name: "negative session expiry", cfg: broker.Config{Limits: broker.LimitsConfig{MaxSessionExpiry: -time.Hour}}, wantErr: true},
		{name: "message expiry under 1s", cfg: broker.Config{Limits: broker.LimitsConfig{MaxMessageExpiry: 500 * time.Millisecond}}, wantErr: true},
		{name: "expiries of 1s", cfg: broker.Config{Limits: broker.LimitsConfig{MaxSessionExpiry: time.Second, MaxMessageExpiry: time.Second}}},
		{name: "negative burst", cfg: broker.Config{Limits: broker.LimitsConfig{DeviceRate: limits.Rate{PerSecond: 1, Burst: -1}}}, wantErr: true},
		{name: "rate off", cfg: broker.Config{Limits: broker.LimitsConfig{DeviceRate: limits.Rate{PerSecond: -1}}}},
		{name: "TLS without a certificate", cfg: broker.Config{TLS: broker.TLSConfig{Addr: "127.0.0.1:0"}}, wantErr: true},
		{name: "TLS certificate without an address", cfg: broker.Config{TLS: broker.TLSConfig{CertFile: "c.pem", KeyFile: "k.pem"}}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := broker.New(tc.cfg)
			if tc.wantErr {
				require.ErrorIs(t, err, broker.ErrConfig)
				return
			}
			require.NoError(t, err)
			require.NoError(t, b.Close())
		})
	}
}
