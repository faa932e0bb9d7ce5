package auth

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNormalSerial(t *testing.T) {
	// The deny list matches a serial however it was written: openssl's
	// `x509 -serial` (serial=0A1B), colons (0a:1b), or Go's Text(16) (a1b).
	for in, want := range map[string]string{
		"serial=0A1B": "a1b", "0a:1b": "a1b", " a1b ": "a1b", "00": "0", "0": "0", "": "",
	} {
		require.Equal(t, want, normalSerial(in), "%q", in)
	}
}

func TestLoadCertsRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	for name, cfg := range map[string]CertsConfig{
		"missing CA file": {CAFile: filepath.Join(dir, "none.pem")},
		"no PEM in it":    {CAFile: notPEM},
		"bad identity":    {CAFile: notPEM, Identity: "ou"},
	} {
		_, err := LoadCerts(cfg)
		require.ErrorIs(t, err, ErrCerts, name)
	}
}
