package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
	"github.com/sentinel-iot/sentinel/broker/hooks/limits"
)

// The users of the security tests: name -> role. Every password is
// password(name).
var testUsers = map[string]auth.Role{
	"dev-1": auth.RoleDevice, "dev-2": auth.RoleDevice,
	"svc": auth.RoleService, "alice": auth.RoleOps, "gw": auth.RoleGateway,
}

func password(name string) string { return "pw-" + name }

// startSecure starts a broker on a loopback port with testUsers and the
// default ACL; change adjusts its config first.
func startSecure(t testing.TB, change func(*broker.Config)) *broker.Broker {
	t.Helper()
	users := auth.NewUsers()
	for name, role := range testUsers {
		require.NoError(t, users.Add(name, role, password(name), auth.MinCost))
	}
	cfg := broker.Config{Addr: "127.0.0.1:0", Auth: broker.AuthConfig{Users: users}}
	if change != nil {
		change(&cfg)
	}
	b, err := broker.New(cfg)
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { b.Close() })
	return b
}

// eventually waits for cond, failing the test at the deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mosquitto returns the path of Debian's mosquitto_pub or mosquitto_sub.
// CI installs mosquitto-clients; elsewhere the test skips with the reason.
func mosquitto(t *testing.T, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI (apt-get install mosquitto-clients)", name)
		}
		t.Skipf("%s not installed (apt-get install mosquitto-clients): skipping the interop test", name)
	}
	return bin
}

// clientArgs are mosquitto's flags to reach b as user (client ID id).
func clientArgs(b *broker.Broker, user, id string) []string {
	host, port, _ := net.SplitHostPort(b.Addr())
	return []string{"-V", "mqttv5", "-h", host, "-p", port, "-i", id, "-u", user, "-P", password(user)}
}

