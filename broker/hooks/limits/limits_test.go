package limits

import (
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/stretchr/testify/require"
)

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := &bucket{rate: Rate{PerSecond: 2, Burst: 3}, tokens: 3, last: t0}
	for i := range 3 {
		require.True(t, b.take(t0), "burst message %d", i)
	}
	require.False(t, b.take(t0), "burst spent")
	require.False(t, b.take(t0.Add(400*time.Millisecond)), "0.8 of a token")
	require.True(t, b.take(t0.Add(500*time.Millisecond)), "a token after 1/rate")
	require.False(t, b.take(t0.Add(500*time.Millisecond)))
	later := t0.Add(time.Hour)
	for i := range 3 {
		require.True(t, b.take(later), "refilled to the burst, not past it: %d", i)
	}
	require.False(t, b.take(later))
}

func TestInitRejectsWrongConfig(t *testing.T) {
	h := new(Hook)
	require.ErrorIs(t, h.Init(nil), mqtt.ErrInvalidConfigType)
	require.ErrorIs(t, h.Init(&Options{}), mqtt.ErrInvalidConfigType, "Server is required")
	require.ErrorIs(t, h.Init(Rate{}), mqtt.ErrInvalidConfigType)
	require.NoError(t, h.Init(&Options{Server: mqtt.New(&mqtt.Options{})}))
	require.NotNil(t, h.opts.Now)
}
