package simulator

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/simulator/device"
)

// Fleet is a set of simulated devices. Build it with New, start it with Run.
// Stats, Devices and GroundTruth are safe to call at any time, from any
// goroutine.
type Fleet struct {
	cfg    Config
	broker *url.URL
	log    *slog.Logger
	creds  Credentials
	slots  []*slot // in fleet order
	conns  []*conn

	started atomic.Bool
	start   atomic.Pointer[time.Time] // when Run started: run time 0

	published        atomic.Uint64
	publishErrors    atomic.Uint64
	refused          atomic.Uint64 // PUBACK 0x97, held to send again
	heldDropped      atomic.Uint64 // refused readings past DeviceHold
	commandsReceived atomic.Uint64
	invalidCommands  atomic.Uint64
	willsArmed       atomic.Uint64
}

// DeviceInfo is a device's static identity and the truth about how its
// first update ends, for checking analytics and the recovery controller.
type DeviceInfo struct {
	// ID is the device ID, also its MQTT client ID with one connection each.
	ID string
	// Region is the device's region, the second level of its topics.
	Region string
	// Model is the device's hardware model.
	Model string
	// FromFirmware is the version the device runs before the rollout.
	FromFirmware string
	// ToFirmware is the version the rollout installs.
	ToFirmware string
	// BatteryPct is the battery level at start.
	BatteryPct float64
	// Charging is true when the device is on external power at start.
	Charging bool
	// RSSIMean is the device's mean signal strength in dBm.
	RSSIMean float64
	// Wave is the device's rollout wave, from 0.
	Wave int
	// BadBuild is true when the device installs the bad build.
	BadBuild bool
	// RolloutOffset is how long after Run starts the device starts its
	// update (if it has come online by then).
	RolloutOffset time.Duration
	// RolloutEnd is the state the device's first update ends in: updated,
	// partial, install_failed, verify_failed, boot_failed or download_failed.
	RolloutEnd proto.State
}

// Stats is a snapshot of a fleet's counters.
type Stats struct {
	// Devices is the number of devices in the fleet.
	Devices int
	// Connected is the number of devices online: come online and on a
	// connection that is up.
	Connected int
	// Conns is the number of MQTT connections the fleet uses.
	Conns int
	// ConnsUp is the number of those connections that are up.
	ConnsUp int
	// Published is the number of telemetry and status messages the broker
	// acknowledged.
	Published uint64
	// PublishErrors is the number of messages that could not be published
	// (connection down, no acknowledgement in time).
	PublishErrors uint64
	// Refused is the number of publishes the broker refused with 0x97
	// (quota exceeded); each is held and sent again (see DeviceHold), so
	// a reading refused twice counts twice.
	Refused uint64
	// HeldDropped is the number of readings a device dropped because it
	// held DeviceHold refused ones already: the only loss backpressure
	// causes, on the device, and counted.
	HeldDropped uint64
	// CommandsReceived is the number of valid commands devices received.
	CommandsReceived uint64
	// InvalidCommands is the number of messages on command topics that did
	// not decode as a command for that device.
	InvalidCommands uint64
	// ByState counts the devices in each OTA state.
	ByState map[proto.State]int
}

// Truth is the ground truth of one device: what happened to it, what would
// have fixed it, and how it ended. It is device.Truth; see there for every
// field, and WriteGroundTruth for the file format.
type Truth = device.Truth

// New checks cfg, fills in its defaults and builds the fleet it describes.
// It does not connect: Run does. The same Config always builds the same
// fleet. An unusable Config gives a *ConfigError naming the field.
func New(cfg Config) (*Fleet, error) {
	cfg.ensureDefaults()
	u, regions, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	creds, err := cfg.loadCredentials()
	if err != nil {
		return nil, err
	}
	profiles, err := device.Generate(device.Spec{
		Devices:      cfg.Devices,
		Seed:         cfg.Seed,
		FailureShare: cfg.FailureShare,
		FromFirmware: cfg.FromFirmware,
		ToFirmware:   cfg.ToFirmware,
		Regions:      regions,
		Waves:        cfg.Waves,
		BadBuild:     device.BadBuild{Firmware: cfg.BadBuild, Region: cfg.BadBuildRegion, Factor: cfg.BadBuildFactor},
	})
	if err != nil {
		return nil, fmt.Errorf("generate fleet: %w", err)
	}
	f := &Fleet{cfg: cfg, broker: u, log: cfg.Logger, creds: creds, slots: make([]*slot, len(profiles))}
	for i, p := range profiles {
		d := device.NewDevice(p, f.timing(p))
		d.SetHealth(cfg.Health)
		f.slots[i] = newSlot(d)
	}
	f.conns = f.buildConns()
	return f, nil
}

// timing returns when device p joins and starts its update.
func (f *Fleet) timing(p device.Profile) device.Timing {
	c := f.cfg
	return device.Timing{
		TelemetryInterval: c.TelemetryInterval,
		StepDuration:      c.StepDuration,
		Join:              time.Duration(p.Index) * time.Second / time.Duration(c.ConnectRate),
		RolloutStart:      time.Duration(p.Wave)*c.WaveInterval + time.Duration(p.RolloutAt*float64(c.RolloutSpread)),
		TimeScale:         c.TimeScale,
	}
}

