package simulator

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// Credential is an MQTT user name and password.
type Credential struct {
	// Username is the MQTT user name.
	Username string
	// Password is the MQTT password.
	Password string
}

// Credentials maps device IDs to their MQTT credentials. The key "*" holds
// the credential of every device not listed.
type Credentials map[string]Credential

// For returns the credential of the device id: its own, else the shared
// one, else false.
func (c Credentials) For(id string) (Credential, bool) {
	if cr, ok := c[id]; ok {
		return cr, true
	}
	cr, ok := c["*"]
	return cr, ok
}

// ReadCredentials parses a fleet credentials file. The format is one
// credential per line, three comma-separated fields:
//
//	# comments and blank lines are ignored
//	dev-00000-fcfd52,device-user-0,s3cret
//	*,fleet,shared-secret
//
// The first field is a device ID, or "*" for every device not listed. The
// password is everything after the second comma, so it may contain commas;
// surrounding spaces of the ID and user name are trimmed, the password is
// taken as is. A device ID listed twice is an error. With Config.Conns, each
// connection uses the "*" credential, or that of its first device.
func ReadCredentials(r io.Reader) (Credentials, error) {
	out := make(Credentials)
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimRight(sc.Text(), "\r")
		if t := strings.TrimSpace(text); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		id, rest, ok1 := strings.Cut(text, ",")
		user, pass, ok2 := strings.Cut(rest, ",")
		id, user = strings.TrimSpace(id), strings.TrimSpace(user)
		switch {
		case !ok1 || !ok2:
			return nil, fmt.Errorf("line %d: want device-id,username,password", line)
		case id == "" || user == "":
			return nil, fmt.Errorf("line %d: empty device ID or user name", line)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("line %d: device %q listed twice", line, id)
		}
		out[id] = Credential{Username: user, Password: pass}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	return out, nil
}

// credFor returns the credential of device id: its own from the file,
// else Config.DeviceCredential's, else the shared one.
func (f *Fleet) credFor(id string) (Credential, bool) {
	if cr, ok := f.creds[id]; ok {
		return cr, true
	}
	if f.cfg.DeviceCredential != nil {
		if cr, ok := f.cfg.DeviceCredential(id); ok {
			return cr, true
		}
	}
	return f.creds.For(id)
}

// loadCredentials returns the fleet's credentials from Config.
func (c *Config) loadCredentials() (Credentials, error) {
	creds := make(Credentials)
	if c.CredentialsFile != "" {
		f, err := os.Open(c.CredentialsFile)
		if err != nil {
			return nil, &ConfigError{Field: "CredentialsFile", Reason: err.Error()}
		}
		defer f.Close()
		if creds, err = ReadCredentials(f); err != nil {
			return nil, &ConfigError{Field: "CredentialsFile", Reason: fmt.Sprintf("%s: %v", c.CredentialsFile, err)}
		}
	}
	if _, ok := creds["*"]; !ok && c.Username != "" {
		creds["*"] = Credential{Username: c.Username, Password: c.Password}
	}
	return creds, nil
}
