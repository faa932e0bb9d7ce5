package credentials

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

var testFormat = Format{
	Roles:     []string{"reader", "writer"},
	ValidName: func(s string) bool { return !strings.Contains(s, "/") },
	Header:    "Test credentials: name:role:bcrypt-hash.\nSecond line.",
	Rewrite:   "tool adduser --file {file} NAME",
}

func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestParse(t *testing.T) {
	h := hash(t, "s3cret")
	legacy := testFormat
	legacy.Legacy = true
	tests := []struct {
		name   string
		f      Format
		file   string
		err    error
		users  int
		legacy int
	}{
		{"valid", testFormat, "# comment\n\na:reader:" + h + "\n  b:writer:" + h + "  \n", nil, 2, 0},
		{"two fields", testFormat, "a:reader\n", ErrFormat, 0, 0},
		{"four fields", testFormat, "a:reader:" + h + ":x\n", ErrFormat, 0, 0},
		{"unknown role", testFormat, "a:admin:" + h + "\n", ErrRole, 0, 0},
		{"plain password", testFormat, "a:reader:s3cret\n", ErrHash, 0, 0},
		{"empty name", testFormat, ":reader:" + h + "\n", ErrUsername, 0, 0},
		{"name with #", testFormat, "a#b:reader:" + h + "\n", ErrUsername, 0, 0},
		{"the format's own name rule", testFormat, "a/b:reader:" + h + "\n", ErrUsername, 0, 0},
		{"duplicate", testFormat, "a:reader:" + h + "\na:writer:" + h + "\n", ErrDuplicate, 0, 0},
		{"old order refused without Legacy", testFormat, "a:" + h + ":reader\n", ErrRole, 0, 0},
		{"old order read with Legacy", legacy, "a:" + h + ":reader\nb:writer:" + h + "\n", nil, 2, 1},
		{"old order, bad role", legacy, "a:" + h + ":admin\n", ErrRole, 0, 0},
		{"old order, plain password", legacy, "a:secret:reader\n", ErrHash, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(strings.NewReader(tt.file), tt.f)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), "line ") {
					t.Fatalf("err = %v, want %v with its line", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Len() != tt.users || s.Legacy() != tt.legacy {
				t.Fatalf("users %d, old lines %d; want %d, %d", s.Len(), s.Legacy(), tt.users, tt.legacy)
			}
			e, ok := s.Verify("a", []byte("s3cret"))
			if !ok || e.Role != "reader" {
				t.Fatalf("verify a: %v %v", e, ok)
			}
		})
	}
}

func TestVerifyCachesSuccessOnlyOnePerUser(t *testing.T) {
	s := New(testFormat)
	if err := s.Add("a", "reader", "right", MinCost); err != nil {
		t.Fatal(err)
	}
	verify := func(name, pw string, want bool) {
		t.Helper()
		if _, ok := s.Verify(name, []byte(pw)); ok != want {
			t.Fatalf("Verify(%q, %q) = %v, want %v", name, pw, ok, want)
		}
	}
	verify("a", "wrong", false)
	if len(s.ok) != 0 {
		t.Fatal("failures are not cached")
	}
	verify("a", "right", true)
	verify("a", "right", true) // from the cache
	if len(s.ok) != 1 {
		t.Fatalf("cache has %d entries, want 1", len(s.ok))
	}
	verify("nobody", "right", false)

	// A new password invalidates the cached old one.
	if err := s.Add("a", "reader", "new", MinCost); err != nil {
		t.Fatal(err)
	}
	verify("a", "right", false)
	verify("a", "new", true)
	verify("a", "new", true)
	if len(s.ok) != 1 {
		t.Fatalf("cache has %d entries after a password change, want 1: one per user", len(s.ok))
	}

	// Many logins of many users never hold more entries than users.
	for _, n := range []string{"b", "c", "d"} {
		if err := s.Add(n, "writer", n, MinCost); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			verify(n, n, true)
			verify(n, "not "+n, false)
		}
	}
	if len(s.ok) > s.Len() {
		t.Fatalf("cache has %d entries for %d users", len(s.ok), s.Len())
	}

	// A reload forgets them.
	s.Replace(New(testFormat))
	if len(s.ok) != 0 || s.Len() != 0 {
		t.Fatal("Replace keeps cached verifications")
	}
	verify("a", "new", false)
}

