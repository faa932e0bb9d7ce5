package fanin_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sentinel-iot/sentinel/bench/fanin"
	"github.com/sentinel-iot/sentinel/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestFanIn runs a tiny fan-in against an in-process broker: every message
// acknowledged and delivered, latencies and rate filled in, every
// connection closed afterwards.
func TestFanIn(t *testing.T) {
	b, err := broker.New(broker.Config{Addr: "127.0.0.1:0", Auth: broker.AuthConfig{AllowAnonymous: true},
		Store: broker.StoreConfig{Dir: t.TempDir()}})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := fanin.Connect(ctx, b.Addr(), 20, 4)
	require.NoError(t, err)
	defer f.Close()
	res, err := f.Publish(ctx, 10, 2, 20*time.Second)
	require.NoError(t, err)
	require.EqualValues(t, 200, res.Acked)
	require.GreaterOrEqual(t, res.Delivered, res.Acked)
	require.Positive(t, res.MsgPerSec)
	require.Positive(t, res.AckP99)
	st, ok := b.StoreStats()
	require.True(t, ok)
	require.GreaterOrEqual(t, st.Released, uint64(200), "durable acks by default with a store")
}