// pub runs mosquitto_pub to completion and returns its exit code and output.
func pub(t *testing.T, b *broker.Broker, user, id, topic, msg string) (int, string) {
	t.Helper()
	args := append(clientArgs(b, user, id), "-q", "1", "-t", topic, "-m", msg)
	out, err := exec.Command(mosquitto(t, "mosquitto_pub"), args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	require.NoError(t, err)
	return 0, string(out)
}

// mosquittoSub is a running mosquitto_sub -d: its output, line by line.
type mosquittoSub struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

// sub starts mosquitto_sub on filters and returns once it has its SUBACK.
func sub(t *testing.T, b *broker.Broker, user, id string, count int, filters ...string) *mosquittoSub {
	t.Helper()
	args := append(clientArgs(b, user, id), "-d", "-v", "-q", "1", "-C", fmt.Sprint(count), "-W", "20")
	for _, f := range filters {
		args = append(args, "-t", f)
	}
	// stdbuf: mosquitto_sub's stdout is a pipe, which libc would buffer
	// until exit; the test reads the SUBACK line as it comes.
	bin := mosquitto(t, "mosquitto_sub")
	if sb, err := exec.LookPath("stdbuf"); err == nil {
		args, bin = append([]string{"-oL", bin}, args...), sb
	}
	s := &mosquittoSub{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	out, err := s.cmd.StdoutPipe()
	require.NoError(t, err)
	s.cmd.Stderr = s.cmd.Stdout
	require.NoError(t, s.cmd.Start())
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
		_ = s.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	eventually(t, "mosquitto_sub subscribed", func() bool { return s.has("Subscribed (mid") })
	return s
}

func (s *mosquittoSub) has(substr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

func (s *mosquittoSub) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// wait waits for mosquitto_sub to exit (after its -C count of messages).
func (s *mosquittoSub) wait(t *testing.T) string {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("mosquitto_sub did not finish:\n%s", s.output())
	}
	return s.output()
}

func TestMosquittoInterop(t *testing.T) {
	b := startSecure(t, nil)

	t.Run("good credentials connect and publish", func(t *testing.T) {
		s := sub(t, b, "svc", "svc-1", 1, "$share/ingest/fleet/+/+/+")
		code, out := pub(t, b, "dev-1", "dev-1", "fleet/eu-west/dev-1/telemetry", "reading-1")
		require.Zero(t, code, out)
		require.NotContains(t, out, "failed")
		require.Contains(t, s.wait(t), "fleet/eu-west/dev-1/telemetry reading-1")
	})

	t.Run("bad credentials are refused", func(t *testing.T) {
		before := b.Rejected()[auth.ReasonBadCredentials]
		code, out := pub(t, b, "dev-1", "dev-1", "fleet/eu-west/dev-1/telemetry", "x")
		require.Zero(t, code, "control: good password")
		args := clientArgs(b, "dev-1", "dev-1")
		args[len(args)-1] = "wrong"
		o, _ := exec.Command(mosquitto(t, "mosquitto_pub"), append(args, "-t", "fleet/eu-west/dev-1/telemetry", "-m", "x")...).CombinedOutput()
		require.Contains(t, string(o), "Bad User Name or Password", out)
		code, out = pub(t, b, "nobody", "nobody", "fleet/eu-west/nobody/telemetry", "x")
		require.Equal(t, 0x86, code, out)
		require.Equal(t, before+2, b.Rejected()[auth.ReasonBadCredentials])
	})

	t.Run("device client ID must be its user name", func(t *testing.T) {
		code, out := pub(t, b, "dev-1", "dev-2", "fleet/eu-west/dev-2/telemetry", "x")
		require.Equal(t, 0x85, code, out)
		require.Contains(t, out, "Client Identifier not valid")
		require.Positive(t, b.Rejected()[auth.ReasonDeviceClientID])
	})

	t.Run("client IDs with + # / are refused", func(t *testing.T) {
		for _, id := range []string{"a+b", "a#", "a/b"} {
			code, out := pub(t, b, "svc", id, "sentinel/x", "x")
			require.Equal(t, 0x85, code, "client ID %q: %s", id, out)
		}
		require.GreaterOrEqual(t, b.Rejected()[auth.ReasonClientID], uint64(3))
	})

	t.Run("a Last Will on a topic the device may not publish to is refused", func(t *testing.T) {
		args := append(clientArgs(b, "dev-1", "dev-1"), "-q", "1", "-t", "fleet/eu-west/dev-1/status", "-m", "x",
			"--will-topic", "fleet/eu-west/dev-2/status", "--will-payload", "offline")
		out, err := exec.Command(mosquitto(t, "mosquitto_pub"), args...).CombinedOutput()
		require.Error(t, err)
		require.Contains(t, string(out), "Not authorized")
		require.Positive(t, b.Rejected()[auth.ReasonWill])
		args = append(clientArgs(b, "dev-1", "dev-1"), "-q", "1", "-t", "fleet/eu-west/dev-1/status", "-m", "x",
			"--will-topic", "fleet/eu-west/dev-1/status", "--will-payload", "offline")
		out, err = exec.Command(mosquitto(t, "mosquitto_pub"), args...).CombinedOutput()
		require.NoError(t, err, "its own status topic: %s", out)
	})

	t.Run("MQTT 3.1.1 clients get the same rules", func(t *testing.T) {
		v311 := func(user, pw, topic string) (string, error) {
			args := clientArgs(b, user, user)
			args[1] = "mqttv311"
			args[len(args)-1] = pw
			out, err := exec.Command(mosquitto(t, "mosquitto_pub"), append(args, "-q", "1", "-t", topic, "-m", "v311")...).CombinedOutput()
			return string(out), err
		}
		out, err := v311("dev-1", password("dev-1"), "fleet/eu-west/dev-1/telemetry")
		require.NoError(t, err, out)
		out, err = v311("dev-1", "wrong", "fleet/eu-west/dev-1/telemetry")
		require.Error(t, err)
		require.Contains(t, strings.ToLower(out), "not authori", "v3 return code 0x04/0x05: %s", out)
		// No reason codes in 3.1.1: a refused publish ends the connection.
		out, err = v311("dev-1", password("dev-1"), "fleet/eu-west/dev-2/telemetry")
		require.Error(t, err, out)
	})

	t.Run("anonymous is refused", func(t *testing.T) {
		host, port, _ := net.SplitHostPort(b.Addr())
		out, err := exec.Command(mosquitto(t, "mosquitto_pub"), "-V", "mqttv5", "-h", host, "-p", port, "-t", "x", "-m", "x").CombinedOutput()
		require.Error(t, err)
		require.Contains(t, string(out), "Not authorized")
	})

	t.Run("device publishing to another device's topic is refused", func(t *testing.T) {
		s := sub(t, b, "svc", "svc-2", 1, "fleet/+/+/telemetry")
		before := b.Rejected()[broker.ReasonACLPublish]
		_, out := pub(t, b, "dev-1", "dev-1", "fleet/eu-west/dev-2/telemetry", "forged")
		require.Contains(t, out, "Not authorized", "PUBACK 0x87")
		require.Equal(t, before+1, b.Rejected()[broker.ReasonACLPublish])
		require.Positive(t, b.ACLDenied()["device\twrite"])
		// The forged message was refused before this one was sent: the
		// subscriber's first message is the genuine one.
		code, out := pub(t, b, "dev-2", "dev-2", "fleet/eu-west/dev-2/telemetry", "genuine")
		require.Zero(t, code, out)
		got := s.wait(t)
		require.Contains(t, got, "genuine")
		require.NotContains(t, got, "forged")
	})

	t.Run("subscribing to another device's cmd or to # is refused with 0x87", func(t *testing.T) {
		for _, filter := range []string{"fleet/eu-west/dev-2/cmd", "fleet/+/+/cmd", "#", "+/#", "$SYS/#"} {
			s := sub(t, b, "dev-1", "dev-1", 1, filter)
			require.True(t, s.has("Subscribed (mid: 1): 135"), "filter %s: %s", filter, s.output())
		}
		s := sub(t, b, "dev-1", "dev-1", 1, "fleet/eu-west/dev-1/cmd")
		require.True(t, s.has("Subscribed (mid: 1): 1"), "own cmd granted QoS 1: %s", s.output())
		code, out := pub(t, b, "svc", "svc-cmd", "fleet/eu-west/dev-1/cmd", "retry")
		require.Zero(t, code, out)
		require.Contains(t, s.wait(t), "fleet/eu-west/dev-1/cmd retry")
	})

	t.Run("ops sees sentinel/recovery/# but cannot publish", func(t *testing.T) {
		s := sub(t, b, "alice", "alice-laptop", 1, "sentinel/recovery/#")
		_, out := pub(t, b, "alice", "alice-laptop-2", "sentinel/recovery/eu-west/dev-1", "ops-forged")
		require.Contains(t, out, "Not authorized")
		code, out := pub(t, b, "svc", "svc-audit", "sentinel/recovery/eu-west/dev-1", "decision")
		require.Zero(t, code, out)
		got := s.wait(t)
		require.Contains(t, got, "sentinel/recovery/eu-west/dev-1 decision")
		require.NotContains(t, got, "ops-forged")
		ops := sub(t, b, "alice", "alice-sys", 1, "$SYS/broker/clients/connected")
		require.Contains(t, ops.wait(t), "$SYS/broker/clients/connected", "ops reads $SYS")
	})
}

// raw is a hand-driven MQTT v5 connection, for packets no well-behaved
// client library sends.
type raw struct {
	t          testing.TB
	c          net.Conn
	br         *bufio.Reader
	version    byte   // the protocol version packets are encoded and decoded with
	maxPacket  uint32 // from CONNACK
	lastReason byte   // of the last DISCONNECT untilClosed read
}

// newRaw wraps a connection that speaks MQTT version (4: 3.1.1, 5).
func newRaw(t testing.TB, c net.Conn, version byte) *raw {
	return &raw{t: t, c: c, br: bufio.NewReader(c), version: version}
}

func dialRaw(t testing.TB, b *broker.Broker, user, id string) *raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	r := newRaw(t, c, 5)
	r.write(connectPacket(user, id))
	ack := r.read()
	require.Equal(t, packets.Connack, ack.FixedHeader.Type)
	require.Zero(t, ack.ReasonCode, "CONNACK")
	require.NotZero(t, ack.Properties.MaximumPacketSize, "CONNACK advertises the maximum packet size")
	r.maxPacket = ack.Properties.MaximumPacketSize
	return r
}

func connectPacket(user, id string) []byte {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: id,
			UsernameFlag: user != "", Username: []byte(user), PasswordFlag: user != "", Password: []byte(password(user))}}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

