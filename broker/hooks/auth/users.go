// Package auth is the broker's identity hook: who a client is (user name,
// password and role, from a credentials file), and whether it may connect
// under the client ID it asked for. What an identity may then publish or
// subscribe to is the acl hook's business.
package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
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
const MinCost = bcrypt.MinCost

// Errors of the credentials file and of authentication.
var (
	// ErrFormat means a credentials file line is malformed.
	ErrFormat = errors.New("auth: bad credentials line")
	// ErrUsername means a user name is empty or has a character a topic
	// level or the file format cannot hold.
	ErrUsername = errors.New("auth: invalid user name")
	// ErrRole means a role is not one of Roles.
	ErrRole = errors.New("auth: unknown role")
	// ErrHash means a password hash is not a bcrypt hash.
	ErrHash = errors.New("auth: not a bcrypt hash")
	// ErrDuplicate means a user name is listed twice.
	ErrDuplicate = errors.New("auth: user listed twice")
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

// ValidName reports whether s may be a user name or a client ID. Both fill
// whole topic levels in ACL rules, so they must be non-empty and free of
// the topic separator and wildcards (/ + #); the credentials file also
// rules out ':' and white space, and a leading '$' would look like a
// broker-reserved topic.
func ValidName(s string) bool {
	if s == "" || len(s) > 256 || s[0] == '$' {
		return false
	}
	return !strings.ContainsAny(s, "/+#: \t\r\n\x00")
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

// Users is a set of credentials, safe for concurrent use. Verify caches
// successful bcrypt checks, so a reconnecting fleet costs one hash per
// device, not one per connection.
type Users struct {
	mu    sync.RWMutex
	users map[string]User
	ok    map[[sha256.Size]byte]string // sha256(name, password) -> hash it matched
}

// NewUsers returns an empty set.
func NewUsers() *Users {
	return &Users{users: map[string]User{}, ok: map[[sha256.Size]byte]string{}}
}

// maxCached bounds the verification cache; past it the cache starts over.
const maxCached = 1 << 20

// ReadUsers parses a credentials file. The format is one user per line,
// three colon-separated fields, like Mosquitto's password file with a role:
//
//	# comments and blank lines are ignored
//	dev-00000-fcfd52:device:$2a$10$N9qo8uLOickgx2ZMRZoMye...
//	sentinel-ingestor:service:$2a$10$...
//	alice:ops:$2a$12$...
//
// The user name is a valid client ID (see ValidName), the role one of
// Roles, the hash a bcrypt hash ($2a$, $2b$ or $2y$) as AddUser or
// `sentinel broker adduser` writes it.
func ReadUsers(r io.Reader) (*Users, error) {
	u := NewUsers()
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		usr, err := parseLine(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if _, dup := u.users[usr.Name]; dup {
			return nil, fmt.Errorf("line %d: %w: %q", line, ErrDuplicate, usr.Name)
		}
		u.users[usr.Name] = usr
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	return u, nil
}

func parseLine(text string) (User, error) {
	f := strings.Split(text, ":")
	if len(f) != 3 {
		return User{}, fmt.Errorf("%w: want user:role:bcrypt-hash, got %d fields", ErrFormat, len(f))
	}
	usr := User{Name: f[0], Role: Role(f[1]), Hash: []byte(f[2])}
	if !ValidName(usr.Name) {
		return User{}, fmt.Errorf("%w: %q", ErrUsername, usr.Name)
	}
	if !ValidRole(usr.Role) {
		return User{}, fmt.Errorf("%w: %q (want one of %v)", ErrRole, usr.Role, Roles)
	}
	if _, err := bcrypt.Cost(usr.Hash); err != nil {
		return User{}, fmt.Errorf("%w: user %q: %v", ErrHash, usr.Name, err)
	}
	return usr, nil
}

// LoadUsers reads the credentials file at path.
func LoadUsers(path string) (*Users, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open credentials: %w", err)
	}
	defer f.Close()
	u, err := ReadUsers(f)
	if err != nil {
		return nil, fmt.Errorf("credentials %s: %w", path, err)
	}
	return u, nil
}

// Add adds or replaces a user whose password is hashed with bcrypt at cost
// (bcrypt.DefaultCost when 0). A low cost (bcrypt.MinCost) suits generated
// high-entropy passwords, where bcrypt's slowness buys nothing.
func (u *Users) Add(name string, role Role, password string, cost int) error {
	if !ValidName(name) {
		return fmt.Errorf("%w: %q", ErrUsername, name)
	}
	if !ValidRole(role) {
		return fmt.Errorf("%w: %q", ErrRole, role)
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return fmt.Errorf("hash password of %q: %w", name, err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.users[name] = User{Name: name, Role: role, Hash: h}
	return nil
}

// Merge adds every user of o to u, replacing users of the same name.
func (u *Users) Merge(o *Users) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	u.mu.Lock()
	defer u.mu.Unlock()
	for n, usr := range o.users {
		u.users[n] = usr
	}
}

// Replace makes u hold exactly the users of o, and forgets every cached
// verification: a reload of the credentials file.
func (u *Users) Replace(o *Users) {
	o.mu.RLock()
	users := make(map[string]User, len(o.users))
	for n, usr := range o.users {
		users[n] = usr
	}
	o.mu.RUnlock()
	u.mu.Lock()
	defer u.mu.Unlock()
	u.users = users
	clear(u.ok)
}

// Lookup returns the user called name.
func (u *Users) Lookup(name string) (User, bool) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	usr, ok := u.users[name]
	return usr, ok
}

// Len returns the number of users.
func (u *Users) Len() int {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return len(u.users)
}

// Verify returns the user called name if password is theirs. A password
// that once matched the user's current hash is recognised again from a
// cache keyed by a SHA-256 of name and password, without bcrypt.
func (u *Users) Verify(name string, password []byte) (User, bool) {
	usr, ok := u.Lookup(name)
	if !ok {
		// Spend about the time a real check would, so a failed login does
		// not say whether the user exists.
		_ = bcrypt.CompareHashAndPassword(dummyHash(), password)
		return User{}, false
	}
	key := cacheKey(name, password)
	u.mu.RLock()
	h, hit := u.ok[key]
	u.mu.RUnlock()
	if hit && h == string(usr.Hash) {
		return usr, true
	}
	if bcrypt.CompareHashAndPassword(usr.Hash, password) != nil {
		return User{}, false
	}
	u.mu.Lock()
	if len(u.ok) >= maxCached {
		clear(u.ok)
	}
	u.ok[key] = string(usr.Hash)
	u.mu.Unlock()
	return usr, true
}

// dummyHash is the decoy an unknown user name is checked against, at the
// cost adduser hashes with by default, so that it takes as long as a real
// user's check. Made on first use: it takes a bcrypt's time.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("sentinel-dummy"), bcrypt.DefaultCost)
	return h
})

