package simulator

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/simulator/device"
)

// Fleet is a set of simulated devices. Build it with New, start it with Run.
// Stats and Devices are safe to call at any time, from any goroutine.
type Fleet struct {
	cfg    Config
	broker *url.URL
	log    *slog.Logger
	nodes  []*node

	started atomic.Bool

	published        atomic.Uint64
	publishErrors    atomic.Uint64
	commandsReceived atomic.Uint64
	invalidCommands  atomic.Uint64
}

// DeviceInfo is a device's static identity and the truth about how its
// first update ends, for checking analytics and the recovery controller.
type DeviceInfo struct {
	// ID is the device ID, also its MQTT client ID.
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
	// Charging is true when the device is on external power.
	Charging bool
	// RSSIMean is the device's mean signal strength in dBm.
	RSSIMean float64
	// RolloutOffset is how long after its first connection the device
	// starts its update.
	RolloutOffset time.Duration
	// RolloutEnd is the state the device's first update ends in: updated,
	// partial, install_failed or download_failed.
	RolloutEnd proto.State
}

// Stats is a snapshot of a fleet's counters.
type Stats struct {
	// Connected is the number of devices whose MQTT connection is up.
	Connected int
	// Published is the number of telemetry and status messages the broker
	// acknowledged.
	Published uint64
	// PublishErrors is the number of messages that could not be published
	// (connection down, no acknowledgement in time).
	PublishErrors uint64
	// CommandsReceived is the number of valid commands devices received.
	CommandsReceived uint64
	// InvalidCommands is the number of messages on command topics that did
	// not decode as a command for that device.
	InvalidCommands uint64
	// ByState counts the devices in each OTA state.
	ByState map[proto.State]int
}

// New checks cfg, fills in its defaults and builds the fleet it describes.
// It does not connect: Run does. The same Config always builds the same
// fleet.
func New(cfg Config) (*Fleet, error) {
	cfg.ensureDefaults()
	u, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	profiles, err := device.Generate(device.Spec{
		Devices:      cfg.Devices,
		Seed:         cfg.Seed,
		FailureShare: cfg.FailureShare,
		FromFirmware: cfg.FromFirmware,
		ToFirmware:   cfg.ToFirmware,
	})
	if err != nil {
		return nil, fmt.Errorf("generate fleet: %w", err)
	}
	f := &Fleet{cfg: cfg, broker: u, log: cfg.Logger, nodes: make([]*node, len(profiles))}
	for i, p := range profiles {
		f.nodes[i] = newNode(f, p)
	}
	return f, nil
}

// Run connects every device, each with its own MQTT v5 connection, at most
// Config.ConnectRate new connections a second, and simulates the fleet until
// ctx is done. Then it disconnects every device cleanly and returns once
// all its goroutines have exited.
//
// Run returns an error wrapping ErrConnect if the first device's first
// connection attempt fails (broker unreachable, credentials refused);
// connections lost later are re-established with backoff. It returns nil
// when ctx ends. A fleet runs once: a second call returns ErrRunning.
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

	f.log.Info("simulator starting", "devices", len(f.nodes), "broker", f.broker.Redacted(),
		"seed", f.cfg.Seed, "from", f.cfg.FromFirmware, "to", f.cfg.ToFirmware)
	gap := max(time.Second/time.Duration(f.cfg.ConnectRate), time.Microsecond)
	ramp := time.NewTicker(gap)
	defer ramp.Stop()

connect:
	for i, n := range f.nodes {
		if i > 0 {
			select {
			case <-ctx.Done():
				break connect
			case <-ramp.C:
			}
		}
		cm, err := autopaho.NewConnection(ctx, n.clientConfig(ctx))
		if err != nil {
			return fmt.Errorf("connect device %s: %w", n.p.ID, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.run(ctx, cm)
		}()
		if i == 0 {
			if err := n.awaitFirstConnection(ctx); err != nil {
				return fmt.Errorf("%w %s: %w", ErrConnect, f.broker.Redacted(), err)
			}
		}
	}
	if ctx.Err() == nil {
		f.log.Info("simulator ramp-up done", "devices", len(f.nodes))
	}
	<-ctx.Done()
	f.log.Info("simulator stopping")
	return nil
}

// Stats returns a snapshot of the fleet's counters.
func (f *Fleet) Stats() Stats {
	s := Stats{
		Published:        f.published.Load(),
		PublishErrors:    f.publishErrors.Load(),
		CommandsReceived: f.commandsReceived.Load(),
		InvalidCommands:  f.invalidCommands.Load(),
		ByState:          make(map[proto.State]int),
	}
	for _, n := range f.nodes {
		if n.online.Load() {
			s.Connected++
		}
		s.ByState[n.loadState()]++
	}
	return s
}

// Devices returns the identity of every device, in fleet order.
func (f *Fleet) Devices() []DeviceInfo {
	out := make([]DeviceInfo, len(f.nodes))
	for i, n := range f.nodes {
		p := n.p
		out[i] = DeviceInfo{
			ID:            p.ID,
			Region:        p.Region,
			Model:         p.Model,
			FromFirmware:  p.FromFirmware,
			ToFirmware:    p.ToFirmware,
			BatteryPct:    p.BatteryPct,
			Charging:      p.Charging,
			RSSIMean:      p.RSSIMean,
			RolloutOffset: n.rolloutOffset(),
			RolloutEnd:    p.Fate.Final(),
		}
	}
	return out
}
