package simulator

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sentinel-iot/sentinel/simulator/device"
)

// Defaults of Config.
const (
	DefaultBroker            = "tcp://127.0.0.1:1883"
	DefaultDevices           = 1000
	DefaultSeed              = 1
	DefaultTelemetryInterval = 2 * time.Second
	DefaultFailureShare      = 0.15
	DefaultFromFirmware      = "1.4.2"
	DefaultToFirmware        = "1.5.0"
	DefaultRolloutSpread     = 10 * time.Second
	DefaultStepDuration      = time.Second
	DefaultConnectRate       = 500
	DefaultTimeScale         = 60
	// DefaultEfficacyHorizon is the device time an efficacy run should
	// cover (Config.Horizon): a whole day, so overnight and working-hours
	// charge windows (device.RunStartHour is noon) happen within it.
	DefaultEfficacyHorizon = 24 * time.Hour
	DefaultBadBuildFactor  = device.DefaultBadBuildFactor
	// MinTelemetryInterval is the shortest telemetry interval accepted,
	// directly or through Rate: below it a device would do nothing but
	// publish.
	MinTelemetryInterval = 10 * time.Millisecond
	// SessionExpiry is how long the broker keeps a device's session (its
	// subscription and queued QoS 1 commands) after its connection drops.
	SessionExpiry = time.Hour
)

// DefaultWaves is the default rollout plan: 1 %, then 10 %, 50 % and all
// of the fleet, cumulative.
func DefaultWaves() []float64 { return []float64{1, 10, 50, 100} }

// Errors the simulator returns, for errors.Is.
var (
	// ErrConfig is wrapped by every error New returns for an unusable
	// Config; the error is a *ConfigError naming the field.
	ErrConfig = errors.New("simulator: invalid config")
	// ErrRunning is returned by Run when the fleet is already running or has run.
	ErrRunning = errors.New("simulator: fleet already started")
	// ErrConnect is wrapped by the error Run returns when the fleet's first
	// connection cannot reach the broker.
	ErrConnect = errors.New("simulator: cannot connect to broker")
)

// ConfigError is an unusable Config field. Field is the Go name of the
// field, so a command line can name its own flag for it.
type ConfigError struct {
	// Field is the name of the Config field, e.g. "Rate".
	Field string
	// Reason says what is wrong with its value.
	Reason string
}

// Error describes the field and what is wrong.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("%v: %s: %s", ErrConfig, e.Field, e.Reason)
}

// Unwrap returns ErrConfig.
func (e *ConfigError) Unwrap() error { return ErrConfig }