func publishPacket(topic string, id uint16, payload []byte) []byte {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
		TopicName: topic, PacketID: id, Payload: payload}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// encoders are the packets a raw client sends, by type.
var encoders = map[byte]func(*packets.Packet, *bytes.Buffer) error{
	packets.Connect: (*packets.Packet).ConnectEncode, packets.Publish: (*packets.Packet).PublishEncode,
	packets.Puback: (*packets.Packet).PubackEncode, packets.Subscribe: (*packets.Packet).SubscribeEncode,
	packets.Disconnect: (*packets.Packet).DisconnectEncode, packets.Unsubscribe: (*packets.Packet).UnsubscribeEncode,
	packets.Pingreq: (*packets.Packet).PingreqEncode, packets.Pubrel: (*packets.Packet).PubrelEncode,
}

// send encodes pk in r's protocol version and writes it.
func (r *raw) send(pk packets.Packet) {
	r.t.Helper()
	pk.ProtocolVersion = r.version
	encode, ok := encoders[pk.FixedHeader.Type]
	require.True(r.t, ok, "send: no encoder for packet type %d", pk.FixedHeader.Type)
	var buf bytes.Buffer
	require.NoError(r.t, encode(&pk, &buf))
	r.write(buf.Bytes())
}

func (r *raw) write(b []byte) {
	r.t.Helper()
	_, err := r.c.Write(b)
	require.NoError(r.t, err)
}

