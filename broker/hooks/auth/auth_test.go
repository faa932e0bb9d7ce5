package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), MinCost)
	require.NoError(t, err)
	return string(h)
}

func TestReadUsers(t *testing.T) {
	h := hash(t, "s3cret")
	tests := []struct {
		name, file string
		err        error
		users      int
	}{
		{"valid", "# comment\n\ndev-1:device:" + h + "\n  svc:service:" + h + "  \nalice:ops:" + h + "\ngw:gateway:" + h + "\n", nil, 4},
		{"two fields", "dev-1:device\n", ErrFormat, 0},
		{"four fields", "dev-1:device:" + h + ":x\n", ErrFormat, 0},
		{"unknown role", "dev-1:admin:" + h + "\n", ErrRole, 0},
		{"anonymous is not a file role", "x:anonymous:" + h + "\n", ErrRole, 0},
		{"plain password", "dev-1:device:s3cret\n", ErrHash, 0},
		{"wildcard user", "dev+1:device:" + h + "\n", ErrUsername, 0},
		{"slash user", "a/b:device:" + h + "\n", ErrUsername, 0},
		{"empty user", ":device:" + h + "\n", ErrUsername, 0},
		{"dollar user", "$SYS:ops:" + h + "\n", ErrUsername, 0},
		{"duplicate", "a:ops:" + h + "\na:device:" + h + "\n", ErrDuplicate, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ReadUsers(strings.NewReader(tt.file))
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				require.Contains(t, err.Error(), "line ")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.users, u.Len())
			usr, ok := u.Verify("svc", []byte("s3cret"))
			require.True(t, ok)
			require.Equal(t, RoleService, usr.Role)
		})
	}
}

// TestVerifyCachesSuccessOnly: the cache itself is the credentials
// module's (its tests count the entries); here, that the broker's users
// keep its behaviour.
func TestVerifyCachesSuccessOnly(t *testing.T) {
	u := NewUsers()
	require.NoError(t, u.Add("dev-1", RoleDevice, "right", MinCost))
	_, ok := u.Verify("dev-1", []byte("wrong"))
	require.False(t, ok)
	_, ok = u.Verify("dev-1", []byte("right"))
	require.True(t, ok)
	_, ok = u.Verify("dev-1", []byte("right"))
	require.True(t, ok, "from the cache")
	_, ok = u.Verify("nobody", []byte("right"))
	require.False(t, ok)

	// A new password invalidates the cached old one.
	require.NoError(t, u.Add("dev-1", RoleDevice, "new", MinCost))
	_, ok = u.Verify("dev-1", []byte("right"))
	require.False(t, ok, "old password after a change")
	_, ok = u.Verify("dev-1", []byte("new"))
	require.True(t, ok)
}

func TestAddUserWritesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.txt")
	pw, err := AddUser(path, "dev-1", RoleDevice, "", MinCost)
	require.NoError(t, err)
	require.Len(t, pw, 22, "generated: 128 bits, base64")
	_, err = AddUser(path, "alice", RoleOps, "hunter2", MinCost)
	require.NoError(t, err)
	_, err = AddUser(path, "dev-1", RoleDevice, "replaced", MinCost)
	require.NoError(t, err)
	_, err = AddUser(path, "bad/name", RoleOps, "x", MinCost)
	require.ErrorIs(t, err, ErrUsername)
	_, err = AddUser(path, "bob", "root", "x", MinCost)
	require.ErrorIs(t, err, ErrRole)

	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "a credentials file is private")
	u, err := LoadUsers(path)
	require.NoError(t, err)
	require.Equal(t, 2, u.Len())
	_, ok := u.Verify("dev-1", []byte(pw))
	require.False(t, ok, "replaced")
	_, ok = u.Verify("dev-1", []byte("replaced"))
	require.True(t, ok)
	usr, ok := u.Verify("alice", []byte("hunter2"))
	require.True(t, ok)
	require.Equal(t, RoleOps, usr.Role)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, string(data), "hunter2", "only hashes are stored")
}

func TestDevicePassword(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a, b := DevicePassword(key, "dev-1"), DevicePassword(key, "dev-2")
	require.NotEqual(t, a, b)
	require.Equal(t, a, DevicePassword(key, "dev-1"), "deterministic")
	require.NotEqual(t, a, DevicePassword([]byte("other key"), "dev-1"))

	h := &Hook{opts: &Options{Users: NewUsers(), DeviceKey: key}}
	require.True(t, h.derived("dev-1", []byte(a)))
	require.False(t, h.derived("dev-1", []byte(b)))
	require.False(t, h.derived("a/b", []byte(DevicePassword(key, "a/b"))), "invalid names never derive")
	require.NoError(t, h.opts.Users.Add("dev-1", RoleOps, "x", MinCost))
	require.False(t, h.derived("dev-1", []byte(a)), "a listed user must use its own password")
	h.opts.DeviceKey = nil
	require.False(t, h.derived("dev-2", []byte(b)), "no key, no derived devices")
}

