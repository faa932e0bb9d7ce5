package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/analytics/efficacy"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer"
)

func TestParseFlagsEnvTwins(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    int
		wantDur time.Duration
		wantErr string
	}{
		{name: "default", want: 10, wantDur: time.Second},
		{name: "env fills an unset flag", env: map[string]string{"SENTINEL_BATCH_ROWS": "42", "SENTINEL_BATCH_DELAY": "3s"}, want: 42, wantDur: 3 * time.Second},
		{name: "the command line wins over env", args: []string{"--batch-rows", "7"}, env: map[string]string{"SENTINEL_BATCH_ROWS": "42"}, want: 7, wantDur: time.Second},
		{name: "bad env value names the variable", env: map[string]string{"SENTINEL_BATCH_ROWS": "many"}, wantErr: "SENTINEL_BATCH_ROWS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			fs := newFlags("x", "")
			rows := fs.Int("batch-rows", 10, "")
			delay := fs.Duration("batch-delay", time.Second, "")
			err := parseFlags(fs, tt.args)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, *rows)
			require.Equal(t, tt.wantDur, *delay)
		})
	}
}

func TestUsageListsEnvTwins(t *testing.T) {
	fs := newFlags("ingest", "[flags]")
	fs.String("client-id", "x", "MQTT client ID")
	var b bytes.Buffer
	fs.SetOutput(&b)
	require.ErrorIs(t, parseFlags(fs, []string{"-h"}), errUsage)
	require.Contains(t, b.String(), "--client-id  [SENTINEL_CLIENT_ID]")
}

func TestDispatch(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, dispatch(context.Background(), []string{"help"}, &out))
	for _, c := range commands() {
		require.Contains(t, out.String(), c.name)
	}
	require.ErrorContains(t, dispatch(context.Background(), []string{"nope"}, &out), `unknown command "nope"`)
	out.Reset()
	require.NoError(t, dispatch(context.Background(), []string{"report", "list"}, &out))
	require.Contains(t, out.String(), "regional_ranking")
}

// TestRunCommand runs `sentinel run` itself, small and short, and reads the
// result back with `sentinel sql` from the same directory, as the demo does.
func TestRunCommand(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := dispatch(context.Background(), []string{"run",
		"--dsn", "chdb://" + dir, "--listen", "127.0.0.1:0", "--devices", "100", "--duration", "6s",
		"--rollout-spread", "1s", "--step", "200ms", "--telemetry-interval", "500ms", "--failure-share", "0.3",
	}, &out)
	require.NoError(t, err, out.String())
	text := out.String()
	require.Contains(t, text, "Regions ranked by partial-failure rate")
	require.Contains(t, text, "Recovery decisions")
	require.Contains(t, text, "Scored against the simulator's ground truth")
	table := text[strings.Index(text, "firmware  rank"):]
	table = table[:strings.Index(table, "rows)")]
	require.GreaterOrEqual(t, strings.Count(table, "1.5.0"), 5, "the ranking covers at least 5 regions:\n%s", text)

	out.Reset()
	require.NoError(t, dispatch(context.Background(), []string{"sql", "--dsn", "chdb://" + dir, "SELECT if(count() > 0, 'stored', 'empty') AS telemetry FROM telemetry"}, &out))
	require.Contains(t, out.String(), "stored")

	// Every device of the run has its ground truth stored for scoring.
	out.Reset()
	require.NoError(t, dispatch(context.Background(), []string{"sql", "--dsn", "chdb://" + dir, "--format", "csv", "SELECT count() FROM ground_truth FINAL"}, &out))
	require.Equal(t, "count()\n100\n", out.String())

	// The baselines ran in child processes with warehouses of their own;
	// the comparison table has a row for each, and the run's warehouse
	// holds only its own run, which report efficacy scores again.
	for _, c := range []string{"| sentinel |", "| retry-then-rollback |", "| retry-only |", "| none |"} {
		require.Contains(t, text, c)
	}
	out.Reset()
	require.NoError(t, dispatch(context.Background(), []string{"report", "--dsn", "chdb://" + dir, "efficacy"}, &out))
	require.Contains(t, out.String(), "  sentinel@")
	require.Contains(t, out.String(), "| sentinel |")
	require.NotContains(t, out.String(), "none@")

	out.Reset()
	require.NoError(t, dispatch(context.Background(), []string{"report", "--dsn", "chdb://" + dir, "--format", "json", "efficacy"}, &out))
	var scores []efficacy.Score
	require.NoError(t, json.Unmarshal(out.Bytes(), &scores), out.String())
	require.Len(t, scores, 1)
	require.Equal(t, "sentinel", scores[0].Controller)
	require.True(t, scores[0].Started.Before(scores[0].Ended), "the run's window is stored: %+v", scores[0].Run)
}

// TestRecoverSummary: `sentinel recover` ends with what it saw and its
// decision latency.
func TestRecoverSummary(t *testing.T) {
	var out bytes.Buffer
	printRecoverSummary(&out, recoverer.Stats{
		Devices: 3, Status: 10, Telemetry: 40, Coalesced: 2, Published: 5,
		Commands:    map[proto.Action]uint64{proto.ActionRetry: 2, proto.ActionRollback: 1},
		SendLatency: []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond},
		Latency:     []time.Duration{4 * time.Millisecond},
	})
	require.Equal(t, "recoverer stopped: 3 devices, 10 status events, 40 readings (2 coalesced), 3 commands, 5 published\n"+
		"decision latency (status received -> command sent), 3 commands: p50 2ms, p99 3ms, max 3ms\n"+
		"decision latency (status received -> command PUBACK), 1 commands: p50 4ms, p99 4ms, max 4ms\n", out.String())
}

// TestMain lets the test binary stand in for the sentinel binary when a
// command re-executes itself (runBaselines sets envRunAsMain).
func TestMain(m *testing.M) {
	if os.Getenv(envRunAsMain) != "" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestListFlags: --waves and the benches' number lists read, print back
// and refuse as before they shared listFlag.
func TestListFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		waves   []float64
		rates   []int
		wantErr string
	}{
		{name: "defaults print back", waves: []float64{10, 50, 100}, rates: []int{1000, 5000}},
		{name: "set", args: []string{"--waves", " 5, 20.5,100", "--rates", "7,,9 "}, waves: []float64{5, 20.5, 100}, rates: []int{7, 9}},
		{name: "a blank wave is an error", args: []string{"--waves", "10,,100"}, wantErr: `"" is not a percentage`},
		{name: "a wave must be a number", args: []string{"--waves", "10,x"}, wantErr: `"x" is not a percentage`},
		{name: "a rate must be positive", args: []string{"--rates", "5,0"}, wantErr: `"0" is not a positive number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			waves, rates := []float64{10, 50, 100}, []int{1000, 5000}
			fs := newFlags("x", "")
			var usage bytes.Buffer
			fs.SetOutput(&usage)
			fs.Var(percentages(&waves), "waves", "")
			fs.Var(positiveInts(&rates), "rates", "")
			err := parseFlags(fs, tt.args)
			if tt.wantErr != "" {
				require.Error(t, err)
				require.Contains(t, usage.String(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.waves, waves)
			require.Equal(t, tt.rates, rates)
			if tt.args == nil {
				require.Equal(t, "10,50,100", fs.Lookup("waves").DefValue)
				require.Equal(t, "1000,5000", fs.Lookup("rates").DefValue)
			}
		})
	}
}