// read reads one packet; it fails the test on error.
func (r *raw) read() packets.Packet {
	r.t.Helper()
	pk, err := r.tryRead()
	require.NoError(r.t, err)
	return pk
}

func (r *raw) tryRead() (packets.Packet, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var pk packets.Packet
	b, err := r.br.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(r.br)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	pk.ProtocolVersion = r.version
	body := make([]byte, n)
	if _, err := io.ReadFull(r.br, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	}
	return pk, err
}

// closedWith reads until the broker closes the connection and returns the
// reason code of its DISCONNECT (-1 without one).
func (r *raw) closedWith() int {
	r.t.Helper()
	code := -1
	for {
		pk, err := r.tryRead()
		if err != nil {
			var ne net.Error
			require.False(r.t, errorsAs(err, &ne) && ne.Timeout(), "the broker did not close the connection")
			return code
		}
		if pk.FixedHeader.Type == packets.Disconnect {
			code = int(pk.ReasonCode)
		}
	}
}

func errorsAs(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

// flowing checks that dev-2's QoS 1 traffic still reaches the service
// subscriber s, message n.
func flowing(t *testing.T, dev2 *raw, s *raw, n uint16) {
	t.Helper()
	topic := "fleet/eu-west/dev-2/telemetry"
	dev2.write(publishPacket(topic, n, []byte(fmt.Sprint("m", n))))
	ack := dev2.read()
	require.Equal(t, packets.Puback, ack.FixedHeader.Type)
	require.Zero(t, ack.ReasonCode)
	got := s.read()
	require.Equal(t, packets.Publish, got.FixedHeader.Type)
	require.Equal(t, fmt.Sprint("m", n), string(got.Payload))
	if got.FixedHeader.Qos > 0 {
		var buf bytes.Buffer
		require.NoError(t, (&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: 5, PacketID: got.PacketID}).PubackEncode(&buf))
		s.write(buf.Bytes())
	}
}