// Stats returns a snapshot of the fleet's counters.
func (f *Fleet) Stats() Stats {
	s := Stats{
		Devices:          len(f.slots),
		Conns:            len(f.conns),
		Published:        f.published.Load(),
		PublishErrors:    f.publishErrors.Load(),
		Refused:          f.refused.Load(),
		HeldDropped:      f.heldDropped.Load(),
		CommandsReceived: f.commandsReceived.Load(),
		InvalidCommands:  f.invalidCommands.Load(),
		ByState:          make(map[proto.State]int),
	}
	for _, c := range f.conns {
		up := c.online.Load()
		if up {
			s.ConnsUp++
		}
		c.mu.Lock()
		for _, sl := range c.slots {
			if up && sl.d.Joined() {
				s.Connected++
			}
			s.ByState[sl.d.State()]++
		}
		c.mu.Unlock()
	}
	return s
}

// Devices returns the identity of every device, in fleet order.
func (f *Fleet) Devices() []DeviceInfo {
	out := make([]DeviceInfo, len(f.slots))
	for i, sl := range f.slots {
		p, t := sl.profile, sl.timing
		out[i] = DeviceInfo{
			ID:            p.ID,
			Region:        p.Region,
			Model:         p.Model,
			FromFirmware:  p.FromFirmware,
			ToFirmware:    p.ToFirmware,
			BatteryPct:    p.BatteryPct,
			Charging:      p.Charging,
			RSSIMean:      p.RSSIMean,
			Wave:          p.Wave,
			BadBuild:      p.BadBuild,
			RolloutOffset: t.RolloutStart,
			RolloutEnd:    p.Fate.Final(),
		}
	}
	return out
}

// GroundTruth returns the ground truth of every device as of now, in fleet
// order: what happened to it, what would have fixed it and how it stands.
// Call it after Run returns for the final record of a run.
func (f *Fleet) GroundTruth() []Truth {
	out := make([]Truth, len(f.slots))
	for _, c := range f.conns {
		c.mu.Lock()
		for _, sl := range c.slots {
			out[sl.profile.Index] = sl.d.Truth()
		}
		c.mu.Unlock()
	}
	return out
}

// WriteGroundTruth writes GroundTruth to w as JSON lines: one JSON object
// per device, in fleet order, each a Truth with its JSON field names
// ("v":1, "device_id", "region", "fate", "cause", "remedy",
// "retries_to_fix", "final_state", "verdict", ...), each line ending in
// "\n". A loader can read it with ClickHouse's JSONEachRow format.
func (f *Fleet) WriteGroundTruth(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, t := range f.GroundTruth() {
		if err := enc.Encode(t); err != nil {
			return fmt.Errorf("write ground truth: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write ground truth: %w", err)
	}
	return nil
}

// WriteGroundTruthFile writes the ground truth to path (see
// WriteGroundTruth), through a temporary file renamed into place, so a
// reader never sees half a file.
func (f *Fleet) WriteGroundTruthFile(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".truth-*")
	if err != nil {
		return fmt.Errorf("write ground truth: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := f.WriteGroundTruth(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write ground truth: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write ground truth: %w", err)
	}
	return nil
}

// Run connects the fleet and simulates it until ctx is done: each device
// on its own MQTT v5 connection (or over Config.Conns shared ones), coming
// online at Config.ConnectRate devices a second, walking its rollout wave
// and answering commands. Then it disconnects every connection cleanly and
// returns once all its goroutines have exited.
//
// Run returns an error wrapping ErrConnect if the fleet's first connection
// attempt fails (broker unreachable, credentials refused); connections
// lost later are re-established with backoff. It returns nil when ctx
// ends. A fleet runs once: a second call returns ErrRunning.
func (f *Fleet) Run(ctx context.Context) error {
	if !f.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()

	start := time.Now()
	f.start.Store(&start)
	f.log.Info("simulator starting", "devices", len(f.slots), "connections", len(f.conns), "broker", f.broker.Redacted(),
		"seed", f.cfg.Seed, "from", f.cfg.FromFirmware, "to", f.cfg.ToFirmware, "waves", f.cfg.Waves,
		"telemetry_interval", f.cfg.TelemetryInterval)
	ramp := time.NewTimer(0)
	defer ramp.Stop()
	for i, c := range f.conns {
		if wait := time.Until(start.Add(c.dialAt)); wait > 0 {
			ramp.Reset(wait)
			select {
			case <-ctx.Done():
				return nil
			case <-ramp.C:
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err := c.start(ctx, &wg, start); err != nil {
			return fmt.Errorf("connect %s: %w", c.id, err)
		}
		if i == 0 {
			if err := c.awaitFirstConnection(ctx); err != nil {
				return fmt.Errorf("%w %s: %w", ErrConnect, f.broker.Redacted(), err)
			}
		}
	}
	if ctx.Err() == nil {
		f.log.Info("simulator ramp-up done", "connections", len(f.conns), "took", time.Since(start).Round(time.Millisecond))
	}
	<-ctx.Done()
	f.log.Info("simulator stopping")
	return nil
}

// runTime returns the run time now; zero before Run.
func (f *Fleet) runTime() time.Duration {
	if s := f.start.Load(); s != nil {
		return time.Since(*s)
	}
	return 0
}
