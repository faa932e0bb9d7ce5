package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
	"github.com/sentinel-iot/sentinel/broker/hooks/limits"
)

// brokerFlags are the flags of `sentinel broker` for identities, limits,
// listeners and metrics; each maps onto one broker.Config field.
type brokerFlags struct {
	credentials    string
	deviceKeyFile  string
	allowAnonymous bool
	tlsListen      string
	tlsCert        string
	tlsClientCA    string
	tlsIdentity    string
	tlsDenyFile    string
	tlsKey         string
	wsListen       string
	metricsListen  string
	maxPacket      uint32
	receiveMax     uint16
	maxInflight    uint16
	maxConns       int64
	sessionExpiry  time.Duration
	messageExpiry  time.Duration
	maxKeepAlive   time.Duration
	deviceRate     float64
	deviceBurst    int
}

// add defines the flags, each defaulting to the broker's own default;
// broker.New validates what they are set to.
func (f *brokerFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&f.credentials, "credentials", "", "credentials file, user:role:bcrypt-hash per line (write it with `sentinel broker adduser`; SIGHUP re-reads it)")
	fs.StringVar(&f.deviceKeyFile, "device-key-file", "", "admit as a device any client whose password is derived from this key (see `sentinel simulate --device-key-file`): a simulated fleet without a line per device")
	fs.BoolVar(&f.allowAnonymous, "allow-anonymous", false, "DEVELOPMENT ONLY: admit clients without a user name, with every right")
	fs.StringVar(&f.tlsListen, "tls-listen", "", "also serve MQTT over TLS on this address, e.g. 0.0.0.0:8883 (needs --tls-cert and --tls-key)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate (chain) of the TLS listener")
	fs.StringVar(&f.tlsClientCA, "tls-client-ca", "", "PEM bundle of the CAs issuing device certificates: the TLS listener then admits devices by certificate (mutual TLS), client ID = the certificate's name")
	fs.StringVar(&f.tlsIdentity, "tls-client-identity", broker.DefaultClientIdentity, "where a device certificate names the device: cn or dns (first DNS SAN)")
	fs.StringVar(&f.tlsDenyFile, "tls-deny-file", "", "revoked device certificates, one hex serial number a line; re-read on SIGHUP")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of the TLS listener")
	fs.StringVar(&f.wsListen, "ws-listen", "", "also serve MQTT over websocket on this address, e.g. 127.0.0.1:8083")
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "serve Prometheus /metrics on this address, e.g. 127.0.0.1:9100; empty: off")
	uintVar(fs, &f.maxPacket, "max-packet-size", broker.DefaultMaxPacketSize, fmt.Sprintf("largest MQTT packet accepted, in bytes, at most %d; a bigger one closes the connection (0: the default)", broker.MaxPacketSizeLimit))
	uintVar(fs, &f.receiveMax, "receive-maximum", broker.DefaultReceiveMaximum, "unacknowledged QoS 1/2 messages a client may send at once, at most 65535 (0: the default)")
	uintVar(fs, &f.maxInflight, "max-inflight", broker.DefaultMaxInflight, "unacknowledged QoS 1/2 messages kept in flight per session, at most 65535 (0: the default); the rest queue in its backlog (--backlog-bytes) or are refused with 0x97")
	fs.Int64Var(&f.maxConns, "max-connections", broker.DefaultMaxConnections, "connections past this many are refused (CONNACK 0x89)")
	fs.DurationVar(&f.sessionExpiry, "max-session-expiry", broker.DefaultMaxSessionExpiry, "longest a disconnected client's session is kept (at least 1s)")
	fs.DurationVar(&f.messageExpiry, "max-message-expiry", broker.DefaultMaxMessageExpiry, "longest an undelivered message is kept (at least 1s)")
	fs.DurationVar(&f.maxKeepAlive, "max-keepalive", broker.DefaultMaxKeepAlive, "largest keep alive granted; a client asking for more or for none gets this (CONNACK Server Keep Alive)")
	fs.Float64Var(&f.deviceRate, "device-rate", broker.DefaultDeviceRate.PerSecond, "messages/s each device may publish; past it (and --device-burst) it is disconnected with 0x96; 0: the default; negative: unlimited")
	fs.IntVar(&f.deviceBurst, "device-burst", broker.DefaultDeviceRate.Burst, "messages a device may publish at once above --device-rate")
}

