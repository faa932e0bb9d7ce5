package rawclient_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/broker/rawclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestPublishBuffered publishes more messages than the window holds
// through the write buffer: each is acknowledged once, the window is
// never exceeded, and a subscriber receives every one.
func TestPublishBuffered(t *testing.T) {
	b, err := broker.New(broker.Config{Addr: "127.0.0.1:0", Auth: broker.AuthConfig{AllowAnonymous: true}})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var received atomic.Int64
	sub, err := rawclient.Dial(ctx, b.Addr(), rawclient.Options{ClientID: "sub", CleanStart: true,
		OnMessage: func(string, []byte, bool) { received.Add(1) }})
	require.NoError(t, err)
	defer sub.Close()
	require.NoError(t, sub.Subscribe(ctx, "bench/#", 1))

	const window, n = 4, 100
	pub, err := rawclient.Dial(ctx, b.Addr(), rawclient.Options{ClientID: "pub", CleanStart: true, MaxInflight: window, WriteBufferSize: 32 << 10})
	require.NoError(t, err)
	defer pub.Close()
	var (
		wg              sync.WaitGroup
		acked, inflight atomic.Int64
		most            atomic.Int64
		failed          atomic.Pointer[error]
	)
	for i := range n {
		wg.Add(1)
		if now := inflight.Add(1); now > most.Load() {
			most.Store(now)
		}
		require.NoError(t, pub.PublishBuffered(ctx, "bench/"+strconv.Itoa(i), []byte("reading"), func(err error) {
			defer wg.Done()
			inflight.Add(-1)
			if err != nil {
				failed.CompareAndSwap(nil, &err)
				return
			}
			acked.Add(1)
		}))
	}
	require.NoError(t, pub.Flush())
	wg.Wait()
	require.Nil(t, failed.Load())
	require.EqualValues(t, n, acked.Load())
	require.LessOrEqual(t, most.Load(), int64(window+1), "the window holds at most MaxInflight (one more counted before it is taken)")
	require.Eventually(t, func() bool { return received.Load() == n }, 10*time.Second, 5*time.Millisecond)
}
