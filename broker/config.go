package broker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/sentinel-iot/sentinel/broker/hooks/acl"
	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
	"github.com/sentinel-iot/sentinel/broker/hooks/limits"
	"github.com/sentinel-iot/sentinel/broker/hooks/store"
)

// ErrConfig means a Config field is unusable.
var ErrConfig = errors.New("broker: invalid config")

// The defaults a zero Config field takes, exported so that `sentinel
// broker`'s flags state them once.
const (
	// DefaultAddr is the plain TCP listener's address.
	DefaultAddr = "127.0.0.1:1883"
	// DefaultMaxPacketSize is the largest packet accepted, in bytes.
	DefaultMaxPacketSize = 128 << 10
	// MaxPacketSizeLimit is the largest MaxPacketSize accepted: 256 MiB,
	// just above the largest packet MQTT can frame (a Remaining Length of
	// at most 268,435,455 bytes, MQTT v5 §1.5.5).
	MaxPacketSizeLimit = 256 << 20
	// DefaultReceiveMaximum is LimitsConfig.ReceiveMaximum's default.
	DefaultReceiveMaximum = 1024
	// DefaultMaxInflight is LimitsConfig.MaxInflight's default: the
	// protocol's maximum (a 16-bit packet identifier, MQTT v5 §2.2.1).
	DefaultMaxInflight = math.MaxUint16
	// DefaultMaxConnections is LimitsConfig.MaxConnections's default.
	DefaultMaxConnections = 200_000
	// DefaultMaxSessionExpiry is LimitsConfig.MaxSessionExpiry's default.
	DefaultMaxSessionExpiry = 24 * time.Hour
	// DefaultMaxMessageExpiry is LimitsConfig.MaxMessageExpiry's default.
	DefaultMaxMessageExpiry = 24 * time.Hour
	// DefaultMaxKeepAlive is LimitsConfig.MaxKeepAlive's default and
	// largest value: the protocol's maximum Keep Alive, a 16-bit count of
	// seconds (MQTT v5 §3.1.2.10; Mosquitto's max_keepalive default).
	DefaultMaxKeepAlive = math.MaxUint16 * time.Second
)

// DefaultClientIdentity is TLSConfig.ClientIdentity's default: a device
// certificate names its device in its subject's Common Name, as AWS IoT
// Core's thing certificates do.
const DefaultClientIdentity = auth.IdentityCN

// DefaultDeviceRate is LimitsConfig.DeviceRate's default: 20 messages/s
// with bursts of 200, where a simulated device sends about one every two
// seconds.
var DefaultDeviceRate = limits.Rate{PerSecond: 20, Burst: 200}

// Config configures a Broker. Zero fields take defaults that work on a
// laptop, except Auth, whose zero value admits nobody.
type Config struct {
	// Addr is the TCP address to listen on. Default DefaultAddr; port 0
	// picks a free port (see Broker.Addr).
	Addr string
	// MaxPacketSize is the largest MQTT packet accepted, in bytes. Default
	// DefaultMaxPacketSize (128 KiB); at most MaxPacketSizeLimit.
	MaxPacketSize uint32
	// Auth names the users and the ACL. The zero value admits nobody.
	Auth AuthConfig
	// Limits bound clients' traffic and the broker's sessions; zero fields
	// take laptop defaults (see LimitsConfig).
	Limits LimitsConfig
	// TLS adds a TLS listener beside the plain one. Default: none.
	TLS TLSConfig
	// WebsocketAddr adds an MQTT-over-websocket listener on this address
	// (path /). Default: none.
	WebsocketAddr string
	// Logger receives broker events. Default: discarded.
	Logger *slog.Logger
	// Store keeps sessions, subscriptions, retained and in-flight messages
	// on disk, so a restart on the same directory loses nothing a publisher
	// saw acknowledged. Default: no store, everything in memory.
	Store StoreConfig
}

// StoreConfig configures the broker's on-disk store (broker/hooks/store).
type StoreConfig struct {
	// Dir is the store's directory (a pebble database). Empty: no store.
	Dir string
	// Acks says when a QoS 1 or 2 publish is acknowledged. Default
	// store.AckDurable: once what it wrote is fsynced, by a group commit.
	Acks store.AckMode
	// BacklogBytes is the disk budget for the backlogs of sessions whose
	// in-flight window (Limits.MaxInflight) is full: their messages queue
	// in the store, in order, and are delivered as the window frees. Past
	// the budget, publishes a full session would need are refused with
	// PUBACK 0x97 (quota exceeded), and their publishers keep them. Default
	// DefaultBacklogBytes; negative: no backlog, refuse once the window is
	// full. Without Dir there is no backlog either.
	BacklogBytes int64
}

