// Package breaker measures the cohort breaker's rules, side by side, on
// many small simulated rollouts: `sentinel bench breaker`.
//
// # How the rollouts are fed
//
// No broker and no warehouse: each rollout is the simulator's own device
// model (simulator/device: the profiles Generate draws, the OTA state
// machine, the sensors and the release-health rules) advanced in process,
// look by look, and the messages each device sends are folded into the
// counts the warehouse view cohort_breaker_counts (migration 14) computes:
// per (firmware, region), settled and failed devices with devices silent
// past their state's deadline as failed, reboots (uptime resets) and
// battery points lost over device-hours on the build, and devices gone
// quiet. The rules then judge those counts exactly as the recoverer does
// (cohortstat). What the bench leaves out is the transport: it measures
// the statistics and the simulated fleet, not MQTT or ClickHouse latency.
//
// # The rollout
//
// A fleet of Devices on firmware From installs To in a canary wave (the
// first CanaryShare of the fleet, starting over Spread); the rest of the
// fleet stays on From and is the concurrent baseline of release health
// (a sample of it, Control devices, is simulated). The install baseline
// is the previous rollout, From itself installed by the same fleet
// earlier: the same regions' failure record for a good build, drawn by the
// same generator with another seed. Each rollout runs Duration of
// simulated time, looking every Look.
package breaker

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/sentinel-iot/sentinel/cohortstat"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/simulator/device"
)

// Defaults of Config, exported so that flags state them once.
const (
	DefaultHealthy      = 200
	DefaultTrials       = 10
	DefaultRegionTrials = 5
	DefaultDevices      = 10_000
	DefaultCanaryShare  = 0.2
	DefaultControl      = 500
	DefaultSpread       = time.Hour
	DefaultStep         = time.Minute
	DefaultLook         = 2 * time.Minute
	DefaultDuration     = 3 * time.Hour
	DefaultBadRegion    = "us-east"
	DefaultCrashPerHour = 6
	// DefaultTelemetry is how often a simulated device sends a reading.
	DefaultTelemetry = 5 * time.Minute
)

// DefaultFactors are the bad builds' failure multipliers the bench
// measures time to detect at.
var DefaultFactors = []float64{1.5, 2, 3, 5}

// Config configures a bench run. Zero fields take the Default* values.
type Config struct {
	// Healthy is the number of healthy rollouts (no bad build) the
	// false-halt rate is measured over.
	Healthy int
	// Trials is the number of rollouts per bad-build factor and for the
	// crash-loop build; RegionTrials per region for the default factor.
	Trials, RegionTrials int
	// Devices is the fleet size; CanaryShare of it installs the build.
	Devices     int
	CanaryShare float64
	// Control is how many devices of the rest of the fleet are simulated
	// on the old firmware, as the release-health baseline.
	Control int
	// Spread, Step, Look, Duration and Telemetry are the canary's start
	// spread, the mean OTA step, the breaker's interval, the run length
	// and the reading interval, in simulated time.
	Spread, Step, Look, Duration, Telemetry time.Duration
	// Factors are the bad builds' failure multipliers, in BadRegion.
	Factors   []float64
	BadRegion string
	// CrashPerHour is the crash-loop build's crash rate per device-hour;
	// it installs like a good build.
	CrashPerHour float64
	// Seed is the first rollout's seed; rollout i uses Seed+i.
	Seed int64
	// Workers run rollouts in parallel. Default runtime.NumCPU().
	Workers int
	// Rules are the rules judged side by side. Default v2, Wilson, AWS-style
	// at their defaults.
	Rules []cohortstat.Rule
}

func (c *Config) defaults() {
	or := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	ord := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	or(&c.Healthy, DefaultHealthy)
	or(&c.Trials, DefaultTrials)
	or(&c.RegionTrials, DefaultRegionTrials)
	or(&c.Devices, DefaultDevices)
	or(&c.Control, DefaultControl)
	or(&c.Workers, runtime.NumCPU())
	ord(&c.Spread, DefaultSpread)
	ord(&c.Step, DefaultStep)
	ord(&c.Look, DefaultLook)
	ord(&c.Duration, DefaultDuration)
	ord(&c.Telemetry, DefaultTelemetry)
	if c.CanaryShare == 0 {
		c.CanaryShare = DefaultCanaryShare
	}
	if c.Factors == nil {
		c.Factors = DefaultFactors
	}
	if c.BadRegion == "" {
		c.BadRegion = DefaultBadRegion
	}
	if c.CrashPerHour == 0 {
		c.CrashPerHour = DefaultCrashPerHour
	}
	if c.Rules == nil {
		c.Rules = []cohortstat.Rule{cohortstat.V2{}.WithDefaults(), cohortstat.Wilson{}, cohortstat.AWS{}}
	}
}