// errNobody means the broker would admit nobody.
var errNobody = errors.New("no --credentials, --device-key-file or --allow-anonymous: nobody could connect (add users with `sentinel broker adduser`)")

// apply fills cfg from the flags.
func (f *brokerFlags) apply(cfg *broker.Config) error {
	if f.credentials == "" && f.deviceKeyFile == "" && !f.allowAnonymous {
		return errNobody
	}
	if f.deviceKeyFile != "" {
		key, err := readDeviceKey(f.deviceKeyFile)
		if err != nil {
			return err
		}
		cfg.Auth.DeviceKey = key
	}
	cfg.Auth.CredentialsFile = f.credentials
	cfg.Auth.AllowAnonymous = f.allowAnonymous
	cfg.TLS = broker.TLSConfig{Addr: f.tlsListen, CertFile: f.tlsCert, KeyFile: f.tlsKey,
		ClientCAFile: f.tlsClientCA, ClientIdentity: f.tlsIdentity, DenyFile: f.tlsDenyFile}
	cfg.WebsocketAddr = f.wsListen
	cfg.MaxPacketSize = f.maxPacket
	cfg.Limits = broker.LimitsConfig{
		ReceiveMaximum: f.receiveMax, MaxInflight: f.maxInflight, MaxConnections: f.maxConns,
		MaxSessionExpiry: f.sessionExpiry, MaxMessageExpiry: f.messageExpiry, MaxKeepAlive: f.maxKeepAlive,
		DeviceRate: limits.Rate{PerSecond: f.deviceRate, Burst: f.deviceBurst},
	}
	return nil
}

// serve serves the broker's metrics when asked, and says where in
// listening; stopped closes when the server has stopped after ctx ends.
func (f *brokerFlags) serve(ctx context.Context, b *broker.Broker, out io.Writer) (listening string, stopped <-chan struct{}, err error) {
	if f.metricsListen == "" {
		done := make(chan struct{})
		close(done)
		return "", done, nil
	}
	return serveMetrics(ctx, f.metricsListen, b.Handler(), out)
}

// reloadOnHangup re-reads the credentials file on every SIGHUP until ctx
// ends; stopped closes when it has.
func (f *brokerFlags) reloadOnHangup(ctx context.Context, b *broker.Broker, log *slog.Logger) (stopped <-chan struct{}) {
	if f.credentials == "" {
		done := make(chan struct{})
		close(done)
		return done
	}
	return reloadOnHangup(ctx, f.credentials, b.ReloadCredentials, log)
}

// cmdBrokerAddUser adds a user to a credentials file.
func cmdBrokerAddUser(_ context.Context, args []string, out io.Writer) error {
	fs := newFlags("broker adduser", "[flags] USERNAME")
	file := fs.String("credentials", "credentials.txt", "credentials file to add the user to (created, mode 0600, if missing)")
	role := fs.String("role", string(auth.RoleDevice), "role: device (client ID must equal the user name), gateway, service or ops")
	passwordStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input; default: generate one and print it")
	cost := fs.Int("cost", 10, "bcrypt cost (4-31); each step doubles the time a login takes")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	name := fs.Arg(0)
	password := ""
	if *passwordStdin {
		line, err := readLine(os.Stdin)
		if err != nil {
			return fmt.Errorf("read password from stdin: %w", err)
		}
		if line == "" {
			return fmt.Errorf("read password from stdin: empty")
		}
		password = line
	}
	pw, err := auth.AddUser(*file, name, auth.Role(*role), password, *cost)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %s (%s)\n", *file, name, *role)
	if !*passwordStdin {
		fmt.Fprintf(out, "password: %s\n", pw)
	}
	return nil
}

func readLine(r io.Reader) (string, error) {
	var sb strings.Builder
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			sb.WriteByte(b[0])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return strings.TrimRight(sb.String(), "\r"), nil
}