func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Config configures a fleet. The zero value of every field means its default.
type Config struct {
	// Broker is the MQTT server URL, tcp:// (or mqtt://), tls:// (or ssl://,
	// mqtts://), ws:// or wss://. Default "tcp://127.0.0.1:1883".
	Broker string
	// Devices is the number of devices. Default 1000.
	Devices int
	// Conns is the number of MQTT connections the devices share. Zero (the
	// default) gives every device its own connection, with its own Last
	// Will; K > 0 multiplexes the devices round-robin over K connections,
	// as a gateway would, for runs of 100k devices. Multiplexed devices
	// have no Last Will of their own (a connection has one will).
	Conns int
	// Seed selects the fleet: the same seed gives the same devices, regions,
	// batteries, failures and telemetry. Default 1 (0 means the default).
	Seed int64
	// TelemetryInterval is the time between two readings of one device,
	// jittered by ±10 % deterministically. Default 2s; at least
	// MinTelemetryInterval.
	TelemetryInterval time.Duration
	// Rate, when positive, is the fleet's target telemetry rate in
	// messages per second; it sets TelemetryInterval to Devices/Rate
	// seconds. Default 0: TelemetryInterval rules.
	Rate float64
	// FailureShare is the share of devices whose install fails (partial,
	// install_failed, verify_failed or boot_failed), before each region's
	// bias and the bad build multiply it. Default 0.15; a negative value
	// means no injected failures (download failures still happen).
	FailureShare float64
	// FromFirmware is the version devices run before the rollout. Default "1.4.2".
	FromFirmware string
	// ToFirmware is the version the rollout installs. Default "1.5.0".
	ToFirmware string
	// Waves is the rollout plan: cumulative percentages of the fleet
	// updating once each wave has begun, increasing, ending at 100.
	// Default DefaultWaves (1, 10, 50, 100).
	Waves []float64
	// WaveInterval is the time between the starts of two waves. Default:
	// RolloutSpread.
	WaveInterval time.Duration
	// RolloutSpread spreads the devices of one wave: each starts its update
	// at a deterministic offset in [0, RolloutSpread) after its wave
	// begins (and never before it has come online). Default 10s.
	RolloutSpread time.Duration
	// StepDuration is the mean time a device spends in each OTA phase
	// (downloading, verifying, ...); each step lasts 0.5 to 1.5 times it.
	// Default 1s.
	StepDuration time.Duration
	// BadBuild, when set, is a firmware version that fails far more often
	// (BadBuildFactor times the failure share; retries of it mostly fail).
	// It must be ToFirmware, the version this rollout installs. Default none.
	BadBuild string
	// BadBuildRegion limits the bad build's effect to one region. Default:
	// every region.
	BadBuildRegion string
	// BadBuildFactor multiplies the failure share of bad-build devices.
	// Default 4.
	BadBuildFactor float64
	// Health is the release health of builds after they install
	// (device.ReleaseHealth): crash loops, faster drain, lost
	// connectivity, per build and optionally per region. Default none.
	Health []device.ReleaseHealth
	// RegionWeights overrides the relative weights of the default regions
	// (eu-west, eu-north, us-east, us-west, sa-east, ap-south,
	// ap-northeast, af-south) by name; weights must be positive and
	// regions not named keep theirs. Default: none overridden.
	RegionWeights map[string]float64
	// TimeScale is how much faster the devices' physical model (battery
	// drain and charging, charger schedules, temperature, uptime) runs
	// than the wall clock, so a short run shows batteries move. Default 60
	// (a second of run is a minute of battery).
	TimeScale float64
	// Horizon, when set, is the device time a run of RunFor covers: it
	// sets TimeScale to Horizon / RunFor (whatever TimeScale says), so a
	// 90-second efficacy run can cover DefaultEfficacyHorizon, chargers'
	// overnight windows included. The OTA steps stay in run time; the
	// charge a flash or a download spends is physical either way. Default
	// 0: TimeScale decides.
	Horizon time.Duration
	// RunFor is how long the caller will run the fleet; only Horizon uses
	// it, and Horizon requires it.
	RunFor time.Duration
	// ConnectRate is how many devices come online per second while the
	// fleet ramps up (with Conns, connections are dialled at the same
	// pace). Default 500.
	ConnectRate int
	// Username, when set, is the MQTT user name every connection uses,
	// unless CredentialsFile names another. Default none.
	Username string
	// Password is sent with Username. Default none.
	Password string
	// CredentialsFile, when set, is a file of MQTT credentials for the
	// fleet; see ReadCredentials for its format. Default none.
	CredentialsFile string
	// DeviceCredential, when set, gives a device on its own connection its
	// credential when CredentialsFile lists none for it, before the shared
	// "*" one: `sentinel run` derives each device's password this way
	// instead of writing a file. Default none.
	DeviceCredential func(deviceID string) (Credential, bool)
	// Logger receives the fleet's logs. Default: discard.
	Logger *slog.Logger
}