// The firmware of every rollout.
const (
	prevFirmware = "1.4.2"
	fromFirmware = "1.5.0"
	toFirmware   = "1.6.0"
)

// Scenario is one kind of rollout.
type Scenario struct {
	// Name says what is measured ("healthy", "bad 2x", "crash loop", "bad in af-south").
	Name string
	// BadRegion is where the bad build is bad ("" for a healthy rollout).
	BadRegion string
	// Factor is the install failure multiplier (0: none).
	Factor float64
	// Crash is the crash rate per device-hour after install (0: none).
	Crash float64
	// Trials is how many rollouts of it run.
	Trials int
}

// Trip is one rule's first halt of one cohort in one rollout.
type Trip struct {
	// Region is the halted cohort's region.
	Region string
	// Minutes is the simulated time of the halt since the canary started.
	Minutes float64
	// Failed is the cohort's failed devices at the halt.
	Failed int64
	// Signal is the signal that decided.
	Signal string
	// Evidence is the rule's evidence at the halt.
	Evidence []cohortstat.Evidence
}

// Outcome is what one rule did in one rollout.
type Outcome struct {
	// Bad is the halt of the bad cohort, nil if none (or no bad cohort).
	Bad *Trip
	// Others are halts of healthy cohorts: false halts.
	Others []Trip
	// Promoted counts the healthy cohorts the rule promoted.
	Promoted int
}

// Result is one scenario's outcomes, per rule name, one per trial.
type Result struct {
	Scenario Scenario
	Outcomes map[string][]Outcome
}

// Scenarios returns the bench's scenarios for c: the healthy rollouts,
// the bad builds at each factor in BadRegion, the crash-loop build there,
// and the default-factor bad build in each region in turn.
func Scenarios(c Config) []Scenario {
	c.defaults()
	s := []Scenario{{Name: "healthy", Trials: c.Healthy}}
	for _, f := range c.Factors {
		s = append(s, Scenario{Name: fmt.Sprintf("bad %gx in %s", f, c.BadRegion), BadRegion: c.BadRegion, Factor: f, Trials: c.Trials})
	}
	s = append(s, Scenario{Name: fmt.Sprintf("crash loop in %s", c.BadRegion), BadRegion: c.BadRegion, Crash: c.CrashPerHour, Trials: c.Trials})
	for _, r := range device.DefaultRegions() {
		s = append(s, Scenario{Name: "bad in " + r.Name, BadRegion: r.Name, Factor: device.DefaultBadBuildFactor, Trials: c.RegionTrials})
	}
	return s
}

