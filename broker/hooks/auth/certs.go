package auth

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Reasons a device certificate is refused, as passed to Options.OnReject.
const (
	ReasonNoCertificate  = "certificate_missing" // no client certificate on the mutual-TLS listener: 0x87
	ReasonBadCertificate = "certificate_invalid" // not issued by the CA bundle, expired or not yet valid: 0x86
	ReasonRevoked        = "certificate_revoked" // its serial number is in the deny list: 0x8A
)

// Where a device certificate's identity is taken from (CertsConfig.Identity).
const (
	IdentityCN  = "cn"  // the subject's Common Name (AWS IoT's convention)
	IdentityDNS = "dns" // the first DNS Subject Alternative Name
)

// ErrCerts means the certificate authentication's files are unusable.
var ErrCerts = errors.New("auth: device certificates")

// CertsConfig says how devices authenticate by certificate.
type CertsConfig struct {
	// CAFile is a PEM bundle of the CAs that issue device certificates.
	// Required.
	CAFile string
	// Identity is where a certificate names its device: IdentityCN
	// (default) or IdentityDNS. The client ID must be that name.
	Identity string
	// DenyFile, when set, lists revoked certificates, one serial number a
	// line in hex (as `openssl x509 -serial` prints it, with or without
	// colons); '#' starts a comment. Re-read by Certs.Reload (SIGHUP).
	DenyFile string
}

// Certs verifies the client certificates presented on a mutual-TLS
// listener, so a device proves its identity with an X.509 certificate
// whose subject is its client ID, as AWS IoT Core and Azure IoT Hub do.
// The listener only requests a certificate (tls.RequestClientCert); Certs
// verifies it at CONNECT, so every refusal carries an MQTT reason code
// where a failed handshake would leave the device with a TLS alert.
type Certs struct {
	cfg    CertsConfig
	roots  *x509.CertPool
	denied atomic.Pointer[map[string]bool]
	// Now is the clock certificates are checked against. Default time.Now.
	Now func() time.Time
}

// LoadCerts reads cfg's CA bundle and deny list.
func LoadCerts(cfg CertsConfig) (*Certs, error) {
	if cfg.Identity == "" {
		cfg.Identity = IdentityCN
	}
	if cfg.Identity != IdentityCN && cfg.Identity != IdentityDNS {
		return nil, fmt.Errorf("%w: identity %q: want %q or %q", ErrCerts, cfg.Identity, IdentityCN, IdentityDNS)
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%w: read the CA bundle: %w", ErrCerts, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrCerts, cfg.CAFile)
	}
	c := &Certs{cfg: cfg, roots: roots, Now: time.Now}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the deny list again; on error the old one stays.
func (c *Certs) Reload() error {
	denied := map[string]bool{}
	if c.cfg.DenyFile != "" {
		b, err := os.ReadFile(c.cfg.DenyFile)
		if err != nil {
			return fmt.Errorf("%w: read the deny list: %w", ErrCerts, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			if s := normalSerial(line); s != "" {
				denied[s] = true
			}
		}
	}
	c.denied.Store(&denied)
	return nil
}

// Denied returns how many serial numbers the deny list holds.
func (c *Certs) Denied() int { return len(*c.denied.Load()) }

// normalSerial is a serial number in lower-case hex without colons or
// leading zeros, so the deny list matches however it was written.
func normalSerial(s string) string {
	s = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	s = strings.TrimPrefix(s, "serial=")
	if t := strings.TrimLeft(s, "0"); t != "" || s == "" {
		return t
	}
	return "0"
}

// Verify checks the certificate chain of a connection and returns the
// device name it certifies, or the reason code and reason it is refused.
func (c *Certs) Verify(state tls.ConnectionState) (string, packets.Code, string) {
	if len(state.PeerCertificates) == 0 {
		return "", packets.ErrNotAuthorized, ReasonNoCertificate
	}
	leaf := state.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, ic := range state.PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.roots, Intermediates: inter, CurrentTime: c.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", packets.ErrBadUsernameOrPassword, ReasonBadCertificate
	}
	if (*c.denied.Load())[normalSerial(leaf.SerialNumber.Text(16))] {
		return "", packets.ErrBanned, ReasonRevoked
	}
	name := leaf.Subject.CommonName
	if c.cfg.Identity == IdentityDNS {
		name = ""
		if len(leaf.DNSNames) > 0 {
			name = leaf.DNSNames[0]
		}
	}
	if !ValidName(name) {
		return "", packets.ErrBadUsernameOrPassword, ReasonBadCertificate
	}
	return name, packets.CodeSuccess, ""
}

// tlsConn is a connection that carries a TLS state (*tls.Conn).
type tlsConn interface{ ConnectionState() tls.ConnectionState }
