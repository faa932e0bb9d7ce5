package policy_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
)

func TestControllerRegistry(t *testing.T) {
	require.Equal(t, []string{"sentinel", "retry-then-rollback", "retry-only", "none"}, policy.ControllerNames())
	// Each name runs its own rule: a boot_failed device under the battery
	// floor with its retries spent tells the four apart.
	low := tel(10, false, -70)
	input := in(proto.StateBootFailed, low, 3)
	cfg := policy.DefaultConfig()
	want := map[string]struct {
		rule     policy.Func
		baseline bool
	}{
		"sentinel":            {policy.Decide, false},
		"retry-then-rollback": {policy.RetryThenRollback, true},
		"retry-only":          {policy.RetryOnly, true},
		"none":                {policy.Observe, true},
	}
	seen := map[policy.Decision]string{}
	for _, c := range policy.Controllers() {
		w, ok := want[c.Name]
		require.True(t, ok, c.Name)
		require.Equal(t, w.baseline, c.Baseline, c.Name)
		got := c.Decide(input, cfg)
		require.Equal(t, w.rule(input, cfg), got, c.Name)
		require.NotContains(t, seen, got, "%s decides as %s", c.Name, seen[got])
		seen[got] = c.Name
	}
	require.Len(t, seen, len(want))
	c, err := policy.LookupController(policy.SentinelController)
	require.NoError(t, err)
	require.False(t, c.Baseline)
}

func TestParseControllers(t *testing.T) {
	tests := []struct {
		list    string
		want    []string
		wantErr string
	}{
		{list: "", want: nil},
		{list: "retry-only", want: []string{"retry-only"}},
		{list: " none , sentinel,,", want: []string{"none", "sentinel"}},
		{list: "retry-only,retyr-only", wantErr: `unknown controller "retyr-only" (known: sentinel, retry-then-rollback, retry-only, none)`},
	}
	for _, tt := range tests {
		t.Run(tt.list, func(t *testing.T) {
			cs, err := policy.ParseControllers(tt.list)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, policy.ErrUnknownController)
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			var names []string
			for _, c := range cs {
				names = append(names, c.Name)
			}
			require.Equal(t, tt.want, names)
		})
	}
}
