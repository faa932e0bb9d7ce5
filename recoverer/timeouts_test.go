package recoverer

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// TestStateTimeoutsTable: the warehouse's state_timeouts, the table the
// analytics query stuck_devices reads, is seeded with the policy's
// defaults (so a recoverer, a replay and an analyst agree), and a row an
// operator inserts later wins.
func TestStateTimeoutsTable(t *testing.T) {
	db := warehousetest.Open(t)
	ctx := context.Background()
	got, err := loadStateTimeouts(ctx, db)
	require.NoError(t, err)
	require.Equal(t, policy.DefaultStateTimeouts(), got, "migration 13's seed is policy.DefaultStateTimeouts")

	require.NoError(t, db.Exec(ctx, "INSERT INTO "+warehouse.TableStateTimeouts+
		" (state, timeout_ms, updated_at) VALUES ('installing', 420500, now64(3))"))
	got, err = loadStateTimeouts(ctx, db)
	require.NoError(t, err)
	require.Equal(t, 420500*time.Millisecond, got[proto.StateInstalling])
	require.Equal(t, 3*time.Minute, got[proto.StateRebooting])
}

func TestWithStateTimeouts(t *testing.T) {
	table := map[proto.State]time.Duration{proto.StateInstalling: 7 * time.Minute, proto.StateRebooting: time.Minute}
	for _, tc := range []struct {
		name   string
		config map[proto.State]time.Duration
		state  proto.State
		want   time.Duration
	}{
		{"the table over the default", nil, proto.StateInstalling, 7 * time.Minute},
		{"a state the table lacks takes the default", nil, proto.StateDownloading, 10 * time.Minute},
		{"an explicit config entry over the table", map[proto.State]time.Duration{proto.StateRebooting: 2 * time.Minute}, proto.StateRebooting, 2 * time.Minute},
		{"a state nobody bounds", nil, proto.StateIdle, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := withStateTimeouts(policy.Config{StateTimeouts: tc.config}, table)
			require.Equal(t, tc.want, cfg.StateTimeout(tc.state))
		})
	}
}
