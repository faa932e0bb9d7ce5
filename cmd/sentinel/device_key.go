package main

import (
	"bytes"
	"fmt"
	"os"
)

// readDeviceKey reads a fleet's device key: the file's content without
// surrounding white space, at least 16 bytes (e.g. `head -c 32 /dev/urandom
// | base64 > fleet.key`). The broker admits any device whose password is
// auth.DevicePassword(key, its ID); the simulator derives its devices'
// passwords the same way, so a simulated fleet of any size gets one
// identity per device without a credentials file line each.
func readDeviceKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	key := bytes.TrimSpace(b)
	if len(key) < 16 {
		return nil, fmt.Errorf("device key %s: %d bytes, want at least 16", path, len(key))
	}
	return key, nil
}
