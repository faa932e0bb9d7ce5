// Package ingestor moves device telemetry and status from MQTT into the
// warehouse without losing or double-counting any of it.
//
// It joins the shared subscription group $share/ingest/... so several
// ingestors split the load, decodes every message strictly with proto,
// batches rows through warehouse.Writer and acknowledges each message to the
// broker only after the batch holding it is committed. A crash therefore
// redelivers instead of losing; the warehouse's (device_id, seq) dedup
// absorbs the repeat. A payload that fails decoding, whose ts is outside
// the window around the receiver's clock, or whose row the warehouse
// refuses for its data, is stored in dead_letters with its reason and
// acknowledged, so poison never loops and never holds up other rows.
package ingestor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/sync/errgroup"

	"github.com/sentinel-iot/sentinel/mqttconn"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// The defaults of a zero Config, exported so that flags state them once.
const (
	// DefaultClientID is Config.ClientID's default.
	DefaultClientID = "sentinel-ingestor"
	// DefaultConnections is Config.Connections's default.
	DefaultConnections = 4
	// DefaultMaxTSAge bounds how old a reading may be when it arrives: a
	// device that was offline for up to a month still delivers what it
	// buffered. The window keeps every stored ts inside the columns' range
	// (DateTime64(3) covers 1900-2299) and keeps one device with a wrong
	// clock from scattering rows over years of daily partitions: 30 days
	// back and one ahead are 32 partitions, a few inserts of
	// warehouse.DefaultMaxPartitions each.
	DefaultMaxTSAge = 30 * 24 * time.Hour
	// DefaultMaxTSAhead allows for a device clock running ahead of the
	// receiver's, and for the receiver's own clock being behind.
	DefaultMaxTSAhead = time.Hour
)

// Config configures an Ingestor. The zero value works on a laptop.
type Config struct {
	// Broker is the MQTT broker URL. Default "tcp://127.0.0.1:1883".
	Broker string
	// ClientID identifies this ingestor to the broker; every instance needs
	// its own. With several Connections, connection i is ClientID-i.
	// Default "sentinel-ingestor".
	ClientID string
	// Connections is how many MQTT connections this ingestor opens into the
	// share group, each with its own persistent session and receive window.
	// paho tracks unacknowledged messages in a slice it scans per message,
	// so its cost grows with the window; several smaller windows cost less
	// than one big one, spread the decoding over more goroutines, and
	// leave room in the broker's per-session store (see ReceiveMaximum).
	// Default 4.
	Connections int
	// Username and Password authenticate to the broker, when it asks.
	Username, Password string
	// Group is the shared-subscription group. Default proto.IngestGroup.
	Group string
	// Batch configures the warehouse writers (rows, bytes, delay, backoff,
	// fault switch). Defaults: 10000 rows, 16 MiB or 250ms.
	Batch warehouse.WriterConfig
	// ReceiveMaximum is how many unacknowledged messages the broker may have
	// in flight on each connection: the window that turns a slow warehouse
	// into backpressure on the broker. The windows together should hold
	// about two batches, so one fills while the other commits. It must stay
	// well below the broker's store for one session's unacknowledged
	// messages (mochi's MaximumInflight, 65535 in Sentinel's broker), which
	// also holds what waits behind the window: what does not fit waits in
	// the session's backlog on the broker's disk, or is refused to its
	// publisher (0x97) once that is full. Default 2 * Batch.MaxRows /
	// Connections, at most 4096.
	ReceiveMaximum uint16
	// SendAcksInterval is how often paho sends the acknowledgements of
	// committed messages. Default 20ms.
	SendAcksInterval time.Duration
	// SessionExpiry is how long the broker keeps this ingestor's session
	// (subscriptions and unacknowledged messages) across a restart.
	// Default 1h.
	SessionExpiry time.Duration
	// MaxPayload is the largest payload decoded; larger ones are dead
	// letters. Default proto.DefaultMaxPayload.
	MaxPayload int
	// MaxTSAge is how far behind the receiver's clock a message's ts may
	// be; an older message is a dead letter with reason
	// proto.ReasonTSOutOfRange. Default DefaultMaxTSAge.
	MaxTSAge time.Duration
	// MaxTSAhead is how far ahead of the receiver's clock a message's ts
	// may be; a later one is a dead letter like a too old one. Default
	// DefaultMaxTSAhead.
	MaxTSAhead time.Duration
	// Logger receives events. Default: discarded.
	Logger *slog.Logger
}

