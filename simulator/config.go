package simulator

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"
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
)

// Errors the simulator returns, for errors.Is.
var (
	// ErrConfig is wrapped by every error New returns for an unusable Config.
	ErrConfig = errors.New("simulator: invalid config")
	// ErrRunning is returned by Run when the fleet is already running or has run.
	ErrRunning = errors.New("simulator: fleet already started")
	// ErrConnect is wrapped by the error Run returns when the fleet's first
	// device cannot connect to the broker.
	ErrConnect = errors.New("simulator: cannot connect to broker")
)

// Config configures a fleet. The zero value of every field means its default.
type Config struct {
	// Broker is the MQTT server URL, tcp:// (or mqtt://), tls:// (or ssl://,
	// mqtts://), ws:// or wss://. Default "tcp://127.0.0.1:1883".
	Broker string
	// Devices is the number of devices. Default 1000.
	Devices int
	// Seed selects the fleet: the same seed gives the same devices, regions,
	// batteries and failures. Default 1 (0 means the default).
	Seed int64
	// TelemetryInterval is the time between two readings of one device,
	// jittered by up to ±10 % deterministically. Default 2s.
	TelemetryInterval time.Duration
	// FailureShare is the share of devices whose install ends partial or
	// install_failed, before each region's bias multiplies it. Default 0.15;
	// a negative value means no injected failures (weak-signal download
	// failures still happen).
	FailureShare float64
	// FromFirmware is the version devices run before the rollout. Default "1.4.2".
	FromFirmware string
	// ToFirmware is the version the rollout installs. Default "1.5.0".
	ToFirmware string
	// RolloutSpread spreads the start of the devices' updates: each starts
	// at a deterministic offset in [0, RolloutSpread) after it first
	// connects. Default 10s.
	RolloutSpread time.Duration
	// StepDuration is the mean time a device spends in each OTA phase
	// (downloading, verifying, ...); each step lasts 0.5 to 1.5 times it.
	// Default 1s.
	StepDuration time.Duration
	// ConnectRate is how many devices connect per second while the fleet
	// ramps up. Default 500.
	ConnectRate int
	// Username, when set, is the MQTT user name every device connects with.
	// Default none.
	Username string
	// Password is sent with Username. Default none.
	Password string
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
	if c.RolloutSpread == 0 {
		c.RolloutSpread = DefaultRolloutSpread
	}
	if c.StepDuration == 0 {
		c.StepDuration = DefaultStepDuration
	}
	if c.ConnectRate == 0 {
		c.ConnectRate = DefaultConnectRate
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// validate checks a Config whose defaults are filled in and returns the
// parsed broker URL.
func (c *Config) validate() (*url.URL, error) {
	u, err := url.Parse(c.Broker)
	if err != nil {
		return nil, fmt.Errorf("%w: broker %q: %w", ErrConfig, c.Broker, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "tcp", "mqtt", "tls", "ssl", "mqtts", "ws", "wss":
	default:
		return nil, fmt.Errorf("%w: broker %q: scheme must be tcp, mqtt, tls, ssl, mqtts, ws or wss", ErrConfig, c.Broker)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: broker %q has no host", ErrConfig, c.Broker)
	}
	switch {
	case c.Devices < 0:
		return nil, fmt.Errorf("%w: devices %d is negative", ErrConfig, c.Devices)
	case c.TelemetryInterval < 0:
		return nil, fmt.Errorf("%w: telemetry interval %v is negative", ErrConfig, c.TelemetryInterval)
	case c.FailureShare > 1:
		return nil, fmt.Errorf("%w: failure share %g is above 1", ErrConfig, c.FailureShare)
	case c.RolloutSpread < 0:
		return nil, fmt.Errorf("%w: rollout spread %v is negative", ErrConfig, c.RolloutSpread)
	case c.StepDuration < 0:
		return nil, fmt.Errorf("%w: step duration %v is negative", ErrConfig, c.StepDuration)
	case c.ConnectRate < 0:
		return nil, fmt.Errorf("%w: connect rate %d is negative", ErrConfig, c.ConnectRate)
	case c.FromFirmware == c.ToFirmware:
		return nil, fmt.Errorf("%w: from and to firmware are both %q", ErrConfig, c.FromFirmware)
	}
	for _, fw := range []struct{ name, v string }{{"from firmware", c.FromFirmware}, {"to firmware", c.ToFirmware}} {
		if len(fw.v) > 64 || strings.ContainsAny(fw.v, "\x00\r\n") {
			return nil, fmt.Errorf("%w: %s %.70q must be at most 64 bytes without control characters", ErrConfig, fw.name, fw.v)
		}
	}
	return u, nil
}