func TestInitRejectsWrongConfig(t *testing.T) {
	h := new(Hook)
	require.ErrorIs(t, h.Init(nil), mqtt.ErrInvalidConfigType)
	require.ErrorIs(t, h.Init(&Options{}), mqtt.ErrInvalidConfigType, "Server is required")
	require.ErrorIs(t, h.Init(struct{}{}), mqtt.ErrInvalidConfigType)
	require.NoError(t, h.Init(&Options{Server: mqtt.New(&mqtt.Options{})}))
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"dev-00001-abcdef": true, "sentinel-ingestor-0": true, "": false, "a/b": false, "a+": false,
		"#": false, "a:b": false, "a b": false, "$SYS": false, strings.Repeat("x", 257): false,
	} {
		require.Equal(t, want, ValidName(name), name)
	}
}

func TestValidClientID(t *testing.T) {
	// Only / + # (and U+0000) are refused, as README.md's Broker security
	// says: MQTT-3.1.3-5 lets a server allow more than [0-9a-zA-Z], and
	// generic clients use spaces and ':' (issue 14).
	for id, want := range map[string]bool{
		"dev-00001-abcdef": true, "a b": true, "a:b": true, "paho 1:2": true, "$x": true, "é": true,
		"": false, "a/b": false, "a+": false, "#": false, "a\x00b": false,
	} {
		require.Equal(t, want, ValidClientID(id), "%q", id)
	}
}

func TestRestoredSessionIdentity(t *testing.T) {
	users := NewUsers()
	require.NoError(t, users.Add("svc", RoleService, "x", MinCost))
	h := &Hook{opts: &Options{Users: users, DeviceKey: []byte("k")}}
	cl := func(id, user string) *mqtt.Client {
		c := &mqtt.Client{ID: id}
		c.Properties.Username = []byte(user)
		return c
	}
	id, ok := h.Identify(cl("svc-0", "svc"))
	require.True(t, ok)
	require.Equal(t, RoleService, id.Role)
	id, ok = h.Identify(cl("dev-9", "dev-9"))
	require.True(t, ok, "a derived device")
	require.Equal(t, RoleDevice, id.Role)
	_, ok = h.Identify(cl("dev-8", "dev-9"))
	require.False(t, ok, "a device's client ID is its user name")
	_, ok = h.Identify(cl("anon", ""))
	require.False(t, ok, "anonymous off")
	h.opts.AllowAnonymous = true
	id, ok = h.Identify(cl("anon", ""))
	require.True(t, ok)
	require.Equal(t, RoleAnonymous, id.Role)
}

// BenchmarkAdmit is the cost of one CONNECT's authentication: a derived
// device password (sentinel run), a file user whose password was verified
// before (the cache), and a first bcrypt check at the default cost.
func BenchmarkAdmit(b *testing.B) {
	users := NewUsers()
	if err := users.Add("svc", RoleService, "pw", 0); err != nil {
		b.Fatal(err)
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	h := &Hook{opts: &Options{Users: users, DeviceKey: key}}
	connect := func(id, user, pw string) (*mqtt.Client, packets.Packet) {
		var pk packets.Packet
		pk.Connect.UsernameFlag, pk.Connect.Username, pk.Connect.Password = true, []byte(user), []byte(pw)
		return &mqtt.Client{ID: id}, pk
	}
	run := func(b *testing.B, cl *mqtt.Client, pk packets.Packet) {
		for b.Loop() {
			if _, code, _ := h.admit(cl, pk); code != packets.CodeSuccess {
				b.Fatal(code)
			}
		}
	}
	b.Run("derived device", func(b *testing.B) {
		cl, pk := connect("dev-1", "dev-1", DevicePassword(key, "dev-1"))
		run(b, cl, pk)
	})
	b.Run("file user, cached", func(b *testing.B) {
		cl, pk := connect("svc-0", "svc", "pw")
		run(b, cl, pk)
	})
	b.Run("file user, bcrypt cost 10", func(b *testing.B) {
		cl, pk := connect("svc-0", "svc", "pw")
		for b.Loop() {
			users.Replace(users) // a reload: forgets the cached verification
			if _, code, _ := h.admit(cl, pk); code != packets.CodeSuccess {
				b.Fatal(code)
			}
		}
	})
}