func (c *Config) ensureDefaults() {
	if c.Broker == "" {
		c.Broker = "tcp://127.0.0.1:1883"
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.Group == "" {
		c.Group = proto.IngestGroup
	}
	if c.Connections <= 0 {
		c.Connections = DefaultConnections
	}
	if c.Batch.MaxRows <= 0 {
		c.Batch.MaxRows = warehouse.DefaultMaxRows
	}
	if c.ReceiveMaximum == 0 {
		c.ReceiveMaximum = uint16(min(4096, max(16, 2*c.Batch.MaxRows/c.Connections)))
	}
	if c.SendAcksInterval <= 0 {
		c.SendAcksInterval = 20 * time.Millisecond
	}
	if c.SessionExpiry <= 0 {
		c.SessionExpiry = time.Hour
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = proto.DefaultMaxPayload
	}
	if c.MaxTSAge == 0 {
		c.MaxTSAge = DefaultMaxTSAge
	}
	if c.MaxTSAhead == 0 {
		c.MaxTSAhead = DefaultMaxTSAhead
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Batch.Logger == nil {
		c.Batch.Logger = c.Logger
	}
	// Every in-flight message must fit in a writer's queue, so taking a
	// message never blocks the MQTT client for long.
	if window := int(c.ReceiveMaximum) * c.Connections; c.Batch.MaxPending < window {
		c.Batch.MaxPending = window
	}
}

// Stats are an ingestor's counters since it started.
type Stats struct {
	// Received counts messages taken from the broker.
	Received int64
	// Telemetry and Status count rows committed to their tables.
	Telemetry, Status int64
	// DeadLetters counts rejected messages stored in dead_letters, by reason.
	DeadLetters map[string]int64
	// Acked counts messages acknowledged to the broker after commit.
	Acked int64
	// AcksDropped counts commits whose ack was not sent because the
	// connection it came on had gone; the broker redelivers those.
	AcksDropped int64
	// Degraded is true while the warehouse refuses writes, or while a row
	// has waited longer than Batch.DegradedAfter for its commit (a
	// warehouse that hangs).
	Degraded bool
	// DegradedSince is when the current outage began; zero when healthy.
	DegradedSince time.Time
	// Pending is the number of rows queued and not yet committed.
	Pending int64
}

// Ingestor consumes device messages into the warehouse.
type Ingestor struct {
	cfg       Config
	db        *warehouse.DB
	server    *url.URL
	telemetry *warehouse.Writer[warehouse.TelemetryRow]
	status    *warehouse.Writer[warehouse.StatusRow]
	dead      *warehouse.Writer[warehouse.DeadLetterRow]

	metrics         *metrics
	received, acked atomic.Int64
	acksDropped     atomic.Int64
	deadMu          sync.Mutex
	deadByReason    map[string]int64
	runMu           sync.Mutex
	running         bool
	ready           chan struct{}
	readyOnce       sync.Once
}

// New validates cfg and builds an ingestor writing to db. Run connects it.
func New(cfg Config, db *warehouse.DB) (*Ingestor, error) {
	cfg.ensureDefaults()
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		return nil, fmt.Errorf("ingestor: parse broker URL %q: %w", cfg.Broker, err)
	}
	if db == nil {
		return nil, errors.New("ingestor: no warehouse")
	}
	if cfg.MaxTSAge < 0 || cfg.MaxTSAhead < 0 {
		return nil, fmt.Errorf("ingestor: timestamp window %s back, %s ahead: both must be positive", cfg.MaxTSAge, cfg.MaxTSAhead)
	}
	in := &Ingestor{
		cfg:          cfg,
		db:           db,
		server:       u,
		deadByReason: map[string]int64{},
		ready:        make(chan struct{}),
	}
	in.metrics = newMetrics(in)
	batch := cfg.Batch
	userFlush := batch.OnFlush
	batch.OnFlush = func(f warehouse.FlushInfo) {
		in.metrics.onFlush(f)
		if userFlush != nil {
			userFlush(f)
		}
	}
	in.telemetry = warehouse.NewWriter[warehouse.TelemetryRow](db, warehouse.TableTelemetry, batch)
	in.status = warehouse.NewWriter[warehouse.StatusRow](db, warehouse.TableStatusEvents, batch)
	in.dead = warehouse.NewWriter[warehouse.DeadLetterRow](db, warehouse.TableDeadLetters, batch)
	return in, nil
}

// Ready is closed once the ingestor's subscriptions are in place, so a
// caller knows messages published from then on reach it.
func (in *Ingestor) Ready() <-chan struct{} { return in.ready }

// Stats returns a snapshot of the counters.
func (in *Ingestor) Stats() Stats {
	in.deadMu.Lock()
	dead := make(map[string]int64, len(in.deadByReason))
	for k, v := range in.deadByReason {
		dead[k] = v
	}
	in.deadMu.Unlock()
	t, s, d := in.telemetry.Stats(), in.status.Stats(), in.dead.Stats()
	st := Stats{
		Received: in.received.Load(), Telemetry: t.Rows, Status: s.Rows, DeadLetters: dead,
		Acked: in.acked.Load(), AcksDropped: in.acksDropped.Load(),
		Degraded: t.Degraded || s.Degraded || d.Degraded,
		Pending:  t.Pending + s.Pending + d.Pending,
	}
	for _, w := range []warehouse.WriterStats{t, s, d} {
		if !w.DegradedSince.IsZero() && (st.DegradedSince.IsZero() || w.DegradedSince.Before(st.DegradedSince)) {
			st.DegradedSince = w.DegradedSince
		}
	}
	return st
}

// Run connects, subscribes and ingests until ctx ends. On the way out it
// stops taking messages, commits and acknowledges what it holds, and
// disconnects; it returns when every goroutine it started has exited.
func (in *Ingestor) Run(ctx context.Context) error {
	in.runMu.Lock()
	if in.running {
		in.runMu.Unlock()
		return errors.New("ingestor: Run called twice")
	}
	in.running = true
	in.runMu.Unlock()

	// The writers outlive the MQTT connection's context by the final flush.
	writerCtx, stopWriters := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriters()
	var writers errgroup.Group
	writers.Go(func() error { return in.telemetry.Run(writerCtx) })
	writers.Go(func() error { return in.status.Run(writerCtx) })
	writers.Go(func() error { return in.dead.Run(writerCtx) })

	connCtx, stopConn := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConn()
	subscribed := make(chan struct{}, in.cfg.Connections)
	conns := make([]*conn, 0, in.cfg.Connections)
	cms := make([]*autopaho.ConnectionManager, 0, in.cfg.Connections)
	for i := range in.cfg.Connections {
		c := &conn{in: in, clientID: in.cfg.ClientID, subscribed: subscribed, up: mqttconn.NewConnUp()}
		if in.cfg.Connections > 1 {
			c.clientID = fmt.Sprintf("%s-%d", in.cfg.ClientID, i)
		}
		cm, err := autopaho.NewConnection(connCtx, c.clientConfig(connCtx))
		if err != nil {
			stopConn()
			for _, cm := range cms {
				<-cm.Done()
			}
			stopWriters()
			writers.Wait()
			return fmt.Errorf("ingestor: connect to %s: %w", in.cfg.Broker, err)
		}
		cms = append(cms, cm)
		conns = append(conns, c)
	}
	// Each connection subscribes on a goroutine of its own, which Run owns:
	// OnConnectionUp only hands the connection over (paho documents it
	// must not block).
	var subscribers sync.WaitGroup
	for _, c := range conns {
		subscribers.Go(func() { c.up.Run(connCtx, c.subscribe) })
	}
	subscribers.Go(func() {
		for range in.cfg.Connections {
			select {
			case <-subscribed:
			case <-connCtx.Done():
				return
			}
		}
		in.readyOnce.Do(func() { close(in.ready) })
	})
	in.cfg.Logger.Info("ingestor started", "broker", in.cfg.Broker, "client_id", in.cfg.ClientID, "group", in.cfg.Group,
		"connections", in.cfg.Connections, "receive_maximum", in.cfg.ReceiveMaximum, "batch_rows", in.cfg.Batch.MaxRows)

	<-ctx.Done()
	// Commit what is held, let the acks go out, then leave. Anything not
	// acknowledged by then is redelivered to the next ingestor. paho drops
	// acks not yet sent when it disconnects (#327), so wait out a few of
	// its send intervals first.
	stopWriters()
	werr := writers.Wait()
	flushAcks := time.NewTimer(3 * in.cfg.SendAcksInterval)
	<-flushAcks.C
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, cm := range cms {
		_ = cm.Disconnect(dctx)
	}
	stopConn()
	for _, cm := range cms {
		<-cm.Done()
	}
	subscribers.Wait()
	in.cfg.Logger.Info("ingestor stopped", "received", in.received.Load(), "acked", in.acked.Load())
	return werr
}

// conn is one MQTT connection of the ingestor with its own session.
type conn struct {
	in       *Ingestor
	clientID string
	// gen is the connection generation: acks never cross it. It moves
	// when a connection attempt begins (its CONNECT is built) and when a
	// connection goes down. Not when one comes up: paho hands us the
	// messages a resumed session resends as soon as it has read the
	// CONNACK, before autopaho calls OnConnectionUp, and a move there
	// dropped their acks (see clientConfig).
	gen        atomic.Int64
	up         *mqttconn.ConnUp
	subscribed chan<- struct{}
	once       sync.Once
}

// dialConfig is how the ingestor's connections are wrapped: paho reads
// each packet's header and body from the socket unbuffered (two reads per
// message) and writes each PUBACK on its own, which bounds the ingestor at
// high rates; reads go through a buffer and writes are queued, so the acks
// paho flushes together leave in one write.
var dialConfig = mqttconn.DialConfig{ReadBuffer: 64 << 10, QueueWrites: true}

// subscribeTimeout bounds the wait for a SUBACK.
const subscribeTimeout = 10 * time.Second

// subscribe joins the share group on a connection that came up, unless
// the broker kept the session: it kept the subscriptions, and subscribing
// again could fail besides (mochi checks a SUBSCRIBE's packet ID against
// the IDs of the messages it has in flight to us, and a resumed session
// has thousands). It runs on the connection's own goroutine (see Run).
func (c *conn) subscribe(ctx context.Context, up mqttconn.Up) {
	in := c.in
	if !up.SessionPresent {
		filters := []string{proto.Shared(in.cfg.Group, proto.FilterTelemetry), proto.Shared(in.cfg.Group, proto.FilterStatus)}
		subs := make([]paho.SubscribeOptions, len(filters))
		for i, f := range filters {
			subs[i] = paho.SubscribeOptions{Topic: f, QoS: 1}
		}
		sctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
		defer cancel()
		if _, err := up.CM.Subscribe(sctx, &paho.Subscribe{Subscriptions: subs}); err != nil {
			if ctx.Err() == nil {
				in.cfg.Logger.Error("subscribe failed; retried at the next connection", "client_id", c.clientID, "filters", filters, "err", err)
			}
			return
		}
	}
	c.once.Do(func() { c.subscribed <- struct{}{} })
}

// clientConfig is the connection's autopaho configuration; ctx bounds what
// its handler waits for.
func (c *conn) clientConfig(ctx context.Context) autopaho.ClientConfig {
	in := c.in
	return autopaho.ClientConfig{
		AttemptConnection:             mqttconn.Dialer(in.server, dialConfig),
		ServerUrls:                    []*url.URL{in.server},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(in.cfg.SessionExpiry / time.Second),
		ConnectUsername:               in.cfg.Username,
		ConnectPassword:               []byte(in.cfg.Password),
		ReconnectBackoff:              autopaho.NewExponentialBackoff(100*time.Millisecond, 10*time.Second, 2*time.Second, 2),
		ConnectPacketBuilder: func(p *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			// A new generation before the connection exists, so every
			// message it delivers is of it. autopaho builds the CONNECT
			// of every attempt, and only once the last connection's
			// client has shut down (no handler of it runs any more).
			c.gen.Add(1)
			if p.Properties == nil {
				p.Properties = &paho.ConnectProperties{}
			}
			rm := in.cfg.ReceiveMaximum
			p.Properties.ReceiveMaximum = &rm
			return p, nil
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ack *paho.Connack) {
			// No new generation here: this connection's first messages may
			// have been handled already (see conn.gen).
			c.up.OnConnectionUp(cm, ack) // subscribe runs on the connection's goroutine
		},
		OnConnectionDown: func() bool {
			c.gen.Add(1)
			in.cfg.Logger.Warn("connection to broker lost; unacknowledged messages will be redelivered")
			return true
		},
		OnConnectError: func(err error) { in.cfg.Logger.Warn("broker connection attempt failed", "err", err) },
		ClientConfig: paho.ClientConfig{
			ClientID:                   c.clientID,
			EnableManualAcknowledgment: true,
			SendAcksInterval:           in.cfg.SendAcksInterval,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) { return c.handle(ctx, pr) },
			},
		},
	}
}

