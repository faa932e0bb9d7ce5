// Package ingestor moves device telemetry and status from MQTT into the
// warehouse without losing or double-counting any of it.
//
// It joins the shared subscription group $share/ingest/... so several
// ingestors split the load, decodes every message strictly with proto,
// batches rows through warehouse.Writer and acknowledges each message to the
// broker only after the batch holding it is committed. A crash therefore
// redelivers instead of losing; the warehouse's (device_id, seq) dedup
// absorbs the repeat. A payload that fails decoding is stored in
// dead_letters with its reason and acknowledged, so poison never loops.
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

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// Config configures an Ingestor. The zero value works on a laptop.
type Config struct {
	// Broker is the MQTT broker URL. Default "tcp://127.0.0.1:1883".
	Broker string
	// ClientID identifies this ingestor to the broker; every instance needs
	// its own. Default "sentinel-ingestor".
	ClientID string
	// Username and Password authenticate to the broker, when it asks.
	Username, Password string
	// Group is the shared-subscription group. Default proto.IngestGroup.
	Group string
	// Batch configures the warehouse writers (rows, delay, backoff).
	// Defaults: 10000 rows or 250ms.
	Batch warehouse.WriterConfig
	// ReceiveMaximum is how many unacknowledged messages the broker may have
	// in flight to this ingestor: the window that turns a slow warehouse
	// into backpressure on the broker. Default 4096.
	ReceiveMaximum uint16
	// SessionExpiry is how long the broker keeps this ingestor's session
	// (subscriptions and unacknowledged messages) across a restart.
	// Default 1h.
	SessionExpiry time.Duration
	// MaxPayload is the largest payload decoded; larger ones are dead
	// letters. Default proto.DefaultMaxPayload.
	MaxPayload int
	// Logger receives events. Default: discarded.
	Logger *slog.Logger
}

