// Package credentials is Sentinel's one credentials file: users with a
// role and a bcrypt password hash, one a line, as the broker and the
// warehouse server both keep them. It parses and writes the file, verifies
// passwords with a bounded cache, and keeps unknown names as slow to refuse
// as known ones. What a role grants is each side's business: a Format
// names the roles a side's file may hold.
//
// The format is Mosquitto's password file with a role, one user a line:
//
//	# comments and blank lines are ignored
//	dev-00000-fcfd52:device:$2a$10$N9qo8uLOickgx2ZMRZoMye...
//	analyst:readonly:$2a$10$...
//
// The warehouse server once wrote name:bcrypt-hash:role; a Format with
// Legacy set still reads those lines, and Load logs a warning naming the
// file and the command that rewrites it.
package credentials

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Costs of bcrypt, for Add and AddUser.
const (
	// DefaultCost is bcrypt's default, for passwords people choose.
	DefaultCost = bcrypt.DefaultCost
	// MinCost is bcrypt's lowest, for generated high-entropy passwords,
	// where bcrypt's slowness buys nothing.
	MinCost = bcrypt.MinCost
)

// Errors of a credentials file, of adding a user, and of writing the file.
var (
	// ErrFormat means a line is not name:role:bcrypt-hash.
	ErrFormat = errors.New("credentials: bad line")
	// ErrUsername means a user name is empty, too long, or has a character
	// the format (or the Format's ValidName) cannot hold.
	ErrUsername = errors.New("credentials: invalid user name")
	// ErrRole means a role is not one of the Format's Roles.
	ErrRole = errors.New("credentials: unknown role")
	// ErrHash means a password hash is not a bcrypt hash.
	ErrHash = errors.New("credentials: not a bcrypt hash")
	// ErrDuplicate means a user name is listed twice.
	ErrDuplicate = errors.New("credentials: user listed twice")
	// ErrPassword means a password to add is empty.
	ErrPassword = errors.New("credentials: empty password")
)

// Format is one side's use of the file: the roles it may name and what
// else it asks of a user name. The zero value accepts no role.
type Format struct {
	// Roles lists the roles a file may name, in the order error messages
	// list them. Required.
	Roles []string
	// ValidName, when set, restricts user names beyond the format's own
	// rule (see ValidName): the broker's must also fill a topic level.
	ValidName func(string) bool
	// Legacy also reads lines in the warehouse server's old order,
	// name:bcrypt-hash:role, told apart by where the hash is. Writing
	// always uses name:role:bcrypt-hash.
	Legacy bool
	// Header is the comment written at the top of the file, one line of
	// text a line, without the "# ".
	Header string
	// Rewrite is the command that rewrites the file in the current order,
	// named in Load's warning about old lines; "{file}" stands for the
	// file's path.
	Rewrite string
}

func (f *Format) validName(s string) bool {
	return ValidName(s) && (f.ValidName == nil || f.ValidName(s))
}

func (f *Format) validRole(r string) bool { return slices.Contains(f.Roles, r) }

// ValidName reports whether s may be a user name in the file: non-empty,
// at most 256 bytes, without ':' (the field separator), '#' (a comment),
// white space or NUL.
func ValidName(s string) bool {
	return s != "" && len(s) <= 256 && !strings.ContainsAny(s, ":# \t\r\n\v\f\x00")
}

// Entry is one user of the file.
type Entry struct {
	// Name is the user name.
	Name string
	// Role is one of the Format's Roles.
	Role string
	// Hash is the bcrypt hash of the password.
	Hash []byte
}

// Set is the users of one file, safe for concurrent use.
//
// Verify remembers the password each user last logged in with, as a
// SHA-256, so a client that sends the same credentials on every connection
// or request pays for bcrypt once. The cache holds at most one entry per
// user of the set: it is bounded by the file, not by the logins.
type Set struct {
	format Format

	mu      sync.RWMutex
	users   map[string]Entry
	maxCost int                 // the highest cost of the users' hashes; the decoy's
	ok      map[string]verified // name -> the password that last matched its hash
	legacy  int                 // lines read in the old order
}

// verified is a password that matched a user's hash.
type verified struct {
	sum  [sha256.Size]byte // sha256(name, 0, password)
	hash string            // the hash it matched; a new hash invalidates it
}

