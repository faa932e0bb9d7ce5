package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/bench/inproc"
	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
)

func TestBrokerDeniesByDefault(t *testing.T) {
	err := dispatch(context.Background(), []string{"broker", "--listen", "127.0.0.1:0"}, &bytes.Buffer{})
	require.ErrorIs(t, err, errNobody)
}

func TestBrokerFlagsAndEnv(t *testing.T) {
	t.Setenv("SENTINEL_DEVICE_RATE", "7.5")
	t.Setenv("SENTINEL_CREDENTIALS", "/etc/sentinel/credentials.txt")
	fs := newFlags("broker", "")
	var bf brokerFlags
	bf.add(fs)
	require.NoError(t, parseFlags(fs, []string{"--max-packet-size", "4096", "--max-session-expiry", "1h", "--max-connections", "10"}))
	var cfg broker.Config
	require.NoError(t, bf.apply(&cfg))
	require.Equal(t, "/etc/sentinel/credentials.txt", cfg.Auth.CredentialsFile)
	require.False(t, cfg.Auth.AllowAnonymous)
	require.EqualValues(t, 4096, cfg.MaxPacketSize)
	require.Equal(t, 7.5, cfg.Limits.DeviceRate.PerSecond)
	require.Equal(t, 200, cfg.Limits.DeviceRate.Burst)
	require.Equal(t, time.Hour, cfg.Limits.MaxSessionExpiry)
	require.EqualValues(t, 10, cfg.Limits.MaxConnections)
	require.EqualValues(t, 1024, cfg.Limits.ReceiveMaximum)

	for _, args := range [][]string{
		{"--allow-anonymous", "--tls-listen", ":8883"},
		{"--allow-anonymous", "--receive-maximum", "70000"},
		{"--allow-anonymous", "--max-packet-size", "300000000"},
		{"--allow-anonymous", "--max-inflight", "-1"},
		{"--allow-anonymous", "--max-session-expiry", "10ms"},
	} {
		fs := newFlags("broker", "")
		var bf brokerFlags
		bf.add(fs)
		fs.SetOutput(io.Discard)
		err := parseFlags(fs, args)
		var cfg broker.Config
		if err == nil {
			err = bf.apply(&cfg)
		}
		if err == nil {
			var b *broker.Broker
			if b, err = broker.New(cfg); err == nil {
				b.Close()
			}
		}
		require.Error(t, err, strings.Join(args, " "))
	}
}

func TestBrokerAddUser(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.txt")
	var out bytes.Buffer
	require.NoError(t, dispatch(context.Background(), []string{"broker", "adduser", "--credentials", path, "--cost", "4", "--role", "service", "sentinel-ingestor"}, &out))
	pw := strings.TrimSpace(strings.TrimPrefix(out.String()[strings.Index(out.String(), "password: "):], "password: "))
	require.Len(t, pw, 22, out.String())
	require.Error(t, dispatch(context.Background(), []string{"broker", "adduser", "--credentials", path, "--role", "root", "x"}, &out))
	users, err := auth.LoadUsers(path)
	require.NoError(t, err)
	usr, ok := users.Verify("sentinel-ingestor", []byte(pw))
	require.True(t, ok)
	require.Equal(t, auth.RoleService, usr.Role)
}

func TestDeviceKeyFile(t *testing.T) {
	dir := t.TempDir()
	short, good := filepath.Join(dir, "short.key"), filepath.Join(dir, "fleet.key")
	require.NoError(t, os.WriteFile(short, []byte("too short\n"), 0o600))
	require.NoError(t, os.WriteFile(good, []byte("  0123456789abcdef0123456789abcdef\n"), 0o600))
	for file, wantErr := range map[string]bool{short: true, good: false, filepath.Join(dir, "missing"): true} {
		fs := newFlags("broker", "")
		var bf brokerFlags
		bf.add(fs)
		require.NoError(t, parseFlags(fs, []string{"--device-key-file", file}))
		var cfg broker.Config
		err := bf.apply(&cfg)
		if wantErr {
			require.Error(t, err, file)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, "0123456789abcdef0123456789abcdef", string(cfg.Auth.DeviceKey))
		cred, ok := inproc.DerivedCredential(cfg.Auth.DeviceKey)("dev-1")
		require.True(t, ok)
		require.Equal(t, "dev-1", cred.Username)
		require.Equal(t, auth.DevicePassword(cfg.Auth.DeviceKey, "dev-1"), cred.Password)
	}
}
