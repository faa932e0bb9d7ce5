package recoverer

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
)

func TestReadingsCoalesce(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	rd := func(region, id string, seq uint64) reading {
		return reading{region: region, m: &proto.Telemetry{Header: proto.NewHeader(id, at, seq)}, received: at}
	}
	for _, tc := range []struct {
		name      string
		put       []reading
		coalesced []bool
		want      map[string]uint64 // region/device -> seq left
	}{
		{"one", []reading{rd("eu", "a", 1)}, []bool{false}, map[string]uint64{"eu/a": 1}},
		{"later replaces", []reading{rd("eu", "a", 1), rd("eu", "a", 2)}, []bool{false, true}, map[string]uint64{"eu/a": 2}},
		{"earlier never replaces", []reading{rd("eu", "a", 5), rd("eu", "a", 3)}, []bool{false, true}, map[string]uint64{"eu/a": 5}},
		{"repeat keeps the first", []reading{rd("eu", "a", 5), rd("eu", "a", 5)}, []bool{false, true}, map[string]uint64{"eu/a": 5}},
		{"devices apart", []reading{rd("eu", "a", 1), rd("eu", "b", 1), rd("us", "a", 1)}, []bool{false, false, false},
			map[string]uint64{"eu/a": 1, "eu/b": 1, "us/a": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReadings()
			for i, x := range tc.put {
				require.Equal(t, tc.coalesced[i], r.put(x), "put %d", i)
			}
			select {
			case <-r.notify:
			default:
				t.Fatal("no notification for the first waiting reading")
			}
			got := map[string]uint64{}
			for k, x := range r.take() {
				got[k] = x.m.Seq
			}
			require.Equal(t, tc.want, got)
			require.Nil(t, r.take(), "take empties the set")
		})
	}
}

func TestReadingsTakeDevice(t *testing.T) {
	r := newReadings()
	at := time.Now()
	r.put(reading{region: "eu", m: &proto.Telemetry{Header: proto.NewHeader("a", at, 1)}, received: at})
	r.put(reading{region: "eu", m: &proto.Telemetry{Header: proto.NewHeader("b", at, 1)}, received: at})
	x, ok := r.takeDevice("eu", "a")
	require.True(t, ok)
	require.Equal(t, "a", x.m.DeviceID)
	_, ok = r.takeDevice("eu", "a")
	require.False(t, ok, "taken once")
	require.Len(t, r.take(), 1, "the other device still waits")
}
