package proc

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// WriteAddrFile writes addrs (a name, such as "mqtt" or "metrics", to a
// host:port) to path, one "name address" line each, atomically: the file
// appears complete or not at all, so a parent polling for it never reads
// half of it. Sentinel's services write one for --addr-file once ready: it
// is how a parent learns the ports a child picked, instead of reading its
// log. Empty addresses are left out.
func WriteAddrFile(path string, addrs map[string]string) error {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(addrs)) {
		if a := addrs[name]; a != "" {
			if strings.ContainsAny(name, " \n") || strings.ContainsAny(a, " \n") {
				return fmt.Errorf("proc: address file %s: %q %q has a space or newline", path, name, a)
			}
			fmt.Fprintf(&b, "%s %s\n", name, a)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("proc: write address file: %w", err)
	}
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("proc: write address file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("proc: write address file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("proc: write address file: %w", err)
	}
	return nil
}

// ReadAddrFile reads a file WriteAddrFile wrote. A missing file is an
// error satisfying errors.Is(err, os.ErrNotExist).
func ReadAddrFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	addrs := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		name, addr, ok := strings.Cut(sc.Text(), " ")
		if !ok || name == "" || addr == "" {
			return nil, fmt.Errorf("proc: address file %s:%d: %q is not \"name address\"", path, n, sc.Text())
		}
		addrs[name] = addr
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("proc: read address file %s: %w", path, err)
	}
	return addrs, nil
}
