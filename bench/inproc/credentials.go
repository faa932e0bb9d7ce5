package inproc

import (
	"crypto/rand"
	"fmt"

	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
	"github.com/sentinel-iot/sentinel/simulator"
)

// The user names a pipeline gives its own clients.
const (
	IngestorUser  = "sentinel-ingestor"
	RecovererUser = "sentinel-recoverer"
	GatewayUser   = "sentinel-gateway"
	// OpsUser may read the audit topics, as `sentinel run` tells its user.
	OpsUser = "ops"
)

// credentials are the credentials of one in-process run, generated at
// start and never written down: the services, a gateway for the
// simulator's --conns mode and an ops user get random passwords (bcrypt at
// its minimum cost: hashing a 128-bit random password slowly buys
// nothing); every simulated device's password is derived from a random
// key, so 10,000 devices cost no hashing and no file (auth.DevicePassword).
type credentials struct {
	users     *auth.Users
	deviceKey []byte
	passwords map[string]string // user name -> password
}

func newCredentials() (*credentials, error) {
	rc := &credentials{users: auth.NewUsers(), deviceKey: make([]byte, 32), passwords: map[string]string{}}
	_, _ = rand.Read(rc.deviceKey) // crypto/rand.Read never fails (Go 1.24+)
	for name, role := range map[string]auth.Role{
		IngestorUser: auth.RoleService, RecovererUser: auth.RoleService,
		GatewayUser: auth.RoleGateway, OpsUser: auth.RoleOps,
	} {
		pw := auth.GeneratePassword()
		if err := rc.users.Add(name, role, pw, auth.MinCost); err != nil {
			return nil, fmt.Errorf("generate credentials: %w", err)
		}
		rc.passwords[name] = pw
	}
	return rc, nil
}

// apply points the broker at the credentials and gives each client its
// own, unless the caller set one already.
func (rc *credentials) apply(cfg *Config) {
	if cfg.Broker.Auth.Users == nil {
		cfg.Broker.Auth.Users = auth.NewUsers()
	}
	cfg.Broker.Auth.Users.Merge(rc.users)
	cfg.Broker.Auth.DeviceKey = rc.deviceKey
	if cfg.Ingestor.Username == "" {
		cfg.Ingestor.Username, cfg.Ingestor.Password = IngestorUser, rc.passwords[IngestorUser]
	}
	if cfg.Recoverer.Username == "" {
		cfg.Recoverer.Username, cfg.Recoverer.Password = RecovererUser, rc.passwords[RecovererUser]
	}
	if cfg.Fleet.Username == "" && cfg.Fleet.CredentialsFile == "" {
		cfg.Fleet.Username, cfg.Fleet.Password = GatewayUser, rc.passwords[GatewayUser]
	}
	if cfg.Fleet.DeviceCredential == nil {
		cfg.Fleet.DeviceCredential = DerivedCredential(rc.deviceKey)
	}
}

// DerivedCredential gives each simulated device the password derived from
// key, the one the broker admits it with (auth.DevicePassword).
func DerivedCredential(key []byte) func(id string) (simulator.Credential, bool) {
	return func(id string) (simulator.Credential, bool) {
		return simulator.Credential{Username: id, Password: auth.DevicePassword(key, id)}, true
	}
}
