package recoverer

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/warehouse"
)

// StoreRollout writes to db the status events of n devices of region
// updating from one firmware to another at `at`, failed of them failing
// and the rest updated, as the ingestor would: for the recoverer_test
// package's breaker tests. first numbers the devices, so calls do not
// collide.
func StoreRollout(t *testing.T, db *warehouse.DB, region, from, to string, first, n, failed int, at time.Time) {
	t.Helper()
	r := rollout{n: first}
	r.add(region, from, to, n, failed, 0, at)
	require.NoError(t, warehouse.Insert(context.Background(), db, warehouse.TableStatusEvents, r.rows))
}
