package acl

import (
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
)

// Options configures the Hook.
type Options struct {
	// Rules are checked in order; the first match decides, no match denies.
	// Default: DefaultRules().
	Rules []Rule
	// Identify returns who a connected client is (auth.Hook.Identify). A
	// client it does not know is denied everything. Required.
	Identify func(cl *mqtt.Client) (auth.Identity, bool)
	// OnDeny, when set, is called for every denial, for metrics: the
	// client's role and the access it was refused.
	OnDeny func(role auth.Role, access Access)
}

// Hook is the default-deny ACL. mochi answers a denied SUBSCRIBE with
// SUBACK reason 0x87 (Not authorized) for that filter, and a denied QoS 1
// PUBLISH from an MQTT 5 client with PUBACK 0x87 (QoS 0 is dropped; an
// MQTT 3 client is disconnected, having no reason codes).
type Hook struct {
	mqtt.HookBase
	rules    []rule
	identify func(cl *mqtt.Client) (auth.Identity, bool)
	onDeny   func(role auth.Role, access Access)
}

// ID returns the ID of the hook.
func (h *Hook) ID() string { return "sentinel-acl" }

// Provides says which hook methods the hook implements.
func (h *Hook) Provides(b byte) bool { return b == mqtt.OnACLCheck }

// Init takes an *Options and compiles its rules.
func (h *Hook) Init(config any) error {
	o, ok := config.(*Options)
	if !ok || o == nil || o.Identify == nil {
		return mqtt.ErrInvalidConfigType
	}
	rs := o.Rules
	if rs == nil {
		rs = DefaultRules()
	}
	compiled, err := compile(rs)
	if err != nil {
		return fmt.Errorf("acl: compile rules: %w", err)
	}
	h.rules, h.identify, h.onDeny = compiled, o.Identify, o.OnDeny
	return nil
}

// OnACLCheck decides whether cl may publish to topic (write) or subscribe
// to, or receive on, topic (read).
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	access := Read
	if write {
		access = Write
	}
	id, ok := h.identify(cl)
	if ok {
		if allow, _ := check(h.rules, id, access, topic); allow {
			return true
		}
	}
	if h.onDeny != nil {
		h.onDeny(id.Role, access)
	}
	return false
}

// Allows reports whether id may have access to topic under the hook's
// rules, without counting a denial: for checks outside a PUBLISH or
// SUBSCRIBE, such as a Last Will at CONNECT.
func (h *Hook) Allows(id auth.Identity, access Access, topic string) bool {
	allow, _ := check(h.rules, id, access, topic)
	return allow
}

// Allowed reports whether id may have access to topic under rules; it is
// the hook's decision without a connection, for tools and tests.
func Allowed(rules []Rule, id auth.Identity, access Access, topic string) (bool, error) {
	compiled, err := compile(rules)
	if err != nil {
		return false, err
	}
	allow, _ := check(compiled, id, access, topic)
	return allow, nil
}
