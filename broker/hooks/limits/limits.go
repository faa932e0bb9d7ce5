// Package limits is the broker's per-client traffic policing: a mochi hook
// that refuses wildcard and reserved topics in PUBLISH, disconnects a
// client publishing faster than its rate (token bucket) with reason 0x96,
// caps the keep alive and announces it (Server Keep Alive), and tells
// clients the broker's maximum packet size in CONNACK. Limits
// mochi enforces itself (packet size, receive maximum, connections,
// session and message expiry) are set in its Capabilities.
package limits

import (
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Reasons a packet is refused, as passed to Options.OnReject.
const (
	ReasonRate     = "rate_limited"   // publish rate past the client's bucket: DISCONNECT 0x96
	ReasonWildcard = "wildcard_topic" // + or # in a PUBLISH topic: DISCONNECT 0x82
	ReasonReserved = "reserved_topic" // a client publishing to $SYS/...: DISCONNECT 0x90
)

// Rate is a token bucket: Burst messages at once, refilled at PerSecond.
type Rate struct {
	// PerSecond is the sustained rate; 0 means unlimited.
	PerSecond float64
	// Burst is the bucket size; 0 means max(1, PerSecond).
	Burst int
}

// Options configures the Hook.
type Options struct {
	// RateFor returns the publish rate allowed to a client, looked up once
	// per connection at its first PUBLISH. Nil, or a zero Rate, means
	// unlimited.
	RateFor func(cl *mqtt.Client) Rate
	// MaxPacketSize is advertised in every successful CONNACK (MQTT 5
	// Maximum Packet Size), so well-behaved clients never send a bigger
	// packet. 0: not advertised.
	MaxPacketSize uint32
	// MaxKeepAlive caps a client's Keep Alive, in seconds: a client asking
	// for more, or for none (0), gets this. Either way the keep alive the
	// broker enforces is announced in CONNACK (Server Keep Alive, MQTT v5
	// §3.2.2.3.14). 0: no cap, the client's own announced.
	MaxKeepAlive uint16
	// Server is the broker the hook runs in, for sending DISCONNECT.
	// Required.
	Server *mqtt.Server
	// OnReject, when set, is called with a Reason* constant for every
	// packet refused.
	OnReject func(reason string)
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Hook polices PUBLISH packets as they are read, before mochi handles them.
type Hook struct {
	mqtt.HookBase
	opts    *Options
	buckets sync.Map // *mqtt.Client -> *bucket, from the first PUBLISH to OnDisconnect
}

type bucket struct {
	mu     sync.Mutex
	rate   Rate
	tokens float64
	last   time.Time
}

// take reports whether a message may pass now.
func (b *bucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens += now.Sub(b.last).Seconds() * b.rate.PerSecond
	if burst := float64(b.rate.Burst); b.tokens > burst {
		b.tokens = burst
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// ID returns the ID of the hook.
func (h *Hook) ID() string { return "sentinel-limits" }

// Provides says which hook methods the hook implements.
func (h *Hook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnPacketRead || b == mqtt.OnPacketEncode || b == mqtt.OnDisconnect
}

// OnConnect sets the keep alive the broker enforces on cl (its own, capped
// at MaxKeepAlive) and marks it to be announced in CONNACK, before mochi
// sets the connection's read deadline from it.
func (h *Hook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if m := h.opts.MaxKeepAlive; m > 0 && (cl.State.Keepalive == 0 || cl.State.Keepalive > m) {
		cl.State.Keepalive = m
	}
	cl.State.ServerKeepalive = true
	return nil
}

// Init takes an *Options.
func (h *Hook) Init(config any) error {
	o, ok := config.(*Options)
	if !ok || o == nil || o.Server == nil {
		return mqtt.ErrInvalidConfigType
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	h.opts = o
	return nil
}

// OnPacketRead resolves a PUBLISH's topic alias, and refuses a PUBLISH
// with a wildcard or $SYS topic, or past the client's rate, by
// disconnecting the client with the reason code. mochi
// would drop a $SYS publish silently, leaving a QoS 1 publisher waiting
// for its PUBACK forever.
func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return pk, nil
	}
	if pk.TopicName == "" && pk.Properties.TopicAlias > 0 {
		// mochi checks the ACL before it resolves a topic alias, so an
		// alias-only PUBLISH would be judged on an empty topic: resolve it
		// here (an alias only ever names a topic the ACL once allowed).
		pk.TopicName = cl.State.TopicAliases.Inbound.Set(pk.Properties.TopicAlias, "")
	}
	switch {
	case strings.ContainsAny(pk.TopicName, "+#"):
		return pk, h.refuse(cl, packets.ErrProtocolViolationSurplusWildcard, ReasonWildcard)
	case len(pk.TopicName) >= len(mqtt.SysPrefix) && strings.EqualFold(pk.TopicName[:len(mqtt.SysPrefix)], mqtt.SysPrefix):
		return pk, h.refuse(cl, packets.ErrTopicNameInvalid, ReasonReserved)
	}
	if h.opts.RateFor == nil {
		return pk, nil
	}
	v, ok := h.buckets.Load(cl)
	if !ok {
		r := h.opts.RateFor(cl)
		if r.PerSecond <= 0 {
			r = Rate{} // unlimited: remembered so RateFor runs once
		} else if r.Burst <= 0 {
			r.Burst = max(1, int(r.PerSecond))
		}
		v, _ = h.buckets.LoadOrStore(cl, &bucket{rate: r, tokens: float64(r.Burst), last: h.opts.Now()})
	}
	b := v.(*bucket)
	if b.rate.PerSecond > 0 && !b.take(h.opts.Now()) {
		return pk, h.refuse(cl, packets.ErrMessageRateTooHigh, ReasonRate)
	}
	return pk, nil
}

// refuse counts the reason, disconnects the client with code, and returns
// mochi's sentinel for a rejected packet so the packet goes no further.
func (h *Hook) refuse(cl *mqtt.Client, code packets.Code, reason string) error {
	if h.opts.OnReject != nil {
		h.opts.OnReject(reason)
	}
	_ = h.opts.Server.DisconnectClient(cl, code)
	return packets.ErrRejectPacket
}

// OnPacketEncode advertises the maximum packet size in a successful
// CONNACK.
func (h *Hook) OnPacketEncode(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode == packets.CodeSuccess.Code && h.opts.MaxPacketSize > 0 {
		pk.Properties.MaximumPacketSize = h.opts.MaxPacketSize
	}
	return pk
}

// OnDisconnect forgets the client's bucket.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.buckets.Delete(cl)
}
