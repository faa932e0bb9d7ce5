package httpserver

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Role is what a user may do.
type Role string

// The roles.
const (
	// RoleReadWrite may run any statement the server serves: the services.
	RoleReadWrite Role = "readwrite"
	// RoleReadOnly may only read (readonly=1): analysts and dashboards.
	RoleReadOnly Role = "readonly"
)

// ErrBadUsersFile means the credentials file could not be read as one.
var ErrBadUsersFile = errors.New("httpserver: bad users file")

// Users is the credentials file: one user a line, `name:bcrypt-hash:role`,
// with role readwrite or readonly; blank lines and lines starting with #
// are ignored. Passwords are stored only as bcrypt hashes; AddUser writes
// the file. It is its own file rather than the broker's because the two
// grant different things (topics there, tables here).
type Users struct {
	byName map[string]user

	mu sync.Mutex
	// verified remembers the SHA-256 of each user's last accepted password,
	// so a client sending the same credentials on every request pays for
	// bcrypt once, not per query.
	verified map[string][sha256.Size]byte
}

type user struct {
	name string
	hash []byte
	role Role
}

// LoadUsers reads the credentials file at path.
func LoadUsers(path string) (*Users, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("httpserver: read users file: %w", err)
	}
	us, err := parseUsers(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Users{byName: us, verified: map[string][sha256.Size]byte{}}, nil
}

func parseUsers(b []byte) (map[string]user, error) {
	us := map[string]user{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 3 || f[0] == "" {
			return nil, fmt.Errorf("%w: line %d: want name:bcrypt-hash:role", ErrBadUsersFile, n)
		}
		role := Role(f[2])
		if role != RoleReadWrite && role != RoleReadOnly {
			return nil, fmt.Errorf("%w: line %d: role %q: want %s or %s", ErrBadUsersFile, n, f[2], RoleReadWrite, RoleReadOnly)
		}
		if _, err := bcrypt.Cost([]byte(f[1])); err != nil {
			return nil, fmt.Errorf("%w: line %d: user %s: password is not a bcrypt hash: %v", ErrBadUsersFile, n, f[0], err)
		}
		us[f[0]] = user{name: f[0], hash: []byte(f[1]), role: role}
	}
	return us, sc.Err()
}

// AddUser sets name's password and role in the credentials file at path,
// creating the file (mode 0600) when it does not exist and replacing the
// user when it does. The file is replaced atomically.
func AddUser(path, name, password string, role Role) error {
	if name == "" || strings.ContainsAny(name, ":\n\r \t#") {
		return fmt.Errorf("httpserver: add user %q: a name is non-empty, without ':', '#' or blanks", name)
	}
	if role != RoleReadWrite && role != RoleReadOnly {
		return fmt.Errorf("httpserver: add user %s: role %q: want %s or %s", name, role, RoleReadWrite, RoleReadOnly)
	}
	if password == "" {
		return fmt.Errorf("httpserver: add user %s: empty password", name)
	}
	us := map[string]user{}
	if b, err := os.ReadFile(path); err == nil {
		if us, err = parseUsers(b); err != nil {
			return fmt.Errorf("httpserver: add user %s to %s: %w", name, path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("httpserver: add user %s: %w", name, err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("httpserver: add user %s: hash password: %w", name, err)
	}
	us[name] = user{name: name, hash: hash, role: role}
	names := make([]string, 0, len(us))
	for n := range us {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	buf.WriteString("# Sentinel warehouse server users: name:bcrypt-hash:role (readwrite or readonly).\n# Edit with `sentinel warehouse adduser`.\n")
	for _, n := range names {
		fmt.Fprintf(&buf, "%s:%s:%s\n", n, us[n].hash, us[n].role)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("httpserver: add user %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".users-*")
	if err != nil {
		return fmt.Errorf("httpserver: add user %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("httpserver: add user %s: write %s: %w", name, tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("httpserver: add user %s: write %s: %w", name, tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("httpserver: add user %s: replace %s: %w", name, path, err)
	}
	return nil
}

// authenticate returns name's role when password is right.
func (u *Users) authenticate(name, password string) (Role, bool) {
	usr, ok := u.byName[name]
	if !ok {
		// Spend the same time as a wrong password, so names cannot be probed.
		_ = bcrypt.CompareHashAndPassword([]byte("$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z2xbYlKoxNt6rQ1VY1WBpaAu"), []byte(password))
		return "", false
	}
	sum := sha256.Sum256([]byte(password))
	u.mu.Lock()
	known, seen := u.verified[name]
	u.mu.Unlock()
	if seen && subtle.ConstantTimeCompare(known[:], sum[:]) == 1 {
		return usr.role, true
	}
	if bcrypt.CompareHashAndPassword(usr.hash, []byte(password)) != nil {
		return "", false
	}
	u.mu.Lock()
	u.verified[name] = sum
	u.mu.Unlock()
	return usr.role, true
}
