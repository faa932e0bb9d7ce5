package chdb

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// LibVersion is the pinned libchdb release, the version of the npm package
// that ships it.
const LibVersion = "26.7.3-stable.1"

// EnvLibPath names the environment variable that overrides where libchdb is
// looked for. It is chdb's own convention, honoured here too.
const EnvLibPath = "CHDB_LIB_PATH"

// InstallHint is the command that installs the library, for error messages.
const InstallHint = "sentinel setup"

// pkg is one platform's npm package and the SHA-256 of the libchdb inside it.
type pkg struct {
	name   string // npm package
	file   string // library file inside the package
	sha256 string // of the library file
}

// packages lists the platforms with a pinned, checksummed library. Others
// can still use the engine by pointing CHDB_LIB_PATH at a library.
var packages = map[string]pkg{
	"linux/amd64": {
		name:   "@chdb/lib-linux-x64-gnu",
		file:   "libchdb.so",
		sha256: "36ad4e999882821ef13cf2d0f52c93f48e6ee1b4498b35a201c23ce4b8d15bf5",
	},
}

// ErrUnsupportedPlatform means no library is pinned for this OS and architecture.
var ErrUnsupportedPlatform = errors.New("chdb: no pinned libchdb for this platform")

// CacheDir returns the per-user directory the library is installed in,
// <user cache dir>/sentinel/libchdb/<version>.
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("chdb: find the user cache directory: %w", err)
	}
	return filepath.Join(base, "sentinel", "libchdb", LibVersion), nil
}

// Locate returns the path of the library to load: $CHDB_LIB_PATH when set,
// else the installed copy in CacheDir, else /usr/local/lib/libchdb.so. It
// returns an error wrapping ErrNotInstalled, naming InstallHint, when none
// exists.
func Locate() (string, error) {
	if p := os.Getenv(EnvLibPath); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrNotInstalled, EnvLibPath, p, err)
		}
		return p, nil
	}
	var tried []string
	if dir, err := CacheDir(); err == nil {
		p := filepath.Join(dir, libFile())
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	p := "/usr/local/lib/" + libFile()
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	tried = append(tried, p)
	return "", fmt.Errorf("%w (looked in %s); run `%s` to install it, or set %s",
		ErrNotInstalled, strings.Join(tried, ", "), InstallHint, EnvLibPath)
}

func libFile() string {
	if runtime.GOOS == "darwin" {
		return "libchdb.dylib"
	}
	return "libchdb.so"
}

// InstallOptions configures Install.
type InstallOptions struct {
	// Dir is where the library goes. Default: CacheDir().
	Dir string
	// NPM is the npm client used to fetch the package from the configured
	// registry. Default: "npm" on $PATH.
	NPM string
	// Progress receives one line per step. Default: discarded.
	Progress io.Writer
}

// Install puts the pinned libchdb for this platform in opts.Dir and returns
// its path. It fetches the npm package with `npm pack` (so the machine's npm
// registry configuration applies), extracts the library, checks its SHA-256
// against the pinned value and moves it into place atomically. It is a no-op
// when a verified copy is already there.
func Install(ctx context.Context, opts InstallOptions) (string, error) {
	key := runtime.GOOS + "/" + runtime.GOARCH
	p, ok := packages[key]
	if !ok {
		return "", fmt.Errorf("%w (%s): build or download libchdb %s yourself and set %s", ErrUnsupportedPlatform, key, LibVersion, EnvLibPath)
	}
	if opts.Dir == "" {
		d, err := CacheDir()
		if err != nil {
			return "", err
		}
		opts.Dir = d
	}
	if opts.NPM == "" {
		opts.NPM = "npm"
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	target := filepath.Join(opts.Dir, p.file)
	stamp := target + ".sha256"
	if b, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(b)) == p.sha256 {
		if _, err := os.Stat(target); err == nil {
			fmt.Fprintf(progress, "libchdb %s already installed at %s\n", LibVersion, target)
			return target, nil
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return "", fmt.Errorf("chdb: create %s: %w", opts.Dir, err)
	}
	tmp, err := os.MkdirTemp(opts.Dir, ".install-")
	if err != nil {
		return "", fmt.Errorf("chdb: create a temporary directory in %s: %w", opts.Dir, err)
	}
	defer os.RemoveAll(tmp)

	spec := p.name + "@" + LibVersion
	fmt.Fprintf(progress, "fetching %s with npm pack (about 180 MB)...\n", spec)
	cmd := exec.CommandContext(ctx, opts.NPM, "pack", spec, "--pack-destination", tmp, "--silent")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("chdb: npm pack %s failed (is npm installed and its registry reachable?): %w\n%s", spec, err, out)
	}
	tgz, err := filepath.Glob(filepath.Join(tmp, "*.tgz"))
	if err != nil || len(tgz) != 1 {
		return "", fmt.Errorf("chdb: npm pack %s left no single tarball in %s", spec, tmp)
	}
	fmt.Fprintf(progress, "extracting %s and checking its SHA-256...\n", p.file)
	extracted := filepath.Join(tmp, p.file)
	sum, err := extract(tgz[0], "package/"+p.file, extracted)
	if err != nil {
		return "", err
	}
	if sum != p.sha256 {
		return "", fmt.Errorf("chdb: %s from %s has SHA-256 %s, pinned %s: refusing to install it", p.file, spec, sum, p.sha256)
	}
	if err := os.Rename(extracted, target); err != nil {
		return "", fmt.Errorf("chdb: move the library into %s: %w", opts.Dir, err)
	}
	if err := os.WriteFile(stamp, []byte(p.sha256+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("chdb: write %s: %w", stamp, err)
	}
	fmt.Fprintf(progress, "installed libchdb %s at %s\n", LibVersion, target)
	return target, nil
}

// extract copies the member name of the gzipped tarball src to dst and
// returns the hex SHA-256 of what it wrote.
func extract(src, name, dst string) (string, error) {
	f, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("chdb: open %s: %w", src, err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return "", fmt.Errorf("chdb: read %s: %w", src, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return "", fmt.Errorf("chdb: %s has no %s", src, name)
		}
		if err != nil {
			return "", fmt.Errorf("chdb: read %s: %w", src, err)
		}
		if h.Name != name {
			continue
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			return "", fmt.Errorf("chdb: create %s: %w", dst, err)
		}
		hash := sha256.New()
		if _, err := io.Copy(io.MultiWriter(out, hash), tr); err != nil {
			out.Close()
			return "", fmt.Errorf("chdb: extract %s: %w", name, err)
		}
		if err := out.Close(); err != nil {
			return "", fmt.Errorf("chdb: write %s: %w", dst, err)
		}
		return hex.EncodeToString(hash.Sum(nil)), nil
	}
}