// ensureDefaults fills in the zero fields of c.
func (c *Config) ensureDefaults() {
	if c.Broker == "" {
		c.Broker = DefaultBroker
	}
	if c.Devices == 0 {
		c.Devices = DefaultDevices
	}
	if c.Seed == 0 {
		c.Seed = DefaultSeed
	}
	if c.TelemetryInterval == 0 {
		c.TelemetryInterval = DefaultTelemetryInterval
	}
	switch {
	case c.FailureShare == 0:
		c.FailureShare = DefaultFailureShare
	case c.FailureShare < 0:
		c.FailureShare = 0
	}
	if c.FromFirmware == "" {
		c.FromFirmware = DefaultFromFirmware
	}
	if c.ToFirmware == "" {
		c.ToFirmware = DefaultToFirmware
	}
	if c.Waves == nil {
		c.Waves = DefaultWaves()
	}
	if c.RolloutSpread == 0 {
		c.RolloutSpread = DefaultRolloutSpread
	}
	if c.WaveInterval == 0 {
		c.WaveInterval = c.RolloutSpread
	}
	if c.StepDuration == 0 {
		c.StepDuration = DefaultStepDuration
	}
	if c.BadBuildFactor == 0 {
		c.BadBuildFactor = DefaultBadBuildFactor
	}
	if c.Horizon > 0 && c.RunFor > 0 {
		c.TimeScale = float64(c.Horizon) / float64(c.RunFor)
	}
	if c.TimeScale == 0 {
		c.TimeScale = DefaultTimeScale
	}
	if c.ConnectRate == 0 {
		c.ConnectRate = DefaultConnectRate
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// validate checks a Config whose defaults are filled in, applies Rate, and
// returns the parsed broker URL and the fleet's regions.
func (c *Config) validate() (*url.URL, []device.Region, error) {
	u, err := url.Parse(c.Broker)
	if err != nil {
		return nil, nil, configErr("Broker", "%q: %v", c.Broker, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "tcp", "mqtt", "tls", "ssl", "mqtts", "ws", "wss":
	default:
		return nil, nil, configErr("Broker", "%q: scheme must be tcp, mqtt, tls, ssl, mqtts, ws or wss", c.Broker)
	}
	if u.Host == "" {
		return nil, nil, configErr("Broker", "%q has no host", c.Broker)
	}
	checks := []struct {
		bad          bool
		field, about string
	}{
		{c.Devices < 0, "Devices", fmt.Sprintf("%d is negative", c.Devices)},
		{c.Conns < 0, "Conns", fmt.Sprintf("%d is negative", c.Conns)},
		{c.Conns > 0 && c.Conns > c.Devices, "Conns", fmt.Sprintf("%d connections for %d devices: at most one per device", c.Conns, c.Devices)},
		{c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0), "Rate", fmt.Sprintf("%g msg/s must be positive (or 0 to use the telemetry interval)", c.Rate)},
		{c.TelemetryInterval < MinTelemetryInterval, "TelemetryInterval", fmt.Sprintf("%v is under %v", c.TelemetryInterval, MinTelemetryInterval)},
		{c.FailureShare > 1 || math.IsNaN(c.FailureShare), "FailureShare", fmt.Sprintf("%g is above 1", c.FailureShare)},
		{c.RolloutSpread < 0, "RolloutSpread", fmt.Sprintf("%v is negative", c.RolloutSpread)},
		{c.WaveInterval < 0, "WaveInterval", fmt.Sprintf("%v is negative", c.WaveInterval)},
		{c.StepDuration < 0, "StepDuration", fmt.Sprintf("%v is negative", c.StepDuration)},
		{c.ConnectRate < 0, "ConnectRate", fmt.Sprintf("%d is negative", c.ConnectRate)},
		{!(c.TimeScale > 0) || math.IsInf(c.TimeScale, 0), "TimeScale", fmt.Sprintf("%g must be positive", c.TimeScale)},
		{c.Horizon < 0, "Horizon", fmt.Sprintf("%v is negative", c.Horizon)},
		{c.Horizon > 0 && c.RunFor <= 0, "RunFor", fmt.Sprintf("%v: Horizon %v needs the run's length to set the time scale", c.RunFor, c.Horizon)},
		{!(c.BadBuildFactor >= 1) || math.IsInf(c.BadBuildFactor, 0), "BadBuildFactor", fmt.Sprintf("%g must be at least 1", c.BadBuildFactor)},
		{c.FromFirmware == c.ToFirmware, "ToFirmware", fmt.Sprintf("from and to firmware are both %q", c.FromFirmware)},
		{c.BadBuild != "" && c.BadBuild != c.ToFirmware, "BadBuild", fmt.Sprintf("%q is not %q, the version this rollout installs", c.BadBuild, c.ToFirmware)},
		{c.BadBuildRegion != "" && c.BadBuild == "", "BadBuildRegion", "set without BadBuild"},
	}
	for _, ch := range checks {
		if ch.bad {
			return nil, nil, configErr(ch.field, "%s", ch.about)
		}
	}
	if c.Rate > 0 {
		c.TelemetryInterval = time.Duration(float64(c.Devices) / c.Rate * float64(time.Second))
		if c.TelemetryInterval < MinTelemetryInterval {
			return nil, nil, configErr("Rate", "%g msg/s for %d devices is one reading per device every %v, under %v",
				c.Rate, c.Devices, c.TelemetryInterval, MinTelemetryInterval)
		}
	}
	if err := device.CheckWaves(c.Waves); err != nil {
		return nil, nil, configErr("Waves", "%v", err)
	}
	if err := device.CheckHealth(c.Health); err != nil {
		return nil, nil, configErr("Health", "%v", err)
	}
	for _, fw := range []struct{ name, v string }{{"FromFirmware", c.FromFirmware}, {"ToFirmware", c.ToFirmware}} {
		if len(fw.v) > 64 || strings.ContainsAny(fw.v, "\x00\r\n") {
			return nil, nil, configErr(fw.name, "%.70q must be at most 64 bytes without control characters", fw.v)
		}
	}
	regions := device.DefaultRegions()
	for _, name := range slices.Sorted(maps.Keys(c.RegionWeights)) {
		w := c.RegionWeights[name]
		i := slices.IndexFunc(regions, func(r device.Region) bool { return r.Name == name })
		switch {
		case i < 0:
			return nil, nil, configErr("RegionWeights", "unknown region %q (regions: %s)", name, regionNames(regions))
		case !(w > 0) || math.IsInf(w, 0):
			return nil, nil, configErr("RegionWeights", "weight %g of %q must be positive", w, name)
		}
		regions[i].Weight = w
	}
	if r := c.BadBuildRegion; r != "" && !slices.ContainsFunc(regions, func(x device.Region) bool { return x.Name == r }) {
		return nil, nil, configErr("BadBuildRegion", "unknown region %q (regions: %s)", r, regionNames(regions))
	}
	return u, regions, nil
}

func regionNames(rs []device.Region) string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}
