package breaker

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRunSmall runs a few small rollouts of every scenario and checks
// what must hold at any size: v2 halts a 5x bad build and the crash loop
// in its region and never a healthy cohort there, the install-only rules
// never catch the crash loop, and the table has a column per rule.
func TestRunSmall(t *testing.T) {
	c := Config{Healthy: 2, Trials: 1, RegionTrials: 1, Devices: 4000, Control: 200, Workers: 2}
	res, err := Run(context.Background(), c)
	require.NoError(t, err)
	var b strings.Builder
	require.NoError(t, Write(&b, []string{"v2", "wilson", "aws"}, res))
	t.Log("\n" + b.String())
	if os.Getenv("BENCH_BREAKER_PRINT") != "" {
		os.Stdout.WriteString(b.String())
	}
	byName := map[string]Result{}
	for _, r := range res {
		byName[r.Scenario.Name] = r
	}
	require.NotNil(t, byName["bad 5x in us-east"].Outcomes["v2"][0].Bad, "v2 halts a 5x build")
	crash := byName["crash loop in us-east"]
	require.NotNil(t, crash.Outcomes["v2"][0].Bad, "v2 halts the crash loop")
	require.Equal(t, "crash_rate", crash.Outcomes["v2"][0].Bad.Signal)
	require.Nil(t, crash.Outcomes["wilson"][0].Bad, "installs alone do not show a crash loop")
	require.Nil(t, crash.Outcomes["aws"][0].Bad)
	for _, o := range byName["healthy"].Outcomes["v2"] {
		require.Empty(t, o.Others, "v2 halted a healthy cohort")
	}
}
