package broker

import (
	"errors"
	"fmt"
	"math"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/sentinel-iot/sentinel/broker/hooks/acl"
	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
	"github.com/sentinel-iot/sentinel/broker/hooks/limits"
)

// ErrConfig means a Config field is unusable.
var ErrConfig = errors.New("broker: invalid config")

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
	// the client in CONNACK). Default 1024.
	ReceiveMaximum uint16
	// MaxInflight is how many unacknowledged QoS 1 and 2 messages the broker
	// keeps for one session before dropping. Default 65535, the protocol's
	// maximum: an ingestor that falls behind, or a warehouse outage, must
	// queue (mochi's default 8192 dropped the rest).
	MaxInflight uint16
	// MaxConnections refuses connections past this many with CONNACK 0x89
	// (Server busy). Default 200,000.
	MaxConnections int64
	// MaxSessionExpiry caps the session expiry a client asks for: how long
	// the broker keeps a disconnected client's session. Default 24h.
	MaxSessionExpiry time.Duration
	// MaxMessageExpiry caps how long an undelivered message is kept.
	// Default 24h.
	MaxMessageExpiry time.Duration
	// DeviceRate is the publish rate each device connection may sustain,
	// and its burst; past it the broker disconnects the device with reason
	// 0x96 (Message rate too high). Default 20 messages/s with bursts of
	// 200: a simulated device sends about one every two seconds. Gateways,
	// services and ops are not limited: a gateway carries many devices,
	// services are Sentinel's own. Zero takes the default; a negative
	// PerSecond turns it off.
	DeviceRate limits.Rate
}

func (c *LimitsConfig) ensureDefaults() {
	if c.ReceiveMaximum == 0 {
		c.ReceiveMaximum = 1024
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = math.MaxUint16
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = 200_000
	}
	if c.MaxSessionExpiry == 0 {
		c.MaxSessionExpiry = 24 * time.Hour
	}
	if c.MaxMessageExpiry == 0 {
		c.MaxMessageExpiry = 24 * time.Hour
	}
	if c.DeviceRate.PerSecond == 0 {
		c.DeviceRate = limits.Rate{PerSecond: 20, Burst: 200}
	}
}

// capabilities returns mochi's capabilities for cfg.
func (cfg *Config) capabilities() *mqtt.Capabilities {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = cfg.MaxPacketSize
	caps.ReceiveMaximum = cfg.Limits.ReceiveMaximum
	caps.MaximumInflight = cfg.Limits.MaxInflight
	caps.MaximumClients = cfg.Limits.MaxConnections
	caps.MaximumSessionExpiryInterval = uint32(min(cfg.Limits.MaxSessionExpiry/time.Second, math.MaxUint32))
	caps.MaximumMessageExpiryInterval = int64(cfg.Limits.MaxMessageExpiry / time.Second)
	return caps
}

// loadUsers reads Auth.CredentialsFile and adds Auth.Users.
func (b *Broker) loadUsers() (*auth.Users, error) {
	a := b.cfg.Auth
	users := auth.NewUsers()
	if a.CredentialsFile != "" {
		var err error
		if users, err = auth.LoadUsers(a.CredentialsFile); err != nil {
			return nil, fmt.Errorf("%w: Auth.CredentialsFile: %w", ErrConfig, err)
		}
	}
	if a.Users != nil {
		users.Merge(a.Users)
	}
	return users, nil
}

// ReloadCredentials reads Auth.CredentialsFile again (`sentinel broker`
// does on SIGHUP), so users added with `sentinel broker adduser` can
// connect without a restart. Connected clients keep the identity they
// connected with until they reconnect. On error the old users stay.
func (b *Broker) ReloadCredentials() (users int, err error) {
	u, err := b.loadUsers()
	if err != nil {
		return 0, err
	}
	b.sec.users.Replace(u)
	return u.Len(), nil
}

// addSecurityHooks adds the identity, ACL, limits and metrics hooks to the
// server, in that order.
func (b *Broker) addSecurityHooks() error {
	a := b.cfg.Auth
	users, err := b.loadUsers()
	if err != nil {
		return err
	}
	b.sec.users = users
	m := newMetrics(b.info)
	m.reg.MustRegister(storeCollector{b: b})
	b.sec.metrics = m
	authHook, aclHook := new(auth.Hook), new(acl.Hook)
	if err := b.server.AddHook(authHook, &auth.Options{
		Users: users, DeviceKey: a.DeviceKey, AllowAnonymous: a.AllowAnonymous,
		WillAllowed: func(id auth.Identity, topic string) bool { return aclHook.Allows(id, acl.Write, topic) },
		Server:      b.server, OnReject: m.authDenied,
	}); err != nil {
		return fmt.Errorf("broker: add auth hook: %w", err)
	}
	if err := b.server.AddHook(aclHook, &acl.Options{
		Rules: a.Rules, Identify: authHook.Identify, OnDeny: m.aclDenied,
	}); err != nil {
		return fmt.Errorf("broker: add acl hook: %w", err)
	}
	rate := b.cfg.Limits.DeviceRate
	if err := b.server.AddHook(new(limits.Hook), &limits.Options{
		RateFor: func(cl *mqtt.Client) limits.Rate {
			if id, ok := authHook.Identify(cl); ok && id.Role == auth.RoleDevice {
				return rate
			}
			return limits.Rate{}
		},
		MaxPacketSize: b.cfg.MaxPacketSize,
		Server:        b.server,
		OnReject:      m.reject,
	}); err != nil {
		return fmt.Errorf("broker: add limits hook: %w", err)
	}
	if err := b.server.AddHook(&metricsHook{m: m}, nil); err != nil {
		return fmt.Errorf("broker: add metrics hook: %w", err)
	}
	return nil
}
