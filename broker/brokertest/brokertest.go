// Package brokertest starts Sentinel's own broker for a test: broker.New
// with its credentials, ACL and limits, listening on 127.0.0.1:0 and
// closed when the test ends, with a login for each role a test client
// plays. It is the one test broker of the repository: the services' tests
// talk to it over the wire, as they talk to a broker in production, and
// check-boundaries.sh lets their test files import it (and nothing else
// of the broker module).
package brokertest

import (
	"crypto/rand"
	"testing"

	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/broker/hooks/acl"
	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
)

// The user names of the logins a Broker holds, one per role.
const (
	ServiceUser = "test-service"
	GatewayUser = "test-gateway"
	OpsUser     = "test-ops"
)

// Login is what a client connects with.
type Login struct {
	Username, Password string
}

// Options adjust the broker a test starts; the zero value is Sentinel's
// broker as `sentinel broker` runs it, on a free loopback port.
type Options struct {
	// Configure, when set, adjusts the config before the broker starts
	// (limits, a store directory). Addr and Auth's users are set already.
	Configure func(*broker.Config)
	// GatewayReadsAudit lets the gateway login also read what ops may read
	// (sentinel/#). Sentinel's ACL gives no role both a fleet's rights and
	// the recoverer's audit; a test that plays the fleet and watches the
	// audit on one connection, so the broker's per-publisher order holds
	// between a command and its decision, needs both.
	GatewayReadsAudit bool
}

// Broker is a running broker and the logins its users have.
type Broker struct {
	*broker.Broker
	deviceKey []byte
	passwords map[string]string // user name -> password
}

// Start starts a broker for t with o's adjustments (at most one Options)
// and closes it when t ends.
func Start(t testing.TB, o ...Options) *Broker {
	t.Helper()
	var opts Options
	if len(o) > 0 {
		opts = o[0]
	}
	b := &Broker{deviceKey: make([]byte, 32), passwords: map[string]string{}}
	_, _ = rand.Read(b.deviceKey) // crypto/rand.Read never fails (Go 1.24+)
	users := auth.NewUsers()
	for name, role := range map[string]auth.Role{ServiceUser: auth.RoleService, GatewayUser: auth.RoleGateway, OpsUser: auth.RoleOps} {
		pw := auth.GeneratePassword()
		if err := users.Add(name, role, pw, auth.MinCost); err != nil {
			t.Fatalf("brokertest: add user %s: %v", name, err)
		}
		b.passwords[name] = pw
	}
	cfg := broker.Config{Addr: "127.0.0.1:0", Auth: broker.AuthConfig{Users: users, DeviceKey: b.deviceKey}}
	if opts.GatewayReadsAudit {
		cfg.Auth.Rules = append(acl.DefaultRules(), acl.Rule{Role: auth.RoleGateway, Access: acl.Read, Filter: "sentinel/#", Allow: true})
	}
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	bk, err := broker.New(cfg)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	if err := bk.Start(); err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	t.Cleanup(func() {
		if err := bk.Close(); err != nil {
			t.Errorf("brokertest: close: %v", err)
		}
	})
	b.Broker = bk
	return b
}

// Service is the login of a Sentinel service (the ingestor, the
// recoverer): it reads the fleet and writes commands and audit.
func (b *Broker) Service() Login { return Login{ServiceUser, b.passwords[ServiceUser]} }

// Gateway is the login of a connection that carries many devices: it
// writes their telemetry and status and reads their commands.
func (b *Broker) Gateway() Login { return Login{GatewayUser, b.passwords[GatewayUser]} }

// Ops is the login of a person watching: read-only, sentinel/# and $SYS.
func (b *Broker) Ops() Login { return Login{OpsUser, b.passwords[OpsUser]} }

// Device is the login of device id, whose client ID must be id: its
// password is derived from the broker's device key, as `sentinel run`
// derives its simulated fleet's (auth.DevicePassword).
func (b *Broker) Device(id string) Login {
	return Login{id, auth.DevicePassword(b.deviceKey, id)}
}
