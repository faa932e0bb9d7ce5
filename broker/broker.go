// Package broker is Sentinel's embedded MQTT v5 broker: mochi-mqtt with the
// listeners, hooks and limits Sentinel needs. Devices and services reach it
// like any other MQTT v5 broker, so production can swap in a managed one.
//
// This first version listens on plain TCP with open access; device identity
// and ACLs come as mochi hooks in broker/hooks/.
package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// ErrStarted means Start was called twice.
var ErrStarted = errors.New("broker: already started")

// Config configures a Broker. The zero value works on a laptop.
type Config struct {
	// Addr is the TCP address to listen on. Default "127.0.0.1:1883";
	// port 0 picks a free port (see Broker.Addr).
	Addr string
	// MaxPacketSize is the largest MQTT packet accepted, in bytes. Default 128 KiB.
	MaxPacketSize uint32
	// Logger receives broker events. Default: discarded.
	Logger *slog.Logger
}

func (c *Config) ensureDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:1883"
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = 128 << 10
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Broker is an embedded MQTT v5 broker.
type Broker struct {
	cfg    Config
	server *mqtt.Server
	ln     net.Listener

	mu      sync.Mutex
	started bool
	closed  bool
}

// New builds a broker; Start opens its listener.
func New(cfg Config) (*Broker, error) {
	cfg.ensureDefaults()
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = cfg.MaxPacketSize
	// mochi drops QoS 1 messages for a session beyond this many unacknowledged
	// ones (default 8192). An ingestor that falls behind, or a warehouse
	// outage, must queue instead: take the protocol's maximum.
	caps.MaximumInflight = 65535
	s := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       cfg.Logger.With("component", "mochi"),
		InlineClient: false,
	})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("broker: add auth hook: %w", err)
	}
	return &Broker{cfg: cfg, server: s}, nil
}

// Start listens on Config.Addr and serves clients in the background until
// Close.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return ErrStarted
	}
	ln, err := net.Listen("tcp", b.cfg.Addr)
	if err != nil {
		return fmt.Errorf("broker: listen on %s (is another broker running there?): %w", b.cfg.Addr, err)
	}
	if err := b.server.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		ln.Close()
		return fmt.Errorf("broker: add listener: %w", err)
	}
	if err := b.server.Serve(); err != nil {
		ln.Close()
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.ln = ln
	b.started = true
	b.cfg.Logger.Info("MQTT broker listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the address the broker listens on, once started.
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln == nil {
		return ""
	}
	return b.ln.Addr().String()
}

// URL returns the broker's address as an MQTT URL, tcp://host:port.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Run starts the broker, serves until ctx ends, then closes it.
func (b *Broker) Run(ctx context.Context) error {
	if err := b.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return b.Close()
}

// Close disconnects every client and stops the listener. It is safe to call
// more than once.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || !b.started {
		b.closed = true
		return nil
	}
	b.closed = true
	if err := b.server.Close(); err != nil {
		return fmt.Errorf("broker: close: %w", err)
	}
	return nil
}

// Clients returns the number of connected clients.
func (b *Broker) Clients() int64 {
	return atomic.LoadInt64(&b.server.Info.ClientsConnected)
}
