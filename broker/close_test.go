package broker_test

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker"
)

// TestCloseAfterFailedStart: New opens the store, so a broker whose Start
// failed (its port taken) must release it on Close, or the next broker on
// the same directory cannot open it.
func TestCloseAfterFailedStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	dir := t.TempDir()
	cfg := broker.Config{Addr: taken.Addr().String(), Auth: broker.AuthConfig{AllowAnonymous: true}, Store: broker.StoreConfig{Dir: dir}}

	b, err := broker.New(cfg)
	require.NoError(t, err)
	require.Error(t, b.Start(), "the port is taken")
	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "twice is fine")

	cfg.Addr = "127.0.0.1:0"
	b2, err := broker.New(cfg)
	require.NoError(t, err, "the store of the failed broker was released")
	require.NoError(t, b2.Start())
	require.NoError(t, b2.Close())
}