// New returns an empty set of users in format f.
func New(f Format) *Set {
	return &Set{format: f, users: map[string]Entry{}, ok: map[string]verified{}}
}

// Parse reads a credentials file in format f.
func Parse(r io.Reader, f Format) (*Set, error) {
	s := New(f)
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		e, legacy, err := s.format.parseLine(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if _, dup := s.users[e.Name]; dup {
			return nil, fmt.Errorf("line %d: %w: %q", line, ErrDuplicate, e.Name)
		}
		if legacy {
			s.legacy++
		}
		s.put(e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("credentials: read: %w", err)
	}
	return s, nil
}

// parseLine reads name:role:hash, or name:hash:role when f.Legacy is set
// and the line is in that order: its second field is a bcrypt hash, or its
// third is a role.
func (f *Format) parseLine(text string) (e Entry, legacy bool, err error) {
	fields := strings.Split(text, ":")
	if len(fields) != 3 {
		return Entry{}, false, fmt.Errorf("%w: want name:role:bcrypt-hash, got %d fields", ErrFormat, len(fields))
	}
	e = Entry{Name: fields[0], Role: fields[1], Hash: []byte(fields[2])}
	if f.Legacy && (strings.HasPrefix(fields[1], "$2") || f.validRole(fields[2])) {
		e.Role, e.Hash, legacy = fields[2], []byte(fields[1]), true
	}
	if !f.validName(e.Name) {
		return Entry{}, false, fmt.Errorf("%w: %q", ErrUsername, e.Name)
	}
	if !f.validRole(e.Role) {
		return Entry{}, false, fmt.Errorf("%w %q (want one of %s)", ErrRole, e.Role, strings.Join(f.Roles, ", "))
	}
	if _, err := bcrypt.Cost(e.Hash); err != nil {
		return Entry{}, false, fmt.Errorf("%w: user %q: %v", ErrHash, e.Name, err)
	}
	return e, legacy, nil
}

// Load reads the credentials file at path in format f. When some of its
// lines are in the old order, it warns on log (when not nil), naming the
// file and f.Rewrite.
func Load(path string, f Format, log *slog.Logger) (*Set, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: open: %w", err)
	}
	defer file.Close()
	s, err := Parse(file, f)
	if err != nil {
		return nil, fmt.Errorf("credentials %s: %w", path, err)
	}
	if s.legacy > 0 && log != nil {
		log.Warn("credentials file has lines in the old name:bcrypt-hash:role order; they are read, but rewrite the file in name:role:bcrypt-hash",
			"file", path, "old_lines", s.legacy, "rewrite_with", strings.ReplaceAll(f.Rewrite, "{file}", path))
	}
	return s, nil
}

// Legacy returns how many lines Parse read in the old order.
func (s *Set) Legacy() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.legacy
}

// put stores e; the caller holds s.mu or owns s alone.
func (s *Set) put(e Entry) {
	s.users[e.Name] = e
	if c, err := bcrypt.Cost(e.Hash); err == nil && c > s.maxCost {
		s.maxCost = c
	}
}

// Add adds or replaces a user whose password is hashed with bcrypt at cost
// (DefaultCost when 0).
func (s *Set) Add(name, role, password string, cost int) error {
	if !s.format.validName(name) {
		return fmt.Errorf("%w: %q", ErrUsername, name)
	}
	if !s.format.validRole(role) {
		return fmt.Errorf("%w %q (want one of %s)", ErrRole, role, strings.Join(s.format.Roles, ", "))
	}
	if password == "" {
		return fmt.Errorf("%w: user %q", ErrPassword, name)
	}
	if cost == 0 {
		cost = DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return fmt.Errorf("credentials: hash password of %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(Entry{Name: name, Role: role, Hash: h})
	return nil
}

// Merge adds every user of o to s, replacing users of the same name.
func (s *Set) Merge(o *Set) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range o.users {
		s.put(e)
	}
}

// Replace makes s hold exactly the users of o, and forgets every cached
// verification: a reload of the file.
func (s *Set) Replace(o *Set) {
	o.mu.RLock()
	users := make(map[string]Entry, len(o.users))
	for n, e := range o.users {
		users[n] = e
	}
	maxCost, legacy := o.maxCost, o.legacy
	o.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users, s.maxCost, s.legacy = users, maxCost, legacy
	clear(s.ok)
}

// Lookup returns the user called name.
func (s *Set) Lookup(name string) (Entry, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.users[name]
	return e, ok
}

// Len returns the number of users.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.users)
}

