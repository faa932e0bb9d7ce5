package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Reasons a CONNECT is refused, as passed to Options.OnReject.
const (
	ReasonClientID       = "client_id_invalid"   // client ID empty (v3), or with / + # or another forbidden character: 0x85
	ReasonDeviceClientID = "client_id_mismatch"  // a device's client ID is not its user name: 0x85
	ReasonBadCredentials = "bad_credentials"     // unknown user or wrong password: 0x86
	ReasonAnonymous      = "anonymous_forbidden" // no user name and anonymous access off: 0x87
	ReasonWill           = "will_denied"         // a Last Will on a topic the client may not publish to: 0x87
)

// Identity is who an admitted client is.
type Identity struct {
	// Username is the user name it authenticated with; empty for anonymous.
	Username string
	// ClientID is its MQTT client ID.
	ClientID string
	// Role is what it may do.
	Role Role
}

// Options configures the Hook.
type Options struct {
	// Users are the credentials clients log in with. Default: none.
	Users *Users
	// DeviceKey, when set, admits as a device any user name not in Users
	// whose password is DevicePassword(DeviceKey, name). `sentinel run`
	// derives its simulated fleet's passwords from a random per-run key this
	// way, so a 10,000-device fleet needs no hashing at start and no file;
	// the key never leaves the process. Default: none.
	DeviceKey []byte
	// AllowAnonymous admits clients that send no user name, as RoleAnonymous.
	// For development and in-process tests only. Default false.
	AllowAnonymous bool
	// Server is the broker the hook runs in; the hook sends its own CONNACK
	// when it refuses a client ID, since mochi's would say "bad user name
	// or password". Required.
	Server *mqtt.Server
	// WillAllowed, when set, says whether an identity may publish its Last
	// Will to topic (the ACL's write rule). mochi publishes a will without
	// an ACL check, so a will the client could not publish itself is
	// refused at CONNECT, as Mosquitto does. Default: every will allowed.
	WillAllowed func(id Identity, topic string) bool
	// OnReject, when set, is called with a Reason* constant for every
	// refused CONNECT, for metrics.
	OnReject func(reason string)
	// Certs, with CertListener, authenticates the clients of the listener
	// whose ID is CertListener by their TLS client certificate: each is a
	// device named by its certificate (see Certs), whose client ID must be
	// that name (0x85); user name and password are not asked for.
	// Default: no certificate authentication.
	Certs        *Certs
	CertListener string
}

// Hook admits clients by user name, password and client ID. It refuses,
// at CONNECT and with MQTT 5 reason codes: client IDs that cannot fill a
// topic level (0x85), devices whose client ID is not their user name
// (0x85), bad credentials (0x86), and clients without a user name unless
// anonymous access is on (0x87).
type Hook struct {
	mqtt.HookBase
	opts *Options
	// identities maps a client ID to the client that holds it and its
	// identity, for as long as its session lives: mochi checks the ACL on
	// every delivery, also to a disconnected client's persistent session.
	identities sync.Map // string -> admitted
}

// admitted is a client that OnConnect let in.
type admitted struct {
	cl *mqtt.Client
	id Identity
}

// ID returns the ID of the hook.
func (h *Hook) ID() string { return "sentinel-auth" }

// Provides says which hook methods the hook implements.
func (h *Hook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnConnectAuthenticate || b == mqtt.OnDisconnect || b == mqtt.OnClientExpired
}

// Init takes an *Options; any other config type is an error, since a hook
// without users would silently refuse everyone.
func (h *Hook) Init(config any) error {
	o, ok := config.(*Options)
	if !ok || o == nil || o.Server == nil {
		return mqtt.ErrInvalidConfigType
	}
	if o.Users == nil {
		o.Users = NewUsers()
	}
	h.opts = o
	return nil
}

// OnConnect checks the client ID and credentials before mochi's own
// authentication step, so that each refusal carries its own reason code.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	id, code, reason := h.admit(cl, pk)
	if code != packets.CodeSuccess {
		if h.opts.OnReject != nil {
			h.opts.OnReject(reason)
		}
		_ = h.opts.Server.SendConnack(cl, code, false, nil)
		return code
	}
	h.identities.Store(cl.ID, admitted{cl: cl, id: id})
	return nil
}