// DefaultBacklogBytes, 4 GiB, holds about two hours of the demo's traffic
// for a stalled ingestor: `make demo` runs 1,000 devices at about 950
// msg/s (README, "Two commands"; rounded up to 1,000), and a reading
// takes about 600 bytes in the backlog (a 263-byte telemetry payload,
// base64 in mochi's JSON record, measured by the store's
// TestBacklogRecordSize): 1,000 msg/s x 600 B = 600 kB/s, 2.16 GB an
// hour, so 4 GiB lasts 7,100 s. Pebble's keys, WAL and not yet compacted
// files can take up to about as much again on disk.
const DefaultBacklogBytes = 4 << 30

// AuthConfig says who may connect and what they may do. Its zero value
// admits nobody: a broker reachable by devices must name its users.
type AuthConfig struct {
	// CredentialsFile is a credentials file (see auth.ReadUsers for the
	// format; `sentinel broker adduser` writes it). Default: none.
	CredentialsFile string
	// Users are credentials built in memory, added to the file's (an
	// in-memory user wins over a file user of the same name). Default: none.
	Users *auth.Users
	// DeviceKey admits any device whose password is derived from it (see
	// auth.Options.DeviceKey); `sentinel run` uses it for its simulated
	// fleet. Default: none.
	DeviceKey []byte
	// AllowAnonymous admits clients without a user name, with every right
	// (acl.DefaultRules gives the anonymous role everything). For
	// development and in-process tests only. Default false.
	AllowAnonymous bool
	// Rules is the ACL, first match wins, no match denies. Default:
	// acl.DefaultRules().
	Rules []acl.Rule
}

// LimitsConfig bounds what clients may do. Zero fields take their
// defaults, which suit a laptop running 10,000 simulated devices.
type LimitsConfig struct {
	// ReceiveMaximum is how many unacknowledged QoS 1 and 2 messages a
	// client may send the broker at once (MQTT 5 Receive Maximum, told to
	// the client in CONNACK). Default DefaultReceiveMaximum (1024).
	ReceiveMaximum uint16
	// MaxInflight is how many unacknowledged QoS 1 and 2 messages the broker
	// keeps in flight for one session. Default DefaultMaxInflight (65535),
	// the protocol's maximum. Messages past it queue in the session's
	// backlog on disk (StoreConfig.BacklogBytes), or, past that budget or
	// without a store, their publishes are refused with 0x97; upstream
	// mochi acknowledged and dropped them.
	MaxInflight uint16
	// MaxConnections refuses connections past this many with CONNACK 0x89
	// (Server busy). Default DefaultMaxConnections (200,000); negative is
	// an error.
	MaxConnections int64
	// MaxSessionExpiry caps the session expiry a client asks for: how long
	// the broker keeps a disconnected client's session. Default
	// DefaultMaxSessionExpiry (24h); otherwise at least 1s.
	MaxSessionExpiry time.Duration
	// MaxMessageExpiry caps how long an undelivered message is kept.
	// Default DefaultMaxMessageExpiry (24h); otherwise at least 1s.
	MaxMessageExpiry time.Duration
	// MaxKeepAlive caps the Keep Alive a client asks for. Every CONNACK
	// announces the keep alive the broker enforces (Server Keep Alive,
	// MQTT v5 §3.2.2.3.14, which the client must use [MQTT-3.2.2-21]): the
	// client's own, or this when it asked for more or for none (0), as
	// Mosquitto's max_keepalive does. Default DefaultMaxKeepAlive
	// (65,535 s); between 1s and that, in whole seconds.
	MaxKeepAlive time.Duration
	// DeviceRate is the publish rate each device connection may sustain,
	// and its burst; past it the broker disconnects the device with reason
	// 0x96 (Message rate too high). Default DefaultDeviceRate. Gateways,
	// services and ops are not limited: a gateway carries many devices,
	// services are Sentinel's own. Zero takes the default; a negative
	// PerSecond turns it off.
	DeviceRate limits.Rate
}

// TLSConfig configures the TLS listener, served beside plain TCP.
type TLSConfig struct {
	// Addr is the address of the TLS listener, e.g. ":8883"; port 0 picks
	// a free port (see Broker.TLSAddr). Default: no TLS listener.
	Addr string
	// CertFile and KeyFile are the server's PEM certificate (chain) and key.
	// Required with Addr, and only with it.
	CertFile, KeyFile string
	// ClientCAFile, when set, makes the TLS listener a device listener
	// with mutual TLS: each client presents a certificate issued by a CA
	// of this PEM bundle, is admitted as the device the certificate names
	// (ClientIdentity), and must use that name as its client ID (CONNACK
	// 0x85 otherwise); no certificate is 0x87, an untrusted or expired one
	// 0x86, a revoked one (DenyFile) 0x8A. Default: password login.
	ClientCAFile string
	// ClientIdentity is where a device certificate names the device:
	// auth.IdentityCN (default) or auth.IdentityDNS.
	ClientIdentity string
	// DenyFile lists revoked device certificates by serial number (see
	// auth.CertsConfig.DenyFile); re-read with the credentials on SIGHUP.
	DenyFile string
}