// handle takes one message: decode, queue its row, ack after commit. ctx
// is the connection's: it ends at shutdown, after the writers stopped.
func (c *conn) handle(ctx context.Context, pr paho.PublishReceived) (bool, error) {
	in := c.in
	in.received.Add(1)
	pub, client := pr.Packet, pr.Client
	gen := c.gen.Load()
	ack := func() {
		// Packet IDs are reused across connections (paho #160): an ack for a
		// message from an earlier connection would acknowledge another one.
		if c.gen.Load() != gen {
			in.acksDropped.Add(1)
			in.metrics.acksDropped.Inc()
			return
		}
		if err := client.Ack(pub); err != nil {
			in.acksDropped.Add(1)
			in.metrics.acksDropped.Inc()
			return
		}
		in.acked.Add(1)
		in.metrics.acked.Inc()
	}
	now := time.Now()
	_, msg, err := proto.Decode(pub.Topic, pub.Payload, in.cfg.MaxPayload)
	switch m := msg.(type) {
	case *proto.Telemetry:
		err = in.checkTS(m.TS.Time, now)
	case *proto.StatusEvent:
		err = in.checkTS(m.TS.Time, now)
	}
	if err != nil {
		msg = nil
	}
	// A row the warehouse refuses for its data is stored as the message it
	// came from, and acknowledged once that is stored; its ts then measures
	// no commit lag.
	var refused bool
	letter := func(reason string, err error) warehouse.DeadLetterRow {
		refused = true
		in.countDead(pub.Topic, reason, err)
		dl := warehouse.DeadLetterRowOf(pub.Topic, pub.Payload, err, now)
		dl.Reason = reason
		return dl
	}
	switch m := msg.(type) {
	case *proto.Telemetry:
		in.metrics.consumed.WithLabelValues("telemetry").Inc()
		ts := m.TS.Time
		err = in.telemetry.AddWithDeadLetter(ctx, warehouse.TelemetryRowOf(m, now), func() {
			if !refused {
				in.metrics.lagTelem.Observe(time.Since(ts).Seconds())
			}
			ack()
		}, letter)
	case *proto.StatusEvent:
		in.metrics.consumed.WithLabelValues("status").Inc()
		ts := m.TS.Time
		err = in.status.AddWithDeadLetter(ctx, warehouse.StatusRowOf(m, now), func() {
			if !refused {
				in.metrics.lagStatus.Observe(time.Since(ts).Seconds())
			}
			ack()
		}, letter)
	default:
		if err == nil {
			err = fmt.Errorf("%w: not a device message", proto.ErrBadTopic)
		}
		in.metrics.consumed.WithLabelValues("dead_letter").Inc()
		in.countDead(pub.Topic, proto.Reason(err), err)
		err = in.dead.Add(ctx, warehouse.DeadLetterRowOf(pub.Topic, pub.Payload, err, now), ack)
	}
	// Add fails only once the writers stopped, at shutdown: the message then
	// stays unacknowledged and the broker redelivers it.
	_ = err
	return true, nil
}