func TestLimitsRejectAndCount(t *testing.T) {
	b := startSecure(t, func(c *broker.Config) {
		c.Limits.DeviceRate = limits.Rate{PerSecond: 1, Burst: 10}
	})
	svc := dialRaw(t, b, "svc", "svc-limits")
	var buf bytes.Buffer
	require.NoError(t, (&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "fleet/+/+/telemetry", Qos: 1}}}).SubscribeEncode(&buf))
	svc.write(buf.Bytes())
	require.Equal(t, packets.Suback, svc.read().FixedHeader.Type)
	dev2 := dialRaw(t, b, "dev-2", "dev-2")
	require.EqualValues(t, 128<<10, dev2.maxPacket, "the default maximum packet size, advertised")
	flowing(t, dev2, svc, 1)

	t.Run("oversized packet", func(t *testing.T) {
		c := dialRaw(t, b, "dev-1", "dev-1")
		// The broker may hang up before the write completes.
		_, _ = c.c.Write(publishPacket("fleet/eu-west/dev-1/telemetry", 1, make([]byte, 200<<10)))
		c.closedWith()
		eventually(t, "packet_too_large counted", func() bool { return b.Rejected()[broker.ReasonPacketTooLarge] == 1 })
		flowing(t, dev2, svc, 2)
	})

	t.Run("wildcard topic in PUBLISH", func(t *testing.T) {
		c := dialRaw(t, b, "dev-1", "dev-1")
		c.write(publishPacket("fleet/eu-west/dev-1/+", 1, []byte("x")))
		require.Equal(t, int(packets.ErrProtocolViolationSurplusWildcard.Code), c.closedWith())
		require.EqualValues(t, 1, b.Rejected()[limits.ReasonWildcard])
		flowing(t, dev2, svc, 3)
	})

	t.Run("$SYS topic in PUBLISH", func(t *testing.T) {
		c := dialRaw(t, b, "svc", "svc-sys")
		c.write(publishPacket("$SYS/broker/uptime", 1, []byte("0")))
		require.Equal(t, int(packets.ErrTopicNameInvalid.Code), c.closedWith())
		require.EqualValues(t, 1, b.Rejected()[limits.ReasonReserved])
		flowing(t, dev2, svc, 4)
	})

	t.Run("flood past the rate limit", func(t *testing.T) {
		c := dialRaw(t, b, "dev-1", "dev-1")
		// The burst of 10 passes; the 11th, in the same write, cannot
		// have earned a token (1/s). The DISCONNECT comes mid-burst, after
		// the held-back PUBACKs (mochi patch 7 holds replies while a burst
		// is read). No more than 11: bytes the broker never reads would
		// turn its close into a reset that discards the DISCONNECT.
		var flood []byte
		for i := range 11 {
			flood = append(flood, publishPacket("fleet/eu-west/dev-1/telemetry", uint16(i+1), []byte("flood"))...)
		}
		c.write(flood)
		require.Equal(t, int(packets.ErrMessageRateTooHigh.Code), c.closedWith())
		require.EqualValues(t, 1, b.Rejected()[limits.ReasonRate])
		// The service subscriber gets the burst, then dev-2's message.
		for got := 0; ; got++ {
			pk := svc.read()
			if string(pk.Payload) != "flood" {
				t.Fatalf("after %d flood messages, got %q", got, pk.Payload)
			}
			var buf bytes.Buffer
			require.NoError(t, (&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: 5, PacketID: pk.PacketID}).PubackEncode(&buf))
			svc.write(buf.Bytes())
			if got+1 >= 10 {
				break
			}
		}
		flowing(t, dev2, svc, 5)
	})

	t.Run("metrics", func(t *testing.T) {
		eventually(t, "refused clients gone", func() bool { return b.Clients() == 2 })
		rec := httptest.NewRecorder()
		b.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		for _, want := range []string{
			`sentinel_broker_rejected_total{reason="packet_too_large"} 1`,
			`sentinel_broker_rejected_total{reason="wildcard_topic"} 1`,
			`sentinel_broker_rejected_total{reason="rate_limited"} 1`,
			`sentinel_broker_rejected_total{reason="reserved_topic"} 1`,
			`sentinel_broker_clients_connected 2`,
			`sentinel_broker_messages_received_total`,
		} {
			require.Contains(t, rec.Body.String(), want)
		}
	})
}

func TestMaxConnections(t *testing.T) {
	b := startSecure(t, func(c *broker.Config) { c.Limits.MaxConnections = 1 })
	dialRaw(t, b, "dev-1", "dev-1")
	c, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	r := newRaw(t, c, 5)
	r.write(connectPacket("dev-2", "dev-2"))
	ack := r.read()
	require.Equal(t, packets.Connack, ack.FixedHeader.Type)
	require.Equal(t, packets.ErrServerBusy.Code, ack.ReasonCode)
	eventually(t, "max_connections counted", func() bool { return b.Rejected()[broker.ReasonMaxConnections] == 1 })
}