// Run runs every scenario of c and returns their results in order. Work
// is spread over c.Workers goroutines, each rollout independent and
// seeded, so the results do not depend on the number of workers.
func Run(ctx context.Context, c Config) ([]Result, error) {
	c.defaults()
	scen := Scenarios(c)
	type job struct{ s, i int }
	results := make([]Result, len(scen))
	jobs := make(chan job)
	var mu sync.Mutex
	var firstErr error
	for i, s := range scen {
		results[i] = Result{Scenario: s, Outcomes: map[string][]Outcome{}}
		for _, r := range c.Rules {
			results[i].Outcomes[r.Name()] = make([]Outcome, s.Trials)
		}
	}
	var wg sync.WaitGroup
	for range max(c.Workers, 1) {
		wg.Go(func() {
			for j := range jobs {
				s := scen[j.s]
				seed := c.Seed + int64(j.s)*100_000 + int64(j.i)
				out, err := rollout(c, s, seed)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				for name, o := range out {
					results[j.s].Outcomes[name][j.i] = o
				}
				mu.Unlock()
			}
		})
	}
feed:
	for si, s := range scen {
		for i := range s.Trials {
			select {
			case jobs <- job{si, i}:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return results, ctx.Err()
}

// tally is what the bench knows of one device from its messages: the
// per-device half of cohort_breaker_counts.
type tally struct {
	region           string
	canary           bool
	started, settled bool
	failed           bool
	state            proto.State
	lastStatus       time.Duration
	fw               string // firmware of the last reading
	lastHeard        time.Duration
	lastUptime       int64
	lastAt           time.Duration
	lastBattery      float64
	lastCharging     bool
	lastResting      bool
	haveReading      bool
	health           map[string]*usage // by firmware
}

// usage is a device's release health on one firmware.
type usage struct {
	boots             int64
	runHours          float64
	drain, drainHours float64
}

// resting reports whether a reading in state s is of a device at rest on
// its firmware: a reboot between two such readings is a crash, not an
// update's or a command's own reboot.
func resting(s proto.State) bool { return s == proto.StateIdle || s == proto.StateUpdated }

// rollout runs one rollout of s and returns each rule's outcome.
func rollout(c Config, s Scenario, seed int64) (map[string]Outcome, error) {
	canaryPct := math.Round(c.CanaryShare*1000) / 10
	spec := device.Spec{Devices: c.Devices, Seed: seed, FailureShare: 0.15, FromFirmware: fromFirmware, ToFirmware: toFirmware,
		Waves: []float64{canaryPct, 100}}
	if s.Factor > 0 {
		spec.BadBuild = device.BadBuild{Firmware: toFirmware, Region: s.BadRegion, Factor: s.Factor}
	}
	profiles, err := device.Generate(spec)
	if err != nil {
		return nil, fmt.Errorf("bench breaker: %s: %w", s.Name, err)
	}
	// The previous rollout: a good build over the same fleet, another seed.
	prevSpec := spec
	prevSpec.Seed, prevSpec.FromFirmware, prevSpec.ToFirmware, prevSpec.BadBuild, prevSpec.Waves = seed+7_919_000, prevFirmware, fromFirmware, device.BadBuild{}, nil
	prev, err := device.Generate(prevSpec)
	if err != nil {
		return nil, fmt.Errorf("bench breaker: %s: previous rollout: %w", s.Name, err)
	}
	baseInstall := map[string]cohortstat.Proportion{}
	for _, p := range prev {
		b := baseInstall[p.Region]
		b.Trials++
		if p.Fate != device.FateUpdated {
			b.Events++
		}
		baseInstall[p.Region] = b
	}
	var health []device.ReleaseHealth
	if s.Crash > 0 {
		health = []device.ReleaseHealth{{Firmware: toFirmware, Region: s.BadRegion, CrashesPerHour: s.Crash}}
	}
	var devs []*device.Device
	var tallies []*tally
	control := 0
	for _, p := range profiles {
		canary := p.Wave == 0
		if !canary {
			if control >= c.Control {
				continue
			}
			control++
		}
		t := device.Timing{TelemetryInterval: c.Telemetry, StepDuration: c.Step, TimeScale: 1,
			RolloutStart: time.Duration(p.RolloutAt * float64(c.Spread))}
		if !canary {
			t.RolloutStart = time.Duration(math.MaxInt64) // stays on the old firmware
		}
		d := device.NewDevice(p, t)
		d.SetHealth(health)
		devs = append(devs, d)
		tallies = append(tallies, &tally{region: p.Region, canary: canary, fw: fromFirmware, health: map[string]*usage{}})
	}
	regions := device.DefaultRegions()
	deadlines := policy.DefaultStateTimeouts()
	quietAfter := 3 * c.Telemetry // three readings missed
	type judged struct {
		halted   bool
		promoted bool
	}
	state := map[string]map[string]*judged{} // rule -> region -> state
	outs := map[string]Outcome{}
	for _, r := range c.Rules {
		state[r.Name()] = map[string]*judged{}
		for _, reg := range regions {
			state[r.Name()][reg.Name] = &judged{}
		}
		outs[r.Name()] = Outcome{}
	}
	wall := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var msgs []device.Msg
	for now := c.Look; now <= c.Duration; now += c.Look {
		for i, d := range devs {
			msgs = d.Advance(now, wall, msgs[:0])
			tallies[i].fold(msgs, now)
		}
		samples := cohorts(tallies, baseInstall, deadlines, now, quietAfter)
		for _, r := range c.Rules {
			name := r.Name()
			o := outs[name]
			for _, reg := range regions {
				st := state[name][reg.Name]
				sm, ok := samples[reg.Name]
				if st.halted || !ok {
					continue
				}
				if name != cohortstat.RuleV2 {
					sm = cohortstat.Sample{Install: sm.Install} // the fixed rules see installs only
				}
				res, err := r.Judge(sm, len(regions))
				if err != nil {
					return nil, fmt.Errorf("bench breaker: %s: judge %s: %w", s.Name, reg.Name, err)
				}
				switch res.Verdict {
				case cohortstat.Halt:
					st.halted = true
					tr := Trip{Region: reg.Name, Minutes: now.Minutes(), Failed: sm.Install.Events, Signal: res.Signal, Evidence: res.Evidence}
					if reg.Name == s.BadRegion {
						o.Bad = &tr
					} else {
						o.Others = append(o.Others, tr)
					}
				case cohortstat.Promote:
					if !st.promoted && reg.Name != s.BadRegion {
						o.Promoted++
					}
					st.promoted = true
				}
			}
			outs[name] = o
		}
	}
	return outs, nil
}

// fold applies one device's messages, sent by look time now, to its
// tally, as cohort_breaker_counts reads status events and readings.
func (t *tally) fold(msgs []device.Msg, now time.Duration) {
	for _, m := range msgs {
		switch x := m.Message.(type) {
		case *proto.StatusEvent:
			if x.State == proto.StateOffline {
				continue
			}
			t.state, t.lastStatus = x.State, now
			if x.TargetFirmware != "" && x.State != proto.StateIdle {
				t.started = true
			}
			if x.State.Failed() || x.State == proto.StateBricked {
				t.failed, t.settled = true, true
			}
			if x.State == proto.StateUpdated || x.State == proto.StateRolledBack {
				t.settled = true
			}
		case *proto.Telemetry:
			if x.Firmware == t.fw && t.haveReading {
				u := t.health[x.Firmware]
				if u == nil {
					u = &usage{}
					t.health[x.Firmware] = u
				}
				dt := (now - t.lastAt).Hours()
				u.runHours += dt
				if x.UptimeS < t.lastUptime && t.lastResting && resting(x.State) {
					u.boots++
				}
				if !x.Charging && !t.lastCharging {
					u.drainHours += dt
					u.drain += max(t.lastBattery-x.BatteryPct, 0)
				}
			}
			t.fw, t.haveReading, t.lastResting = x.Firmware, true, resting(x.State)
			t.lastAt, t.lastHeard, t.lastUptime, t.lastBattery, t.lastCharging = now, now, x.UptimeS, x.BatteryPct, x.Charging
		}
	}
}

// cohorts folds the tallies into each region's sample of the canary
// cohort against its baselines, at look time now: devices silent past
// their state's deadline count as settled and failed, and devices not
// heard from for quietAfter count as quiet.
func cohorts(ts []*tally, baseInstall map[string]cohortstat.Proportion, deadlines map[proto.State]time.Duration, now, quietAfter time.Duration) map[string]cohortstat.Sample {
	out := map[string]cohortstat.Sample{}
	for _, t := range ts {
		s := out[t.region]
		s.BaseInstall = baseInstall[t.region]
		onBuild := t.fw == toFirmware
		if t.canary && t.started {
			silent := !t.settled && now-t.lastStatus > cmp.Or(deadlines[t.state], deadlines[proto.StateDownloading])
			if t.settled || silent {
				s.Install.Trials++
				if t.failed || silent {
					s.Install.Events++
				}
			}
		}
		for fw, u := range t.health {
			crash, drain := &s.BaseCrash, &s.BaseDrain
			if fw == toFirmware {
				crash, drain = &s.Crash, &s.Drain
			}
			crash.Events += float64(u.boots)
			crash.Hours += u.runHours
			drain.Events += u.drain
			drain.Hours += u.drainHours
		}
		rep := &s.BaseReporting
		if onBuild {
			rep = &s.Reporting
		}
		if t.haveReading {
			rep.Trials++
			if now-t.lastHeard > quietAfter {
				rep.Events++
			}
		}
		out[t.region] = s
	}
	return out
}