func TestDecoyCost(t *testing.T) {
	s := New(testFormat)
	if s.maxCost != 0 {
		t.Fatal("empty set")
	}
	if err := s.Add("a", "reader", "x", MinCost); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("b", "reader", "x", MinCost+1); err != nil {
		t.Fatal(err)
	}
	if s.maxCost != MinCost+1 {
		t.Fatalf("decoy cost %d, want the highest in the set, %d", s.maxCost, MinCost+1)
	}
	s.Verify("nobody", []byte("x")) // makes the decoy at that cost
	s.Verify("nobody", []byte("x")) // checks against it
	h, ok := decoys.Load(MinCost + 1)
	if !ok {
		t.Fatal("no decoy at the set's cost")
	}
	if c, _ := bcrypt.Cost(h.([]byte)); c != MinCost+1 {
		t.Fatalf("decoy cost %d", c)
	}
}

func TestAddUserWritesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "credentials")
	for _, u := range []struct{ name, role, pw string }{{"a", "reader", "one"}, {"b", "writer", "two"}, {"a", "writer", "three"}} {
		if err := AddUser(path, testFormat, u.name, u.role, u.pw, MinCost); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []struct {
		name, role, pw string
		err            error
	}{{"x:y", "reader", "p", ErrUsername}, {"x/y", "reader", "p", ErrUsername}, {"x", "root", "p", ErrRole}, {"x", "reader", "", ErrPassword}} {
		if err := AddUser(path, testFormat, bad.name, bad.role, bad.pw, MinCost); !errors.Is(err, bad.err) {
			t.Fatalf("AddUser(%q, %q, %q) = %v, want %v", bad.name, bad.role, bad.pw, err, bad.err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v: a credentials file is private", st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "# Test credentials: name:role:bcrypt-hash.\n# Second line.\na:writer:$2a$04$") {
		t.Fatalf("file:\n%s", data)
	}
	if strings.Contains(string(data), "three") {
		t.Fatal("only hashes are stored")
	}
	s, err := Load(path, testFormat, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := s.Verify("a", []byte("three")); !ok || e.Role != "writer" || s.Len() != 2 {
		t.Fatalf("a: %v %v, %d users", e, ok, s.Len())
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

// TestLegacyFileKeepsWorking: a file in the old order is read, Load warns
// naming the file and the command that rewrites it, and adding a user
// rewrites every line in the current order.
func TestLegacyFileKeepsWorking(t *testing.T) {
	f := testFormat
	f.Legacy = true
	path := filepath.Join(t.TempDir(), "users")
	old := "# old file\nalice:" + hash(t, "pw-a") + ":reader\nbob:" + hash(t, "pw-b") + ":writer\n"
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, err := Load(path, f, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := s.Verify("alice", []byte("pw-a")); !ok || e.Role != "reader" {
		t.Fatalf("alice: %v %v", e, ok)
	}
	for _, want := range []string{"level=WARN", "file=" + path, "old_lines=2", `rewrite_with="tool adduser --file ` + path + ` NAME"`} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("warning %q lacks %q", logs.String(), want)
		}
	}

	if err := AddUser(path, f, "carol", "reader", "pw-c", MinCost); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	s, err = Load(path, f, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Legacy() != 0 || logs.Len() != 0 {
		t.Fatalf("after a rewrite: %d old lines, log %q", s.Legacy(), logs.String())
	}
	for name, pw := range map[string]string{"alice": "pw-a", "bob": "pw-b", "carol": "pw-c"} {
		if _, ok := s.Verify(name, []byte(pw)); !ok {
			t.Fatalf("%s lost in the rewrite", name)
		}
	}
	// The rewritten file is readable without Legacy too.
	if _, err := Load(path, testFormat, nil); err != nil {
		t.Fatal(err)
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"dev-00001-abcdef": true, "a/b": true, "$x": true, "": false, "a:b": false, "a b": false, "a#": false,
		"a\tb": false, "a\x00": false, strings.Repeat("x", 256): true, strings.Repeat("x", 257): false,
	} {
		if ValidName(name) != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, !want, want)
		}
	}
}

func TestGeneratePassword(t *testing.T) {
	a, b := GeneratePassword(), GeneratePassword()
	if len(a) != 22 || a == b {
		t.Fatalf("%q %q: want two different 128-bit base64 passwords", a, b)
	}
}
