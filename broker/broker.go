// Package broker is Sentinel's embedded MQTT v5 broker: mochi-mqtt with the
// listeners, hooks and limits Sentinel needs. Devices and services reach it
// like any other MQTT v5 broker, so production can swap in a managed one.
//
// Who may connect and what they may do are mochi hooks in broker/hooks/:
// auth (credentials file, roles, client ID bound to the device), acl
// (templated rules, first match wins, no match denies) and limits (publish
// rate, topic checks). Zero-value Config admits nobody: tests that want an
// open broker say so with Auth.AllowAnonymous.
package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/sentinel-iot/sentinel/broker/hooks/store"
)

// ErrStarted means Start was called twice.
var ErrStarted = errors.New("broker: already started")

// Broker is an embedded MQTT v5 broker.
type Broker struct {
	cfg    Config
	server *mqtt.Server
	ln     net.Listener
	sec    security    // metrics and extra listeners (security.go, listeners.go)
	store  *store.Hook // nil without Config.Store.Dir

	mu      sync.Mutex
	started bool
	closed  bool
}

// New builds a broker; Start opens its listener.
func New(cfg Config) (*Broker, error) {
	cfg.ensureDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := mqtt.New(&mqtt.Options{
		Capabilities: cfg.capabilities(),
		Logger:       cfg.Logger.With("component", "mochi"),
		InlineClient: false,
	})
	b := &Broker{cfg: cfg, server: s}
	if err := b.addSecurityHooks(); err != nil {
		return nil, err
	}
	if cfg.Store.Dir != "" {
		b.store = new(store.Hook)
		if err := s.AddHook(b.store, &store.Options{Path: cfg.Store.Dir, Acks: cfg.Store.Acks,
			BacklogBytes: max(cfg.Store.BacklogBytes, 0)}); err != nil {
			return nil, fmt.Errorf("broker: open store: %w", err)
		}
	}
	s.Options.Backlog = newBackpressure(b.store, b.sec.metrics, cfg.Logger)
	return b, nil
}

// StoreStats returns the store's fsync and acknowledgement latencies (see
// store.Stats, shaped for Prometheus histograms), and false when the broker
// has no store.
func (b *Broker) StoreStats() (store.Stats, bool) {
	if b.store == nil {
		return store.Stats{}, false
	}
	return b.store.Stats(), true
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
	if err := b.server.AddListener(b.counted(listeners.NewNet("tcp", ln))); err != nil {
		ln.Close()
		return fmt.Errorf("broker: add listener: %w", err)
	}
	if err := b.addExtraListeners(); err != nil {
		ln.Close()
		b.closeTLS()
		return err
	}
	if err := b.server.Serve(); err != nil {
		ln.Close()
		b.closeTLS()
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
		return errors.Join(err, b.Close())
	}
	<-ctx.Done()
	return b.Close()
}

// closeTLS closes the TLS listener a failed Start opened.
func (b *Broker) closeTLS() {
	if b.sec.tlsLn != nil {
		b.sec.tlsLn.Close()
		b.sec.tlsLn = nil
	}
}

// Close disconnects every client and stops the listener. It is safe to call
// more than once, and after a Start that failed or never came: New opened
// the store already, and Close releases it (its directory lock included).
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || !b.started {
		if !b.closed && b.store != nil {
			if err := b.store.Stop(); err != nil {
				b.closed = true
				return fmt.Errorf("broker: close store: %w", err)
			}
		}
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
