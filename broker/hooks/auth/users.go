// Package auth is the broker's identity hook: who a client is (user name,
// password and role, from a credentials file), and whether it may connect
// under the client ID it asked for. What an identity may then publish or
// subscribe to is the acl hook's business.
package auth

import (
	"fmt"
	"io"
	"strings"

	"github.com/sentinel-iot/sentinel/credentials"
)

// Role is what kind of client an identity is; the ACL grants by role.
type Role string

// The roles. A client with no user name, admitted only when anonymous access
// is on, has RoleAnonymous.
const (
	// RoleDevice is one device: its client ID must equal its user name, and
	// it may touch only its own topics.
	RoleDevice Role = "device"
	// RoleGateway is a connection that carries many devices (the
	// simulator's --conns mode, or a field gateway): it may publish any
	// device's telemetry and status and read any device's commands, so a
	// per-device rule cannot hold on it. Give it only to machines you
	// trust as much as the devices behind them.
	RoleGateway Role = "gateway"
	// RoleService is a Sentinel service (ingestor, recoverer): it reads
	// the fleet and writes commands and audit records.
	RoleService Role = "service"
	// RoleOps is a person watching: read-only.
	RoleOps Role = "ops"
	// RoleAnonymous is a client that sent no user name, admitted only in
	// development (Options.AllowAnonymous).
	RoleAnonymous Role = "anonymous"
)

// Roles lists the roles a credentials file may name.
var Roles = []Role{RoleDevice, RoleGateway, RoleService, RoleOps}

// MinCost is bcrypt's lowest cost, for generated high-entropy passwords
// (see Users.Add).
const MinCost = credentials.MinCost

// Errors of the credentials file and of authentication: the credentials
// module's, so errors.Is works with either name.
var (
	// ErrFormat means a credentials file line is malformed.
	ErrFormat = credentials.ErrFormat
	// ErrUsername means a user name is empty or has a character a topic
	// level or the file format cannot hold.
	ErrUsername = credentials.ErrUsername
	// ErrRole means a role is not one of Roles.
	ErrRole = credentials.ErrRole
	// ErrHash means a password hash is not a bcrypt hash.
	ErrHash = credentials.ErrHash
	// ErrDuplicate means a user name is listed twice.
	ErrDuplicate = credentials.ErrDuplicate
)

// ValidRole reports whether r may appear in a credentials file.
func ValidRole(r Role) bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

// ValidClientID reports whether s may be a client ID: non-empty and free
// of the topic separator and wildcards (/ + #), since ${clientid} fills a
// whole topic level in ACL rules, and of U+0000, which no MQTT string may
// hold [MQTT-1.5.4-2]. Anything else a server may allow [MQTT-3.1.3-5] is
// allowed: generic clients and test tools use spaces and ':' in their
// IDs. A device's client ID must also be its user name, so devices stay
// within ValidName.
func ValidClientID(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/+#\x00")
}

// ValidName reports whether s may be a user name. It fills
// whole topic levels in ACL rules, so it must be non-empty and free of
// the topic separator and wildcards (/ + #); the credentials file also
// rules out ':' and white space (credentials.ValidName), and a leading '$'
// would look like a broker-reserved topic.
func ValidName(s string) bool {
	return credentials.ValidName(s) && s[0] != '$' && !strings.ContainsAny(s, "/+")
}

// format is the broker's use of the credentials file: its roles, and user
// names that fill a topic level.
var format = credentials.Format{
	Roles:     roleNames(),
	ValidName: ValidName,
	Header:    "Sentinel broker credentials: user:role:bcrypt-hash (see `sentinel broker adduser -h`).",
}

func roleNames() []string {
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return names
}

// User is one line of a credentials file.
type User struct {
	// Name is the MQTT user name.
	Name string
	// Role is what the user may do (see the acl hook's rules).
	Role Role
	// Hash is the bcrypt hash of the password.
	Hash []byte
}

func user(e credentials.Entry) User { return User{Name: e.Name, Role: Role(e.Role), Hash: e.Hash} }

// Users is a set of credentials, safe for concurrent use: the broker's
// roles over a credentials.Set, which holds the file format, the bounded
// verification cache and the decoy for unknown names.
type Users struct {
	set *credentials.Set
}

// NewUsers returns an empty set.
func NewUsers() *Users { return &Users{set: credentials.New(format)} }

// ReadUsers parses a credentials file (see package credentials for the
// format): user:role:bcrypt-hash a line, the user name a valid client ID
// (see ValidName), the role one of Roles, the hash as AddUser or `sentinel
// broker adduser` writes it.
func ReadUsers(r io.Reader) (*Users, error) {
	s, err := credentials.Parse(r, format)
	if err != nil {
		return nil, err
	}
	return &Users{set: s}, nil
}

// LoadUsers reads the credentials file at path.
func LoadUsers(path string) (*Users, error) {
	s, err := credentials.Load(path, format, nil)
	if err != nil {
		return nil, err
	}
	return &Users{set: s}, nil
}

// Add adds or replaces a user whose password is hashed with bcrypt at cost
// (bcrypt.DefaultCost when 0). A low cost (MinCost) suits generated
// high-entropy passwords, where bcrypt's slowness buys nothing.
func (u *Users) Add(name string, role Role, password string, cost int) error {
	return u.set.Add(name, string(role), password, cost)
}

// Merge adds every user of o to u, replacing users of the same name.
func (u *Users) Merge(o *Users) { u.set.Merge(o.set) }

// Replace makes u hold exactly the users of o, and forgets every cached
// verification: a reload of the credentials file.
func (u *Users) Replace(o *Users) { u.set.Replace(o.set) }

// Lookup returns the user called name.
func (u *Users) Lookup(name string) (User, bool) {
	e, ok := u.set.Lookup(name)
	return user(e), ok
}

// Len returns the number of users.
func (u *Users) Len() int { return u.set.Len() }

// Verify returns the user called name if password is theirs (see
// credentials.Set.Verify for the cache and the decoy).
func (u *Users) Verify(name string, password []byte) (User, bool) {
	e, ok := u.set.Verify(name, password)
	return user(e), ok
}

// WriteTo writes the users in the credentials file format, sorted by name.
func (u *Users) WriteTo(w io.Writer) (int64, error) { return u.set.WriteTo(w) }

// AddUser adds or replaces one user in the credentials file at path,
// creating it (mode 0600) if missing, and writes the file atomically and
// durably. An empty password generates one; the password is returned
// either way.
func AddUser(path, name string, role Role, password string, cost int) (string, error) {
	if password == "" {
		password = GeneratePassword()
	}
	if err := credentials.AddUser(path, format, name, string(role), password, cost); err != nil {
		return "", fmt.Errorf("add user %q to %s: %w", name, path, err)
	}
	return password, nil
}

// GeneratePassword returns a random password of 128 bits, URL-safe base64.
func GeneratePassword() string { return credentials.GeneratePassword() }