// checkTS returns an error wrapping proto.ErrTSOutOfRange when ts is
// outside the window around now that the config allows.
func (in *Ingestor) checkTS(ts, now time.Time) error {
	switch {
	case ts.Before(now.Add(-in.cfg.MaxTSAge)):
		return fmt.Errorf("%w: ts %s is %s behind the receiver's clock, more than the %s allowed",
			proto.ErrTSOutOfRange, ts.UTC().Format(time.RFC3339Nano), now.Sub(ts).Round(time.Second), in.cfg.MaxTSAge)
	case ts.After(now.Add(in.cfg.MaxTSAhead)):
		return fmt.Errorf("%w: ts %s is %s ahead of the receiver's clock, more than the %s allowed",
			proto.ErrTSOutOfRange, ts.UTC().Format(time.RFC3339Nano), ts.Sub(now).Round(time.Second), in.cfg.MaxTSAhead)
	}
	return nil
}

// countDead logs and counts one dead letter. It must not block: it runs on
// paho's goroutine, or on a writer's for a row the warehouse refused.
func (in *Ingestor) countDead(topic, reason string, err error) {
	in.cfg.Logger.Warn("dead letter", "topic", topic, "reason", reason, "err", err)
	in.deadMu.Lock()
	in.deadByReason[reason]++
	in.deadMu.Unlock()
	in.metrics.deadLetters.WithLabelValues(reason).Inc()
}
