package httpserver

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/sentinel-iot/sentinel/credentials"
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

var (
	// ErrBadUsersFile means the credentials file could not be read as one.
	ErrBadUsersFile = errors.New("httpserver: bad users file")
	// ErrNoUsersFile means a reload was asked of a server started without
	// a users file (anonymous access only).
	ErrNoUsersFile = errors.New("httpserver: no users file")
)

// usersFormat is the server's use of the credentials file (package
// credentials): name:role:bcrypt-hash, role readwrite or readonly. The
// server once wrote name:bcrypt-hash:role; such lines are still read, with
// a warning, and `sentinel warehouse adduser` rewrites the whole file in
// the current order. It is its own file rather than the broker's because
// the two grant different things (topics there, tables here).
var usersFormat = credentials.Format{
	Roles:   []string{string(RoleReadWrite), string(RoleReadOnly)},
	Legacy:  true,
	Header:  "Sentinel warehouse server users: name:role:bcrypt-hash (readwrite or readonly).\nEdit with `sentinel warehouse adduser`.",
	Rewrite: "sentinel warehouse adduser --users {file} NAME (re-adding any one user rewrites every line)",
}

// Users is the credentials file's users. Passwords are stored only as
// bcrypt hashes; AddUser writes the file.
type Users struct {
	set *credentials.Set
}

// LoadUsers reads the credentials file at path, warning on log (when not
// nil) if it has lines in the old name:bcrypt-hash:role order.
func LoadUsers(path string, log *slog.Logger) (*Users, error) {
	s, err := credentials.Load(path, usersFormat, log)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadUsersFile, err)
	}
	return &Users{set: s}, nil
}

// AddUser sets name's password and role in the credentials file at path,
// creating the file (mode 0600) when it does not exist and replacing the
// user when it does. The file is replaced atomically and durably, every
// line in the current order.
func AddUser(path, name, password string, role Role) error {
	if err := credentials.AddUser(path, usersFormat, name, string(role), password, credentials.DefaultCost); err != nil {
		return fmt.Errorf("httpserver: add user %q to %s: %w", name, path, err)
	}
	return nil
}

// authenticate returns name's role when password is right.
func (u *Users) authenticate(name, password string) (Role, bool) {
	e, ok := u.set.Verify(name, []byte(password))
	if !ok {
		return "", false
	}
	return Role(e.Role), true
}

// ReloadUsers reads Config.UsersFile again (`sentinel warehouse` does on
// SIGHUP, as `sentinel broker` does for its file), so users added or
// removed with `sentinel warehouse adduser` take effect without a restart;
// a query already admitted keeps the role it was admitted with. On error
// the old users stay. It returns the number of users now served.
func (s *Server) ReloadUsers() (users int, err error) {
	if s.users == nil {
		return 0, fmt.Errorf("httpserver: reload users: %w", ErrNoUsersFile)
	}
	u, err := LoadUsers(s.cfg.UsersFile, s.log)
	if err != nil {
		return 0, err
	}
	s.users.set.Replace(u.set)
	return s.users.set.Len(), nil
}