func (c *Config) ensureDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
	c.Limits.ensureDefaults()
	if c.Store.BacklogBytes == 0 {
		c.Store.BacklogBytes = DefaultBacklogBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

func (c *LimitsConfig) ensureDefaults() {
	if c.ReceiveMaximum == 0 {
		c.ReceiveMaximum = DefaultReceiveMaximum
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.MaxSessionExpiry == 0 {
		c.MaxSessionExpiry = DefaultMaxSessionExpiry
	}
	if c.MaxMessageExpiry == 0 {
		c.MaxMessageExpiry = DefaultMaxMessageExpiry
	}
	if c.MaxKeepAlive == 0 {
		c.MaxKeepAlive = DefaultMaxKeepAlive
	}
	if c.DeviceRate.PerSecond == 0 {
		c.DeviceRate = DefaultDeviceRate
	}
}

// validate reports the first unusable field of a Config whose defaults
// are filled, wrapping ErrConfig.
func (c *Config) validate() error {
	switch l, t := c.Limits, c.TLS; {
	case c.MaxPacketSize > MaxPacketSizeLimit:
		return fmt.Errorf("%w: MaxPacketSize %d: want at most %d", ErrConfig, c.MaxPacketSize, MaxPacketSizeLimit)
	case l.MaxConnections < 0:
		return fmt.Errorf("%w: Limits.MaxConnections %d: want at least 1", ErrConfig, l.MaxConnections)
	case l.MaxSessionExpiry < time.Second:
		return fmt.Errorf("%w: Limits.MaxSessionExpiry %v: want at least 1s", ErrConfig, l.MaxSessionExpiry)
	case l.MaxMessageExpiry < time.Second:
		return fmt.Errorf("%w: Limits.MaxMessageExpiry %v: want at least 1s", ErrConfig, l.MaxMessageExpiry)
	case l.MaxKeepAlive < time.Second || l.MaxKeepAlive > DefaultMaxKeepAlive || l.MaxKeepAlive%time.Second != 0:
		return fmt.Errorf("%w: Limits.MaxKeepAlive %v: want whole seconds from 1s to %v", ErrConfig, l.MaxKeepAlive, DefaultMaxKeepAlive)
	case l.DeviceRate.Burst < 0:
		return fmt.Errorf("%w: Limits.DeviceRate.Burst %d: want at least 0", ErrConfig, l.DeviceRate.Burst)
	case t.Addr != "" && (t.CertFile == "" || t.KeyFile == ""):
		return fmt.Errorf("%w: TLS.Addr %s needs TLS.CertFile and TLS.KeyFile", ErrConfig, t.Addr)
	case t.Addr == "" && (t.ClientCAFile != "" || t.DenyFile != ""):
		return fmt.Errorf("%w: TLS.ClientCAFile and TLS.DenyFile need TLS.Addr", ErrConfig)
	case t.ClientCAFile == "" && t.DenyFile != "":
		return fmt.Errorf("%w: TLS.DenyFile needs TLS.ClientCAFile", ErrConfig)
	case t.Addr == "" && (t.CertFile != "" || t.KeyFile != ""):
		return fmt.Errorf("%w: TLS.CertFile and TLS.KeyFile need TLS.Addr", ErrConfig)
	}
	return nil
}

// capabilities returns mochi's capabilities for cfg.
func (c *Config) capabilities() *mqtt.Capabilities {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = c.MaxPacketSize
	caps.ReceiveMaximum = c.Limits.ReceiveMaximum
	caps.MaximumInflight = c.Limits.MaxInflight
	caps.MaximumClients = c.Limits.MaxConnections
	caps.MaximumSessionExpiryInterval = uint32(min(c.Limits.MaxSessionExpiry/time.Second, math.MaxUint32))
	caps.MaximumMessageExpiryInterval = int64(c.Limits.MaxMessageExpiry / time.Second)
	// A PUBACK carries the broker's own properties, not the publisher's
	// user properties echoed back (mochi's default copies them: clients
	// expecting a 2-4 byte PUBACK broke, issue 14).
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	return caps
}
