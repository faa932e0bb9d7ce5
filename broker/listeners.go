package broker

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/system"

	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
)

// security is the state the broker's hooks and extra listeners share.
type security struct {
	metrics *metrics
	users   *auth.Users // the auth hook's, replaced in place on reload
	certs   *auth.Certs // device certificates on the TLS listener, or nil
	tlsLn   net.Listener
}

// tlsListenerID is the mochi listener ID of the TLS listener.
const tlsListenerID = "tls"

// counted wraps a listener so that every connection it ends with an error
// is counted by reason: the refusals mochi makes before or outside any
// hook (packet too large, the connection limit, malformed packets).
type counted struct {
	listeners.Listener
	m *metrics
}

// Serve serves the wrapped listener, counting what each connection ended with.
func (l counted) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		err := establish(id, c)
		l.m.connectionEnded(err)
		return err
	})
}

func (b *Broker) counted(l listeners.Listener) listeners.Listener {
	return counted{Listener: l, m: b.sec.metrics}
}

// addExtraListeners adds the TLS and websocket listeners the config asks for.
func (b *Broker) addExtraListeners() error {
	if t := b.cfg.TLS; t.Addr != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return fmt.Errorf("broker: load TLS certificate: %w", err)
		}
		ln, err := net.Listen("tcp", t.Addr)
		if err != nil {
			return fmt.Errorf("broker: TLS listen on %s: %w", t.Addr, err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if b.sec.certs != nil {
			// Requested, not verified in the handshake: the auth hook
			// verifies it at CONNECT, to refuse with a reason code.
			tc.ClientAuth = tls.RequestClientCert
		}
		tln := tls.NewListener(ln, tc)
		if err := b.server.AddListener(b.counted(listeners.NewNet(tlsListenerID, tln))); err != nil {
			ln.Close()
			return fmt.Errorf("broker: add TLS listener: %w", err)
		}
		b.sec.tlsLn = ln
		b.cfg.Logger.Info("MQTT broker listening (TLS)", "addr", ln.Addr().String())
	}
	if a := b.cfg.WebsocketAddr; a != "" {
		ws := listeners.NewWebsocket(listeners.Config{ID: "ws", Address: a})
		if err := b.server.AddListener(b.counted(ws)); err != nil {
			return fmt.Errorf("broker: add websocket listener on %s: %w", a, err)
		}
		b.cfg.Logger.Info("MQTT broker listening (websocket)", "addr", a)
	}
	return nil
}

// TLSAddr returns the address of the TLS listener, or "" without one.
func (b *Broker) TLSAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sec.tlsLn == nil {
		return ""
	}
	return b.sec.tlsLn.Addr().String()
}

func (b *Broker) info() *system.Info { return b.server.Info.Clone() }

// inflight counts the QoS 1 and 2 messages held in the sessions' in-flight
// stores, connected or not. It is counted at each scrape rather than read
// from mochi's Info.Inflight, which every path that stores or deletes a
// message must keep in step: upstream's did not after a restart (it went
// negative) nor when an expired session was deleted with its messages.
func (b *Broker) inflight() int64 {
	var n int64
	for _, cl := range b.server.Clients.GetAll() {
		n += int64(cl.State.Inflight.Len())
	}
	return n
}
