package chdb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeNPM writes a script that behaves like `npm pack` for one package,
// producing a tarball whose library holds content.
func fakeNPM(t *testing.T, content []byte) string {
	t.Helper()
	dir := t.TempDir()
	var tgz bytes.Buffer
	gz := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gz)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "package/libchdb.so", Mode: 0o755, Size: int64(len(content))}))
	_, err := tw.Write(content)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	tarball := filepath.Join(dir, "pkg.tgz")
	require.NoError(t, os.WriteFile(tarball, tgz.Bytes(), 0o644))
	script := filepath.Join(dir, "npm")
	// npm pack SPEC --pack-destination DIR --silent
	body := "#!/bin/sh\ncp " + tarball + " \"$4/chdb-lib.tgz\"\n"
	require.NoError(t, os.WriteFile(script, []byte(body), 0o755))
	return script
}

func TestInstall(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the pinned library is linux/amd64")
	}
	good := []byte("pretend this is libchdb")
	sum := sha256.Sum256(good)
	orig := packages["linux/amd64"]
	t.Cleanup(func() { packages["linux/amd64"] = orig })

	tests := []struct {
		name    string
		pinned  string
		content []byte
		wantErr string
	}{
		{name: "checksum matches", pinned: hex.EncodeToString(sum[:]), content: good},
		{name: "checksum differs", pinned: orig.sha256, content: good, wantErr: "refusing to install"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := orig
			p.sha256 = tt.pinned
			packages["linux/amd64"] = p
			dir := t.TempDir()
			var progress bytes.Buffer
			opts := InstallOptions{Dir: dir, NPM: fakeNPM(t, tt.content), Progress: &progress}
			got, err := Install(context.Background(), opts)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				_, statErr := os.Stat(filepath.Join(dir, "libchdb.so"))
				require.True(t, os.IsNotExist(statErr), "a rejected library must not be left in place")
				return
			}
			require.NoError(t, err)
			b, err := os.ReadFile(got)
			require.NoError(t, err)
			require.Equal(t, tt.content, b)

			// A second run is a no-op: it must not even call npm.
			opts.NPM = "/nonexistent/npm"
			again, err := Install(context.Background(), opts)
			require.NoError(t, err)
			require.Equal(t, got, again)
			require.Contains(t, progress.String(), "already installed")
		})
	}
}

func TestInstallWithoutNPM(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the pinned library is linux/amd64")
	}
	_, err := Install(context.Background(), InstallOptions{Dir: t.TempDir(), NPM: "/nonexistent/npm"})
	require.ErrorContains(t, err, "is npm installed")
}

func TestLocateNamesInstallCommand(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	t.Setenv(EnvLibPath, "")
	if _, err := os.Stat("/usr/local/lib/libchdb.so"); err == nil {
		t.Skip("a system-wide libchdb is installed")
	}
	_, err := Locate()
	require.ErrorIs(t, err, ErrNotInstalled)
	require.ErrorContains(t, err, InstallHint)

	t.Setenv(EnvLibPath, "/nonexistent/libchdb.so")
	_, err = Locate()
	require.ErrorIs(t, err, ErrNotInstalled)
	require.ErrorContains(t, err, EnvLibPath)
}

func TestLoadMissingLibrary(t *testing.T) {
	// Load is once per process, so this runs only where nothing loaded yet.
	err := Load("/nonexistent/libchdb.so")
	require.ErrorIs(t, err, ErrNotInstalled)
}