func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	b := startSecure(t, func(c *broker.Config) {
		c.TLS = broker.TLSConfig{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}
	})
	require.NotEmpty(t, b.TLSAddr())
	c, err := tls.Dial("tcp", b.TLSAddr(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	require.NoError(t, err)
	defer c.Close()
	r := newRaw(t, c, 5)
	r.write(connectPacket("dev-1", "dev-1"))
	ack := r.read()
	require.Equal(t, packets.Connack, ack.FixedHeader.Type)
	require.Zero(t, ack.ReasonCode)
	r.write(publishPacket("fleet/eu-west/dev-1/telemetry", 1, []byte("over tls")))
	require.Equal(t, packets.Puback, r.read().FixedHeader.Type)

	_, err = broker.New(broker.Config{TLS: broker.TLSConfig{Addr: "127.0.0.1:0"}, Addr: "127.0.0.1:0"})
	require.ErrorIs(t, err, broker.ErrConfig, "TLS without a certificate")
}

// selfSigned writes a certificate for localhost (and 127.0.0.1) from a
// test CA, and its key, and returns a pool of the CA.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	ca := newTestCA(t, dir, "test-ca")
	certFile, keyFile = ca.issue(t, "localhost", x509.ExtKeyUsageServerAuth, time.Now().Add(time.Hour))
	pool = x509.NewCertPool()
	pool.AddCert(ca.cert)
	return certFile, keyFile, pool
}

// testCA issues the certificates of a test, generated with crypto/x509.
type testCA struct {
	dir    string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	file   string // the CA certificate, PEM
	serial int64
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	ca := &testCA{dir: dir, cert: cert, key: key, file: filepath.Join(dir, name+".pem"), serial: 100}
	require.NoError(t, os.WriteFile(ca.file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return ca
}

// issue writes a certificate for name (its CN and DNS name; 127.0.0.1 too
// for a server) valid until notAfter, and its key. The serial number is
// the last ca.serial.
func (ca *testCA) issue(t *testing.T, name string, usage x509.ExtKeyUsage, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ca.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	base := filepath.Join(ca.dir, fmt.Sprintf("%s-%d", name, ca.serial))
	certFile, keyFile = base+".crt", base+".key"
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

func TestStoreMetrics(t *testing.T) {
	b := startSecure(t, func(c *broker.Config) { c.Store.Dir = t.TempDir() })
	r := dialRaw(t, b, "dev-1", "dev-1")
	r.write(publishPacket("fleet/eu-west/dev-1/telemetry", 1, []byte("durable")))
	require.Equal(t, packets.Puback, r.read().FixedHeader.Type)
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Contains(t, rec.Body.String(), "sentinel_broker_store_sync_seconds_count")
	require.Contains(t, rec.Body.String(), "sentinel_broker_store_ack_delay_seconds_bucket")
}

func TestWebsocketListener(t *testing.T) {
	// mochi's websocket listener binds by address only: find a free port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	b := startSecure(t, func(c *broker.Config) { c.WebsocketAddr = addr })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	u, err := url.Parse("ws://" + addr + "/")
	require.NoError(t, err)
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
		ConnectUsername: "dev-1", ConnectPassword: []byte(password("dev-1")),
		ClientConfig: paho.ClientConfig{ClientID: "dev-1"},
	})
	require.NoError(t, err)
	require.NoError(t, cm.AwaitConnection(ctx))
	res, err := cm.Publish(ctx, &paho.Publish{Topic: "fleet/eu-west/dev-1/telemetry", QoS: 1, Payload: []byte("over websocket")})
	require.NoError(t, err)
	require.Zero(t, res.ReasonCode)
	_, err = cm.Publish(ctx, &paho.Publish{Topic: "fleet/eu-west/dev-2/telemetry", QoS: 1, Payload: []byte("forged")})
	require.Error(t, err, "PUBACK 0x87 over websocket too")
	require.NoError(t, cm.Disconnect(ctx))
	<-cm.Done()
	_ = b
}

func TestReloadCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials.txt")
	_, err := auth.AddUser(path, "dev-1", auth.RoleDevice, password("dev-1"), auth.MinCost)
	require.NoError(t, err)
	b, err := broker.New(broker.Config{Addr: "127.0.0.1:0", Auth: broker.AuthConfig{CredentialsFile: path}})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { b.Close() })
	dialRaw(t, b, "dev-1", "dev-1")

	refused := func(user string) bool {
		c, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
		require.NoError(t, err)
		defer c.Close()
		r := newRaw(t, c, 5)
		r.write(connectPacket(user, user))
		return r.read().ReasonCode == packets.ErrBadUsernameOrPassword.Code
	}
	require.True(t, refused("dev-3"), "not in the file yet")
	_, err = auth.AddUser(path, "dev-3", auth.RoleDevice, password("dev-3"), auth.MinCost)
	require.NoError(t, err)
	require.True(t, refused("dev-3"), "not reloaded yet")
	n, err := b.ReloadCredentials()
	require.NoError(t, err)
	require.Equal(t, 2, n)
	dialRaw(t, b, "dev-3", "dev-3")

	require.NoError(t, os.WriteFile(path, []byte("garbage\n"), 0o600))
	_, err = b.ReloadCredentials()
	require.ErrorIs(t, err, auth.ErrFormat)
	dialRaw(t, b, "dev-3", "dev-3") // the old users stay
}

