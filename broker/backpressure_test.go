package broker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/broker/rawclient"
)

// TestFullSessionQueuesThenRefuses is the broker's half of "nothing
// acknowledged is ever lost": a persistent subscriber is away, its
// in-flight window (MaxInflight) fills, the next messages queue in its
// backlog on disk, and past the backlog's budget publishes are refused
// with 0x97 and counted. Across a broker restart on the same store the
// subscriber then receives every message that was acknowledged, the
// backlog's in the order they were published, and none that was refused.
// On upstream mochi the messages past the window were acknowledged and
// dropped ("client store quota reached").
func TestFullSessionQueuesThenRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const window, published = 20, 200
	cfg := broker.Config{Addr: "127.0.0.1:0", Auth: broker.AuthConfig{AllowAnonymous: true},
		Limits: broker.LimitsConfig{MaxInflight: window},
		Store:  broker.StoreConfig{Dir: t.TempDir(), BacklogBytes: 30 << 10}} // about 60 records of this size
	b, err := broker.New(cfg)
	require.NoError(t, err)
	require.NoError(t, b.Start())

	sub, err := rawclient.Dial(ctx, b.Addr(), rawclient.Options{ClientID: "sub", CleanStart: true, SessionExpiry: 3600})
	require.NoError(t, err)
	require.NoError(t, sub.Subscribe(ctx, "fleet/#", 1))
	require.NoError(t, sub.Close()) // away: its session keeps everything

	pub, err := rawclient.Dial(ctx, b.Addr(), rawclient.Options{ClientID: "pub", CleanStart: true})
	require.NoError(t, err)
	payload := strings.Repeat("x", 300)
	var acked []int
	refused := 0
	for i := range published {
		err := pub.PublishWait(ctx, "fleet/eu/d1/telemetry", fmt.Appendf(nil, "%04d %s", i, payload))
		switch {
		case err == nil:
			require.Zero(t, refused, "message %d acknowledged after a refusal: the budget frees only as the subscriber reads", i)
			acked = append(acked, i)
		case errors.Is(err, rawclient.ErrRefused) && strings.Contains(err.Error(), "0x97"):
			refused++
		default:
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	require.NoError(t, pub.Close())
	t.Logf("%d acknowledged, %d refused with 0x97", len(acked), refused)
	require.Greater(t, len(acked), window, "messages past the in-flight window queue in the backlog")
	require.Positive(t, refused, "past the budget, publishes are refused")
	require.Equal(t, uint64(refused), b.Rejected()[broker.ReasonQuotaExceeded])
	require.Zero(t, b.Dropped()[broker.DropInflight]+b.Dropped()[broker.DropSessionEnded]+b.Dropped()[broker.DropBacklogWrite])
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	require.Contains(t, string(body), fmt.Sprintf(`sentinel_broker_rejected_total{reason="quota_exceeded"} %d`, refused))
	require.Contains(t, string(body), "sentinel_broker_backlog_budget_bytes 30720")
	require.NoError(t, b.Close())

	// The restart: the same store, a new broker.
	b, err = broker.New(cfg)
	require.NoError(t, err)
	require.NoError(t, b.Start())
	defer b.Close()
	got := make(chan int, published)
	sub, err = rawclient.Dial(ctx, b.Addr(), rawclient.Options{ClientID: "sub", SessionExpiry: 3600, ReceiveMaximum: 5,
		OnMessage: func(_ string, p []byte, _ bool) {
			n, err := strconv.Atoi(string(p[:4]))
			if err != nil {
				n = -1
			}
			got <- n
		}})
	require.NoError(t, err)
	defer sub.Close()
	seen := map[int]int{}
	var order []int
	for len(seen) < len(acked) {
		select {
		case n := <-got:
			seen[n]++
			if n >= window {
				order = append(order, n)
			}
		case <-ctx.Done():
			t.Fatalf("subscriber got %d of %d acknowledged messages after the restart", len(seen), len(acked))
		}
	}
	for _, n := range acked {
		require.Equal(t, 1, seen[n], "acknowledged message %d, received once", n)
	}
	require.Len(t, seen, len(acked), "nothing refused was delivered")
	require.IsIncreasing(t, order, "the backlog is delivered in publish order")
}
