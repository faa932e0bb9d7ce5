package broker_test

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
)

func TestDeviceCertificates(t *testing.T) {
	// Mutual TLS (issue 14, deliver 5): a device with a valid certificate
	// connects as the device its CN names; another device's certificate,
	// an expired, untrusted or revoked one, or none, is refused with its
	// reason code. Driven by Debian's mosquitto_pub (--cert --key).
	dir := t.TempDir()
	ca := newTestCA(t, dir, "device-ca")
	serverCert, serverKey := ca.issue(t, "localhost", x509.ExtKeyUsageServerAuth, time.Now().Add(time.Hour))
	denyFile := filepath.Join(dir, "revoked.txt")
	require.NoError(t, os.WriteFile(denyFile, []byte("# revoked device certificates\n"), 0o600))
	b := startSecure(t, func(c *broker.Config) {
		c.TLS = broker.TLSConfig{Addr: "127.0.0.1:0", CertFile: serverCert, KeyFile: serverKey,
			ClientCAFile: ca.file, DenyFile: denyFile}
	})
	dev1Cert, dev1Key := ca.issue(t, "dev-1", x509.ExtKeyUsageClientAuth, time.Now().Add(time.Hour))
	dev2Cert, dev2Key := ca.issue(t, "dev-2", x509.ExtKeyUsageClientAuth, time.Now().Add(time.Hour))
	expiredCert, expiredKey := ca.issue(t, "dev-1", x509.ExtKeyUsageClientAuth, time.Now().Add(-time.Minute))
	revokedCert, revokedKey := ca.issue(t, "dev-1", x509.ExtKeyUsageClientAuth, time.Now().Add(time.Hour))
	revokedSerial := ca.serial
	other := newTestCA(t, dir, "other-ca")
	foreignCert, foreignKey := other.issue(t, "dev-1", x509.ExtKeyUsageClientAuth, time.Now().Add(time.Hour))

	host, port, _ := net.SplitHostPort(b.TLSAddr())
	pubWith := func(t *testing.T, id, cert, key string) (int, string) {
		t.Helper()
		args := []string{"-V", "mqttv5", "-h", host, "-p", port, "--cafile", ca.file, "-i", id,
			"-q", "1", "-t", "fleet/eu-west/" + id + "/telemetry", "-m", "over mtls"}
		if cert != "" {
			args = append(args, "--cert", cert, "--key", key)
		}
		out, err := exec.Command(mosquitto(t, "mosquitto_pub"), args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		require.NoError(t, err, string(out))
		return 0, string(out)
	}
	for _, tt := range []struct {
		name, id, cert, key string
		code                int
		reason              string
	}{
		{"its own certificate", "dev-1", dev1Cert, dev1Key, 0, ""},
		{"another device's certificate", "dev-1", dev2Cert, dev2Key, 0x85, auth.ReasonDeviceClientID},
		{"an expired certificate", "dev-1", expiredCert, expiredKey, 0x86, auth.ReasonBadCertificate},
		{"a certificate of another CA", "dev-1", foreignCert, foreignKey, 0x86, auth.ReasonBadCertificate},
		{"no certificate", "dev-1", "", "", 0x87, auth.ReasonNoCertificate},
		{"a certificate revoked later", "dev-1", revokedCert, revokedKey, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := b.Rejected()[tt.reason]
			code, out := pubWith(t, tt.id, tt.cert, tt.key)
			require.Equal(t, tt.code, code, out)
			if tt.reason != "" {
				require.Equal(t, before+1, b.Rejected()[tt.reason])
			}
		})
	}

	t.Run("revoked, the deny list re-read on SIGHUP", func(t *testing.T) {
		require.NoError(t, os.WriteFile(denyFile, []byte(fmt.Sprintf("%x # dev-1's lost laptop\n", revokedSerial)), 0o600))
		_, err := b.ReloadCredentials() // what SIGHUP calls
		require.NoError(t, err)
		code, out := pubWith(t, "dev-1", revokedCert, revokedKey)
		require.Equal(t, 0x8a, code, out)
		require.Equal(t, uint64(1), b.Rejected()[auth.ReasonRevoked])
		code, out = pubWith(t, "dev-1", dev1Cert, dev1Key)
		require.Zero(t, code, "the device's other certificate still works: %s", out)
	})
}