func cacheKey(name string, password []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(password)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// WriteTo writes the users in the credentials file format, sorted by name.
func (u *Users) WriteTo(w io.Writer) (int64, error) {
	u.mu.RLock()
	names := make([]string, 0, len(u.users))
	for n := range u.users {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	buf.WriteString("# Sentinel broker credentials: user:role:bcrypt-hash (see `sentinel broker adduser -h`).\n")
	for _, n := range names {
		usr := u.users[n]
		fmt.Fprintf(&buf, "%s:%s:%s\n", usr.Name, usr.Role, usr.Hash)
	}
	u.mu.RUnlock()
	return buf.WriteTo(w)
}

// AddUser adds or replaces one user in the credentials file at path,
// creating it (mode 0600) if missing, and writes the file atomically. An
// empty password generates one; the password is returned either way.
func AddUser(path, name string, role Role, password string, cost int) (string, error) {
	u := NewUsers()
	if _, err := os.Stat(path); err == nil {
		if u, err = LoadUsers(path); err != nil {
			return "", err
		}
	}
	if password == "" {
		password = GeneratePassword()
	}
	if err := u.Add(name, role, password, cost); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credentials-*")
	if err != nil {
		return "", fmt.Errorf("write credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write credentials: %w", err)
	}
	if _, err := u.WriteTo(tmp); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write credentials: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write credentials: %w", err)
	}
	return password, nil
}

// GeneratePassword returns a random password of 128 bits, URL-safe base64.
func GeneratePassword() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