func (c *Config) ensureDefaults() {
	if c.Broker == "" {
		c.Broker = "tcp://127.0.0.1:1883"
	}
	if c.ClientID == "" {
		c.ClientID = "sentinel-ingestor"
	}
	if c.Group == "" {
		c.Group = proto.IngestGroup
	}
	if c.ReceiveMaximum == 0 {
		c.ReceiveMaximum = 4096
	}
	if c.SessionExpiry <= 0 {
		c.SessionExpiry = time.Hour
	}
	if c.MaxPayload <= 0 {
		c.MaxPayload = proto.DefaultMaxPayload
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Batch.Logger == nil {
		c.Batch.Logger = c.Logger
	}
	// Every in-flight message must fit in a writer's queue, so taking a
	// message never blocks the MQTT client for long.
	if c.Batch.MaxPending < int(c.ReceiveMaximum) {
		c.Batch.MaxPending = int(c.ReceiveMaximum)
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
	// Degraded is true while the warehouse refuses writes.
	Degraded bool
}

// Ingestor consumes device messages into the warehouse.
type Ingestor struct {
	cfg       Config
	db        *warehouse.DB
	server    *url.URL
	telemetry *warehouse.Writer[warehouse.TelemetryRow]
	status    *warehouse.Writer[warehouse.StatusRow]
	dead      *warehouse.Writer[warehouse.DeadLetterRow]

	conn            atomic.Int64 // connection generation; acks never cross it
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
	return &Ingestor{
		cfg:          cfg,
		db:           db,
		server:       u,
		telemetry:    warehouse.NewWriter[warehouse.TelemetryRow](db, warehouse.TableTelemetry, cfg.Batch),
		status:       warehouse.NewWriter[warehouse.StatusRow](db, warehouse.TableStatusEvents, cfg.Batch),
		dead:         warehouse.NewWriter[warehouse.DeadLetterRow](db, warehouse.TableDeadLetters, cfg.Batch),
		deadByReason: map[string]int64{},
		ready:        make(chan struct{}),
	}, nil
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
	t, s := in.telemetry.Stats(), in.status.Stats()
	return Stats{
		Received: in.received.Load(), Telemetry: t.Rows, Status: s.Rows, DeadLetters: dead,
		Acked: in.acked.Load(), AcksDropped: in.acksDropped.Load(),
		Degraded: t.Degraded || s.Degraded || in.dead.Stats().Degraded,
	}
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
	cm, err := autopaho.NewConnection(connCtx, in.clientConfig())
	if err != nil {
		stopWriters()
		writers.Wait()
		return fmt.Errorf("ingestor: connect to %s: %w", in.cfg.Broker, err)
	}
	in.cfg.Logger.Info("ingestor started", "broker", in.cfg.Broker, "client_id", in.cfg.ClientID, "group", in.cfg.Group)

	<-ctx.Done()
	// Commit what is held, let the acks go out, then leave. Anything not
	// acknowledged by then is redelivered to the next ingestor.
	stopWriters()
	werr := writers.Wait()
	flushAcks := time.NewTimer(3 * 50 * time.Millisecond) // paho sends acks every 50ms
	<-flushAcks.C
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = cm.Disconnect(dctx)
	stopConn()
	<-cm.Done()
	in.cfg.Logger.Info("ingestor stopped", "received", in.received.Load(), "acked", in.acked.Load())
	return werr
}

func (in *Ingestor) clientConfig() autopaho.ClientConfig {
	filters := []string{proto.Shared(in.cfg.Group, proto.FilterTelemetry), proto.Shared(in.cfg.Group, proto.FilterStatus)}
	return autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{in.server},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(in.cfg.SessionExpiry / time.Second),
		ConnectUsername:               in.cfg.Username,
		ConnectPassword:               []byte(in.cfg.Password),
		ReconnectBackoff:              autopaho.NewExponentialBackoff(100*time.Millisecond, 10*time.Second, 2*time.Second, 2),
		ConnectPacketBuilder: func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if c.Properties == nil {
				c.Properties = &paho.ConnectProperties{}
			}
			rm := in.cfg.ReceiveMaximum
			c.Properties.ReceiveMaximum = &rm
			return c, nil
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			in.conn.Add(1)
			subs := make([]paho.SubscribeOptions, len(filters))
			for i, f := range filters {
				subs[i] = paho.SubscribeOptions{Topic: f, QoS: 1}
			}
			// Subscribe from a goroutine: OnConnectionUp must not block.
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs}); err != nil {
					in.cfg.Logger.Error("subscribe failed", "filters", filters, "err", err)
					return
				}
				in.readyOnce.Do(func() { close(in.ready) })
			}()
		},
		OnConnectionDown: func() bool {
			in.conn.Add(1)
			in.cfg.Logger.Warn("connection to broker lost; unacknowledged messages will be redelivered")
			return true
		},
		OnConnectError: func(err error) { in.cfg.Logger.Warn("broker connection attempt failed", "err", err) },
		ClientConfig: paho.ClientConfig{
			ClientID:                   in.cfg.ClientID,
			EnableManualAcknowledgment: true,
			OnPublishReceived:          []func(paho.PublishReceived) (bool, error){in.handle},
		},
	}
}

// handle takes one message: decode, queue its row, ack after commit.
func (in *Ingestor) handle(pr paho.PublishReceived) (bool, error) {
	in.received.Add(1)
	pub, client := pr.Packet, pr.Client
	gen := in.conn.Load()
	ack := func() {
		// Packet IDs are reused across connections (paho #160): an ack for a
		// message from an earlier connection would acknowledge another one.
		if in.conn.Load() != gen {
			in.acksDropped.Add(1)
			return
		}
		if err := client.Ack(pub); err != nil {
			in.acksDropped.Add(1)
			return
		}
		in.acked.Add(1)
	}
	now := time.Now()
	ctx := context.Background()
	_, msg, err := proto.Decode(pub.Topic, pub.Payload, in.cfg.MaxPayload)
	switch m := msg.(type) {
	case *proto.Telemetry:
		err = in.telemetry.Add(ctx, warehouse.TelemetryRowOf(m, now), ack)
	case *proto.StatusEvent:
		err = in.status.Add(ctx, warehouse.StatusRowOf(m, now), ack)
	default:
		if err == nil {
			err = fmt.Errorf("%w: not a device message", proto.ErrBadTopic)
		}
		reason := proto.Reason(err)
		in.cfg.Logger.Warn("dead letter", "topic", pub.Topic, "reason", reason, "err", err)
		in.deadMu.Lock()
		in.deadByReason[reason]++
		in.deadMu.Unlock()
		err = in.dead.Add(ctx, warehouse.DeadLetterRowOf(pub.Topic, pub.Payload, err, now), ack)
	}
	// Add fails only once the writers stopped, at shutdown: the message then
	// stays unacknowledged and the broker redelivers it.
	_ = err
	return true, nil
}
