package brokertest_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/broker/brokertest"
)

// connect sends CONNECT as clientID with login and returns the CONNACK's
// reason code.
func connect(t *testing.T, b *brokertest.Broker, clientID string, login brokertest.Login) byte {
	t.Helper()
	c, err := net.Dial("tcp", b.Addr())
	require.NoError(t, err)
	cli := paho.NewClient(paho.ClientConfig{ClientID: clientID, Conn: c})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cp := &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true}
	if login.Username != "" {
		cp.UsernameFlag, cp.Username = true, login.Username
		cp.PasswordFlag, cp.Password = true, []byte(login.Password)
	}
	ack, err := cli.Connect(ctx, cp)
	if ack == nil {
		require.NoError(t, err)
	}
	if err == nil {
		_ = cli.Disconnect(&paho.Disconnect{})
	}
	<-cli.Done()
	return ack.ReasonCode
}

// TestLogins: each login connects, and the broker's own rules hold: a
// device only under its own client ID, nobody anonymously, nobody with a
// wrong password.
func TestLogins(t *testing.T) {
	b := brokertest.Start(t)
	for _, tc := range []struct {
		name, clientID string
		login          brokertest.Login
		code           byte
	}{
		{"service", "svc-1", b.Service(), 0},
		{"gateway", "gw-1", b.Gateway(), 0},
		{"ops", "ops-1", b.Ops(), 0},
		{"device", "dev-1", b.Device("dev-1"), 0},
		{"device under another client ID", "dev-2", b.Device("dev-1"), 0x85},
		{"wrong password", "svc-2", brokertest.Login{Username: brokertest.ServiceUser, Password: "wrong"}, 0x86},
		{"anonymous", "anon-1", brokertest.Login{}, 0x87},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.code, connect(t, b, tc.clientID, tc.login))
		})
	}
	require.ErrorIs(t, b.Disconnect("nobody"), broker.ErrNoClient)
	require.ErrorIs(t, b.DropConnection("nobody"), broker.ErrNoClient)
}
