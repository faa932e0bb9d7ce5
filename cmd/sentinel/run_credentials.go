package main

import (
	"crypto/rand"
	"fmt"

	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
)

// The user names `sentinel run` gives its own clients.
const (
	runIngestorUser  = "sentinel-ingestor"
	runRecovererUser = "sentinel-recoverer"
	runGatewayUser   = "sentinel-gateway"
	runOpsUser       = "ops"
)

// runCredentials are the credentials of one in-process run, generated at
// start and never written down: the services, a gateway for the
// simulator's --conns mode and an ops user get random passwords (bcrypt at
// its minimum cost: hashing a 128-bit random password slowly buys
// nothing); every simulated device's password is derived from a random
// key, so 10,000 devices cost no hashing and no file (auth.DevicePassword).
type runCredentials struct {
	users     *auth.Users
	deviceKey []byte
	passwords map[string]string // user name -> password
}

func newRunCredentials() (*runCredentials, error) {
	rc := &runCredentials{users: auth.NewUsers(), deviceKey: make([]byte, 32), passwords: map[string]string{}}
	_, _ = rand.Read(rc.deviceKey) // crypto/rand.Read never fails (Go 1.24+)
	for name, role := range map[string]auth.Role{
		runIngestorUser: auth.RoleService, runRecovererUser: auth.RoleService,
		runGatewayUser: auth.RoleGateway, runOpsUser: auth.RoleOps,
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
func (rc *runCredentials) apply(cfg *pipelineConfig) {
	if cfg.Broker.Auth.Users == nil {
		cfg.Broker.Auth.Users = auth.NewUsers()
	}
	cfg.Broker.Auth.Users.Merge(rc.users)
	cfg.Broker.Auth.DeviceKey = rc.deviceKey
	if cfg.Ingestor.Username == "" {
		cfg.Ingestor.Username, cfg.Ingestor.Password = runIngestorUser, rc.passwords[runIngestorUser]
	}
	if cfg.Recoverer.Username == "" {
		cfg.Recoverer.Username, cfg.Recoverer.Password = runRecovererUser, rc.passwords[runRecovererUser]
	}
	if cfg.Fleet.Username == "" && cfg.Fleet.CredentialsFile == "" {
		cfg.Fleet.Username, cfg.Fleet.Password = runGatewayUser, rc.passwords[runGatewayUser]
	}
	if cfg.Fleet.DeviceCredential == nil {
		cfg.Fleet.DeviceCredential = derivedCredential(rc.deviceKey)
	}
}