// Verify returns the user called name if password is theirs.
//
// A password that matched the user's current hash before is recognised
// again from the cache, without bcrypt. An unknown name is checked against
// a decoy hash at the highest cost in the set, so a refusal takes at least
// as long as the slowest real check and its time does not say whether the
// name exists (exactly as long when the file has one cost, the usual case).
func (s *Set) Verify(name string, password []byte) (Entry, bool) {
	sum := cacheKey(name, password)
	s.mu.RLock()
	e, known := s.users[name]
	hit, cached := s.ok[name]
	cost := s.maxCost
	s.mu.RUnlock()
	if !known {
		decoy(cost, password)
		return Entry{}, false
	}
	if cached && hit.hash == string(e.Hash) && subtle.ConstantTimeCompare(hit.sum[:], sum[:]) == 1 {
		return e, true
	}
	if bcrypt.CompareHashAndPassword(e.Hash, password) != nil {
		return Entry{}, false
	}
	s.mu.Lock()
	if cur, ok := s.users[name]; ok && string(cur.Hash) == string(e.Hash) { // not replaced meanwhile
		s.ok[name] = verified{sum: sum, hash: string(e.Hash)}
	}
	s.mu.Unlock()
	return e, true
}

// decoys holds one decoy hash per bcrypt cost: cost -> []byte.
var decoys sync.Map

// decoy spends a bcrypt check's time at cost (DefaultCost for an empty
// set). The first call at a cost makes the decoy hash, which takes as long
// as a check, instead.
func decoy(cost int, password []byte) {
	if cost == 0 {
		cost = DefaultCost
	}
	if h, ok := decoys.Load(cost); ok {
		_ = bcrypt.CompareHashAndPassword(h.([]byte), password)
		return
	}
	h, err := bcrypt.GenerateFromPassword([]byte("sentinel-decoy"), cost)
	if err == nil {
		decoys.LoadOrStore(cost, h)
	}
}

func cacheKey(name string, password []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(password)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// WriteTo writes the users in the file format, name:role:bcrypt-hash,
// sorted by name, under the Format's Header.
func (s *Set) WriteTo(w io.Writer) (int64, error) {
	var buf bytes.Buffer
	if s.format.Header != "" {
		for _, line := range strings.Split(strings.TrimRight(s.format.Header, "\n"), "\n") {
			buf.WriteString(strings.TrimRight("# "+line, " ") + "\n")
		}
	}
	s.mu.RLock()
	names := make([]string, 0, len(s.users))
	for n := range s.users {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e := s.users[n]
		fmt.Fprintf(&buf, "%s:%s:%s\n", e.Name, e.Role, e.Hash)
	}
	s.mu.RUnlock()
	return buf.WriteTo(w)
}

// WriteFile replaces the file at path with the users, atomically and
// durably: a temporary file in the same directory (mode 0600), synced,
// renamed over path, and the directory synced, so a crash leaves the old
// file or the new one, never a part. It creates the directory if missing.
func (s *Set) WriteFile(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("credentials: write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, ".credentials-*")
	if err != nil {
		return fmt.Errorf("credentials: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	fail := func(err error) error {
		tmp.Close()
		return fmt.Errorf("credentials: write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := s.WriteTo(tmp); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("credentials: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("credentials: write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("credentials: sync directory of %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("credentials: sync directory of %s: %w", path, err)
	}
	return nil
}

// AddUser adds or replaces one user in the file at path, creating it
// (mode 0600) when missing, and rewrites the whole file atomically in the
// current order (old-order lines included). The password is hashed at cost
// (DefaultCost when 0).
func AddUser(path string, f Format, name, role, password string, cost int) error {
	s := New(f)
	if _, err := os.Stat(path); err == nil {
		if s, err = Load(path, f, nil); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("credentials: add user %q: %w", name, err)
	}
	if err := s.Add(name, role, password, cost); err != nil {
		return err
	}
	return s.WriteFile(path)
}

// GeneratePassword returns a random password of 128 bits, URL-safe base64.
func GeneratePassword() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