func (h *Hook) admit(cl *mqtt.Client, pk packets.Packet) (Identity, packets.Code, string) {
	if !ValidClientID(cl.ID) {
		return Identity{}, packets.ErrClientIdentifierNotValid, ReasonClientID
	}
	if h.opts.Certs != nil && cl.Net.Listener == h.opts.CertListener {
		return h.certified(cl, pk)
	}
	name := string(pk.Connect.Username)
	if name == "" && !pk.Connect.UsernameFlag {
		if !h.opts.AllowAnonymous {
			return Identity{}, packets.ErrNotAuthorized, ReasonAnonymous
		}
		return h.will(Identity{ClientID: cl.ID, Role: RoleAnonymous}, pk)
	}
	id := Identity{Username: name, ClientID: cl.ID}
	// Derived device passwords first: for a user name not in Users, Verify
	// would spend a bcrypt comparison to hide that it is unknown.
	if h.derived(name, pk.Connect.Password) {
		id.Role = RoleDevice
	} else if usr, ok := h.opts.Users.Verify(name, pk.Connect.Password); ok {
		id.Role = usr.Role
	} else {
		return Identity{}, packets.ErrBadUsernameOrPassword, ReasonBadCredentials
	}
	if id.Role == RoleDevice && cl.ID != name {
		return Identity{}, packets.ErrClientIdentifierNotValid, ReasonDeviceClientID
	}
	return h.will(id, pk)
}

// certified admits a client of the mutual-TLS listener by its certificate.
func (h *Hook) certified(cl *mqtt.Client, pk packets.Packet) (Identity, packets.Code, string) {
	var state tls.ConnectionState
	if c, ok := cl.Net.Conn.(tlsConn); ok {
		state = c.ConnectionState()
	}
	name, code, reason := h.opts.Certs.Verify(state)
	if code != packets.CodeSuccess {
		return Identity{}, code, reason
	}
	if cl.ID != name {
		return Identity{}, packets.ErrClientIdentifierNotValid, ReasonDeviceClientID
	}
	cl.Properties.Username = []byte(name) // stored with the session, for restored
	return h.will(Identity{Username: name, ClientID: cl.ID, Role: RoleDevice}, pk)
}

// will refuses a Last Will the identity could not publish itself.
func (h *Hook) will(id Identity, pk packets.Packet) (Identity, packets.Code, string) {
	if pk.Connect.WillFlag && h.opts.WillAllowed != nil && !h.opts.WillAllowed(id, pk.Connect.WillTopic) {
		return Identity{}, packets.ErrNotAuthorized, ReasonWill
	}
	return id, packets.CodeSuccess, ""
}

func (h *Hook) derived(name string, password []byte) bool {
	if len(h.opts.DeviceKey) == 0 || !ValidName(name) {
		return false
	}
	if _, listed := h.opts.Users.Lookup(name); listed {
		return false
	}
	want := DevicePassword(h.opts.DeviceKey, name)
	return hmac.Equal([]byte(want), password)
}

// OnConnectAuthenticate admits the clients OnConnect admitted.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	v, ok := h.identities.Load(cl.ID)
	return ok && v.(admitted).cl == cl
}

// OnDisconnect forgets the client's identity when its session ends with
// the connection. A persistent session keeps it until OnClientExpired.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire {
		h.forget(cl)
	}
}

// OnClientExpired forgets the identity of a session that expired.
func (h *Hook) OnClientExpired(cl *mqtt.Client) { h.forget(cl) }

// forget deletes cl's identity, unless a newer connection took its client
// ID over.
func (h *Hook) forget(cl *mqtt.Client) {
	if v, ok := h.identities.Load(cl.ID); ok && v.(admitted).cl == cl {
		h.identities.CompareAndDelete(cl.ID, v)
	}
}

// Identify returns the identity of a client, connected or holding a
// persistent session, for the ACL. During a session takeover the old
// connection answers with the new one's identity.
func (h *Hook) Identify(cl *mqtt.Client) (Identity, bool) {
	if v, ok := h.identities.Load(cl.ID); ok {
		return v.(admitted).id, true
	}
	return h.restored(cl)
}

// restored identifies a session the broker restored from its store after
// a restart, which no OnConnect has seen: its client proved its password
// when it connected before, so its role follows from its user name.
func (h *Hook) restored(cl *mqtt.Client) (Identity, bool) {
	name := string(cl.Properties.Username)
	id := Identity{Username: name, ClientID: cl.ID}
	if name == "" {
		id.Role = RoleAnonymous
		return id, h.opts.AllowAnonymous
	}
	if usr, ok := h.opts.Users.Lookup(name); ok {
		id.Role = usr.Role
	} else if h.opts.Certs != nil && cl.Net.Listener == h.opts.CertListener {
		id.Role = RoleDevice // it proved its certificate when it connected before
	} else if len(h.opts.DeviceKey) > 0 {
		id.Role = RoleDevice
	} else {
		return Identity{}, false
	}
	if !ValidClientID(cl.ID) || (id.Role == RoleDevice && cl.ID != name) {
		return Identity{}, false
	}
	return id, true
}

// DevicePassword is the password of device name under key (see
// Options.DeviceKey): HMAC-SHA256(key, name), URL-safe base64.
func DevicePassword(key []byte, name string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(name))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
