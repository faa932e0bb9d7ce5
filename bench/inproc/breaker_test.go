package inproc_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/bench/inproc"
	"github.com/sentinel-iot/sentinel/ingestor"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/simulator"
	"github.com/sentinel-iot/sentinel/simulator/device"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// storePreviousRollout writes to db the record of the rollout that put
// from on the fleet, a good build over devices devices two hours ago: the
// v2 breaker's baseline for every region.
func storePreviousRollout(t *testing.T, db *warehouse.DB, devices int, prev, from string) {
	t.Helper()
	ps, err := device.Generate(device.Spec{Devices: devices, Seed: 990, FailureShare: simulator.DefaultFailureShare, FromFirmware: prev, ToFirmware: from})
	require.NoError(t, err)
	at := time.Now().Add(-2 * time.Hour)
	var rows []warehouse.StatusRow
	for _, p := range ps {
		id := "prev-" + p.ID
		for seq, st := range []proto.State{proto.StateDownloading, p.Fate.Final()} {
			m := &proto.StatusEvent{Header: proto.NewHeader(id, at, uint64(seq+1)), Region: p.Region, State: st, Firmware: prev, TargetFirmware: from}
			rows = append(rows, warehouse.StatusRowOf(m, at))
		}
	}
	require.NoError(t, warehouse.Insert(context.Background(), db, warehouse.TableStatusEvents, rows))
}

// retainedAdvisory reads the retained halt advisory of firmware with
// mosquitto_sub as the read-only ops user, as a rollout manager's script
// would; nil when there is none.
func retainedAdvisory(t *testing.T, addr, user, password, firmware string) *recoverer.Advisory {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("mosquitto_sub is required in CI (apt-get install mosquitto-clients)")
		}
		t.Skip("mosquitto_sub not installed (apt-get install mosquitto-clients)")
	}
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	out, err := exec.Command(bin, "-V", "mqttv5", "-h", host, "-p", port, "-i", "breaker-reader", "-u", user, "-P", password,
		"-t", recoverer.AdvisoryTopic(firmware), "--retained-only", "-C", "1", "-W", "10").Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 27 {
		return nil // timed out: nothing retained
	}
	require.NoError(t, err)
	var a recoverer.Advisory
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(string(out))), &a), "%s", out)
	return &a
}

// TestBreakerHaltsOnlyTheBadCohort runs the pipeline with a bad build in
// one region against a warehouse holding the previous rollout: the v2
// breaker halts that region's cohort and no other (healthy af-south and
// ap-south fail a third of their installs and are not halted), and the
// retained advisory, read with mosquitto_sub, names it with the rule,
// estimate, bound and sample.
func TestBreakerHaltsOnlyTheBadCohort(t *testing.T) {
	const devices = 600
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db := warehousetest.Open(t)
	var logs warehousetest.LogBuffer
	storePreviousRollout(t, db, 10*devices, "1.4.1", simulator.DefaultFromFirmware)

	pc := policy.DefaultConfig()
	pc.BackoffBase = 300 * time.Millisecond
	p, err := inproc.Start(ctx, db, inproc.Config{
		Listen:    "127.0.0.1:0",
		Ingestor:  ingestor.Config{Batch: warehouse.WriterConfig{MaxRows: 2000, MaxDelay: 50 * time.Millisecond}},
		Recoverer: recoverer.Config{Policy: pc, BreakerInterval: time.Second},
		Fleet: simulator.Config{
			Devices: devices, Seed: 5, ConnectRate: 1000, Waves: []float64{100},
			BadBuild: simulator.DefaultToFirmware, BadBuildRegion: "eu-west",
			TelemetryInterval: 2 * time.Second, RolloutSpread: 5 * time.Second, StepDuration: 200 * time.Millisecond,
		},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		p.Shutdown()
		if t.Failed() {
			t.Logf("warnings:\n%s", logs.Bytes())
		}
	})
	fleetCtx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()
	p.RunFleet(fleetCtx)

	bad := simulator.DefaultToFirmware + "/eu-west"
	require.Eventually(t, func() bool { return slices.Contains(p.Recoverer().Stats().Tripped, bad) }, 2*time.Minute, 200*time.Millisecond,
		"the bad cohort halts")
	// Every device's first update has ended and the breaker has looked
	// since (its query slows down on a loaded engine, see breakerShare):
	// nothing else halts.
	require.Eventually(t, func() bool {
		return count(t, db, `SELECT uniqExactIf(device_id, state IN ('updated', 'download_failed', 'verify_failed', 'install_failed',
			'partial', 'boot_failed', 'rolled_back', 'bricked')) FROM status_events WHERE target_firmware = '`+simulator.DefaultToFirmware+`'`) == devices
	}, 2*time.Minute, 200*time.Millisecond, "every device's update ended, in the warehouse")
	runs := p.Recoverer().Stats().BreakerRuns
	require.Eventually(t, func() bool { return p.Recoverer().Stats().BreakerRuns >= runs+2 }, 2*time.Minute, 100*time.Millisecond)
	require.Equal(t, []string{bad}, p.Recoverer().Stats().Tripped, "only the bad cohort is halted")

	var a *recoverer.Advisory
	require.Eventually(t, func() bool {
		a = retainedAdvisory(t, p.Broker().Addr(), inproc.OpsUser, p.Password(inproc.OpsUser), simulator.DefaultToFirmware)
		return a != nil
	}, 90*time.Second, 200*time.Millisecond, "a retained advisory")
	require.Len(t, a.Cohorts, 1)
	c := a.Cohorts[0]
	require.Equal(t, "eu-west", c.Region)
	require.Equal(t, recoverer.RuleV2, c.Rule)
	require.Equal(t, simulator.DefaultFromFirmware, c.BaselineFirmware)
	require.Greater(t, c.Bound, c.Limit)
	require.Greater(t, c.Estimate, c.Baseline)
	require.Positive(t, c.Sample)
	t.Logf("advisory: %s halted on %s at %.0f devices, estimate %.3f, bound %.3f > limit %.3f (baseline %.3f)",
		c.Region, c.Signal, c.Sample, c.Estimate, c.Bound, c.Limit, c.Baseline)
	stopFleet()
}
