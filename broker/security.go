package broker

import (
	"fmt"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/sentinel-iot/sentinel/broker/hooks/acl"
	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
	"github.com/sentinel-iot/sentinel/broker/hooks/limits"
)

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
	if b.sec.certs != nil {
		if err := b.sec.certs.Reload(); err != nil {
			return 0, fmt.Errorf("%w: TLS.DenyFile: %w", ErrConfig, err)
		}
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
	if t := b.cfg.TLS; t.ClientCAFile != "" {
		certs, err := auth.LoadCerts(auth.CertsConfig{CAFile: t.ClientCAFile, Identity: t.ClientIdentity, DenyFile: t.DenyFile})
		if err != nil {
			return fmt.Errorf("%w: TLS: %w", ErrConfig, err)
		}
		b.sec.certs = certs
	}
	m := newMetrics(b.info, b.inflight)
	m.reg.MustRegister(storeCollector{b: b})
	b.sec.metrics = m
	authHook, aclHook := new(auth.Hook), new(acl.Hook)
	if err := b.server.AddHook(authHook, &auth.Options{
		Users: users, DeviceKey: a.DeviceKey, AllowAnonymous: a.AllowAnonymous,
		WillAllowed: func(id auth.Identity, topic string) bool { return aclHook.Allows(id, acl.Write, topic) },
		Server:      b.server, OnReject: m.authDenied,
		Certs: b.sec.certs, CertListener: tlsListenerID,
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
		MaxKeepAlive:  uint16(b.cfg.Limits.MaxKeepAlive / time.Second),
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