func TestTopicAliasUnderACL(t *testing.T) {
	b := startSecure(t, nil)
	svc := dialRaw(t, b, "svc", "svc-alias")
	var buf bytes.Buffer
	require.NoError(t, (&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "fleet/+/+/telemetry"}}}).SubscribeEncode(&buf))
	svc.write(buf.Bytes())
	require.Equal(t, packets.Suback, svc.read().FixedHeader.Type)

	dev := dialRaw(t, b, "dev-1", "dev-1")
	aliased := func(topic string, alias, id uint16, payload string) []byte {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5,
			TopicName: topic, PacketID: id, Payload: []byte(payload),
			Properties: packets.Properties{TopicAlias: alias, TopicAliasFlag: true}}
		var buf bytes.Buffer
		require.NoError(t, pk.PublishEncode(&buf))
		return buf.Bytes()
	}
	for i, step := range []struct {
		topic   string
		alias   uint16
		payload string
		code    byte
	}{
		{"fleet/eu-west/dev-1/telemetry", 1, "sets alias 1", 0},
		{"", 1, "through alias 1", 0},
		{"fleet/eu-west/dev-2/telemetry", 2, "forged, alias 2 never set", packets.ErrNotAuthorized.Code},
		{"", 2, "alias 2 names nothing", packets.ErrNotAuthorized.Code},
	} {
		dev.write(aliased(step.topic, step.alias, uint16(i+1), step.payload))
		ack := dev.read()
		require.Equal(t, packets.Puback, ack.FixedHeader.Type)
		require.Equal(t, step.code, ack.ReasonCode, step.payload)
		if step.code == 0 {
			got := svc.read()
			require.Equal(t, "fleet/eu-west/dev-1/telemetry", got.TopicName)
			require.Equal(t, step.payload, string(got.Payload))
		}
	}
}

// A device's persistent session keeps receiving its commands while it is
// offline: the ACL, which mochi checks on every delivery, still knows who
// the session belongs to.
func TestOfflineSessionReceivesCommands(t *testing.T) {
	b := startSecure(t, nil)
	persistent := func(clean bool) []byte {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
			Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: clean, Keepalive: 30, ClientIdentifier: "dev-1",
				UsernameFlag: true, Username: []byte("dev-1"), PasswordFlag: true, Password: []byte(password("dev-1"))},
			Properties: packets.Properties{SessionExpiryInterval: 3600, SessionExpiryIntervalFlag: true}}
		var buf bytes.Buffer
		require.NoError(t, pk.ConnectEncode(&buf))
		return buf.Bytes()
	}
	dial := func(clean bool) (*raw, packets.Packet) {
		c, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		r := newRaw(t, c, 5)
		r.write(persistent(clean))
		ack := r.read()
		require.Zero(t, ack.ReasonCode)
		return r, ack
	}
	dev, _ := dial(true)
	var buf bytes.Buffer
	require.NoError(t, (&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "fleet/+/dev-1/cmd", Qos: 1}}}).SubscribeEncode(&buf))
	dev.write(buf.Bytes())
	require.Equal(t, []byte{1}, dev.read().ReasonCodes)
	buf.Reset()
	require.NoError(t, (&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: 5}).DisconnectEncode(&buf))
	dev.write(buf.Bytes())
	dev.closedWith()
	eventually(t, "dev-1 offline", func() bool { return b.Clients() == 0 })

	svc := dialRaw(t, b, "svc", "svc-cmd")
	svc.write(publishPacket("fleet/eu-west/dev-1/cmd", 1, []byte("retry")))
	require.Zero(t, svc.read().ReasonCode)

	dev, ack := dial(false)
	require.True(t, ack.SessionPresent)
	got := dev.read()
	require.Equal(t, packets.Publish, got.FixedHeader.Type)
	require.Equal(t, "fleet/eu-west/dev-1/cmd", got.TopicName)
	require.Equal(t, "retry", string(got.Payload))
}
