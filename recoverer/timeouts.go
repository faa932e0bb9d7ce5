package recoverer

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// loadStateTimeouts reads the warehouse's per-state timeouts (migration
// 13), the table the analytics query stuck_devices reads too, so an
// analyst's "stuck" and the recoverer's stuck_after_command use one set of
// numbers. The latest row of each state wins.
func loadStateTimeouts(ctx context.Context, db *warehouse.DB) (map[proto.State]time.Duration, error) {
	res, err := db.Query(ctx, "SELECT state, timeout_ms FROM "+warehouse.TableStateTimeouts+" FINAL ORDER BY state")
	if err != nil {
		return nil, fmt.Errorf("recoverer: read state timeouts: %w", err)
	}
	out := make(map[proto.State]time.Duration, len(res.Rows))
	for _, r := range res.Rows {
		ms, err := strconv.ParseUint(r[1], 10, 63)
		if err != nil {
			return nil, fmt.Errorf("recoverer: read state timeouts: %s: timeout_ms %q: %w", r[0], r[1], err)
		}
		out[proto.State(r[0])] = time.Duration(ms) * time.Millisecond
	}
	return out, nil
}

// withStateTimeouts returns cfg with every state's timeout the config does
// not set itself taken from table: an explicit Config.StateTimeouts entry
// is an operator's choice and wins; the warehouse's table comes next, and
// policy.DefaultStateTimeouts (the table's seed) only for states neither
// lists.
func withStateTimeouts(cfg policy.Config, table map[proto.State]time.Duration) policy.Config {
	merged := make(map[proto.State]time.Duration, len(table)+len(cfg.StateTimeouts))
	for s, d := range table {
		merged[s] = d
	}
	for s, d := range cfg.StateTimeouts {
		merged[s] = d
	}
	cfg.StateTimeouts = merged
	return cfg
}
