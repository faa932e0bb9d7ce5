// Package recoverer is Sentinel's recovery controller. It watches every
// device's status and telemetry over MQTT, keeps what it needs about each
// device in memory, asks the pure policy package what to do when a device
// fails an update, and sends the resulting RETRY, ROLLBACK, DEFER or HALT
// command to the device. Every decision, including a decision to do
// nothing, is published as an audit record on sentinel/recovery/<region>/<device>
// and stored, with every command, in the warehouse.
package recoverer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// Errors New and Run return; callers branch on them with errors.Is.
var (
	// ErrConfig means the Config cannot work; fix it, a retry will not help.
	ErrConfig = errors.New("recoverer: invalid config")
	// ErrRunning means Run was called on a Recoverer that already ran: its
	// state and writers belong to one run.
	ErrRunning = errors.New("recoverer: already run")
)

// The defaults of a zero Config, exported so that flags state them once.
const (
	// DefaultClientID is Config.ClientID's default.
	DefaultClientID = "sentinel-recoverer"
	// DefaultBreakerInterval is Config.BreakerInterval's default.
	DefaultBreakerInterval = 5 * time.Second
	// DefaultBreakerMinSample is Config.BreakerMinSample's default.
	DefaultBreakerMinSample = 20
	// DefaultBreakerThreshold is Config.BreakerThreshold's default (its
	// comment says why 0.5).
	DefaultBreakerThreshold = 0.5
)

// Config configures a Recoverer. Zero fields take the default in their
// comment, so the zero Config works against a broker on the laptop.
type Config struct {
	// Broker is the MQTT server URL (tcp://, mqtt://, tls://, ws://).
	// Default tcp://127.0.0.1:1883.
	Broker string
	// ClientID is the MQTT client ID. Default "sentinel-recoverer". Give
	// each recoverer its own when running several (one per region).
	ClientID string
	// Username and Password authenticate to the broker; empty sends none.
	Username, Password string
	// Policy holds the decision thresholds; zero fields take
	// policy.DefaultConfig's values.
	Policy policy.Config
	// Decide is the decision rule. Default policy.Decide; the baselines
	// (policy.RetryOnly, policy.RetryThenRollback, policy.Observe) are for
	// measuring it, never for a fleet.
	Decide policy.Func
	// BreakerInterval is how often the cohort breaker queries the
	// warehouse. Default 5s; negative turns the breaker off.
	BreakerInterval time.Duration
	// BreakerWindow is the sliding window the breaker looks back over. Default 15m.
	BreakerWindow time.Duration
	// BreakerMinSample is the fewest devices a cohort needs in the window
	// before its failure rate can trip the breaker. Default 20.
	BreakerMinSample int
	// BreakerThreshold is the failure rate over a cohort's settled devices
	// at which the breaker trips, once the lower bound of its one-sided
	// 95 % Wilson interval reaches it (migration 9), so a handful of early
	// failures cannot trip a healthy cohort. Default 0.5: the simulator's
	// worst regions fail about 0.36 of their devices on a good build, and
	// early in a wave failures settle before successes, so 0.4 on the bare
	// rate tripped a healthy region and rolled back devices a retry fixes.
	BreakerThreshold float64
	// NoRebuild skips rebuilding state from the warehouse at start.
	// Default false: a restart resumes where the last run stopped.
	NoRebuild bool
	// ShutdownTimeout bounds how long Run, once its context ends, waits to
	// deliver the commands and audit records still queued. Default 5s.
	ShutdownTimeout time.Duration
	// Logger receives decisions, commands and connection events.
	// Default: discarded.
	Logger *slog.Logger
}

func (c *Config) ensureDefaults() {
	if c.Broker == "" {
		c.Broker = "tcp://127.0.0.1:1883"
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	c.Policy = c.Policy.WithDefaults()
	if c.Decide == nil {
		c.Decide = policy.Decide
	}
	if c.BreakerInterval == 0 {
		c.BreakerInterval = DefaultBreakerInterval
	}
	if c.BreakerWindow <= 0 {
		c.BreakerWindow = 15 * time.Minute
	}
	if c.BreakerMinSample <= 0 {
		c.BreakerMinSample = DefaultBreakerMinSample
	}
	if c.BreakerThreshold <= 0 {
		c.BreakerThreshold = DefaultBreakerThreshold
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Recoverer is the recovery controller. Make one with New and start it
// with Run; Stats is safe to call from any goroutine meanwhile.
type Recoverer struct {
	cfg    Config
	broker *url.URL
	db     *warehouse.DB
	log    *slog.Logger

	ran       atomic.Bool
	ready     chan struct{}
	readyOnce sync.Once
	stats     statsCounter
	// storeCtx bounds handing decided rows to the warehouse writers: it
	// outlives Run's ctx by ShutdownTimeout, so what was decided before
	// shutdown is stored, and a warehouse that stays down cannot hold the
	// shutdown forever. Set by Run, before the loop starts.
	storeCtx context.Context
}

// New validates cfg and returns a Recoverer that stores its decisions and
// commands in db. It connects to nothing: Run does.
func New(cfg Config, db *warehouse.DB) (*Recoverer, error) {
	cfg.ensureDefaults()
	if db == nil {
		return nil, fmt.Errorf("%w: no warehouse", ErrConfig)
	}
	u, err := url.Parse(cfg.Broker)
	if err != nil {
		return nil, fmt.Errorf("%w: broker URL %q: %v", ErrConfig, cfg.Broker, err)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: broker URL %q has no host (want scheme://host:port)", ErrConfig, cfg.Broker)
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if cfg.BreakerThreshold > 1 {
		return nil, fmt.Errorf("%w: BreakerThreshold %g above 1", ErrConfig, cfg.BreakerThreshold)
	}
	return &Recoverer{
		cfg:    cfg,
		broker: u,
		db:     db,
		log:    cfg.Logger,
		ready:  make(chan struct{}),
		stats:  newStatsCounter(),
	}, nil
}

// Ready returns a channel closed once the recoverer's first subscriptions
// are acknowledged by the broker: from then on it sees every status and
// reading. Health checks and tests wait on it.
func (r *Recoverer) Ready() <-chan struct{} { return r.ready }

// event is one MQTT message handed from the client to the tracker.
type event struct {
	topic    string
	payload  []byte
	received time.Time
}

// Run connects to the broker, subscribes to every device's status and
// telemetry, and acts on them until ctx ends. It then stops taking
// messages, flushes the decisions and commands buffered for the warehouse,
// delivers (within ShutdownTimeout) the MQTT messages still queued, and
// disconnects. It returns only after all its goroutines have exited: nil
// after a clean stop, or an error saying what could not be finished.
// A Recoverer runs once.
func (r *Recoverer) Run(ctx context.Context) error {
	if !r.ran.CompareAndSwap(false, true) {
		return ErrRunning
	}
	// The writers and the MQTT connection outlive ctx by design: they must
	// deliver what the tracker decided before ctx ended.
	bg := context.WithoutCancel(ctx)
	writersCtx, stopWriters := context.WithCancel(bg)
	defer stopWriters()
	connCtx, stopConn := context.WithCancel(bg)
	defer stopConn()

	decisions := warehouse.NewWriter[warehouse.DecisionRow](r.db, warehouse.TableDecisions, warehouse.WriterConfig{Logger: r.log})
	commands := warehouse.NewWriter[warehouse.CommandRow](r.db, warehouse.TableCommands, warehouse.WriterConfig{Logger: r.log})
	var writers sync.WaitGroup
	var decisionsErr, commandsErr error
	writers.Go(func() { decisionsErr = decisions.Run(writersCtx) })
	writers.Go(func() { commandsErr = commands.Run(writersCtx) })

	t := newTracker(r.cfg.Policy)
	t.decideF = r.cfg.Decide
	if !r.cfg.NoRebuild {
		n, err := rebuild(ctx, r.db, t)
		if err != nil {
			stopWriters()
			writers.Wait()
			return err
		}
		r.stats.rebuilt.Store(int64(n))
		r.log.Info("state rebuilt from the warehouse", "devices", n, "open_commands", len(t.open))
	}

	events := make(chan event, 1024)
	rd := newReadings()
	out := newOutbox()
	cm, err := autopaho.NewConnection(connCtx, r.clientConfig(ctx, events, rd))
	if err != nil {
		stopWriters()
		writers.Wait()
		return fmt.Errorf("recoverer: start MQTT connection to %s: %w", r.broker, err)
	}
	var publisher sync.WaitGroup
	publisher.Go(func() { out.run(ctx, cm, r.cfg.ShutdownTimeout, &r.stats, r.log) })

	cohorts := make(chan []CohortRate)
	var breakerWG sync.WaitGroup
	if r.cfg.BreakerInterval > 0 {
		breakerWG.Go(func() { r.runBreaker(ctx, cohorts) })
	}

	storeCtx, cancelStore := context.WithCancel(bg)
	defer cancelStore()
	stopAfter := context.AfterFunc(ctx, func() { time.AfterFunc(r.cfg.ShutdownTimeout, cancelStore) })
	defer stopAfter()
	r.storeCtx = storeCtx

	r.log.Info("recoverer started", "broker", r.broker.Redacted(), "client_id", r.cfg.ClientID)
	r.loop(ctx, t, events, rd, cohorts, out, decisions, commands)
	breakerWG.Wait()

	// Shutdown: the tracker has stopped; flush the warehouse and the outbox
	// side by side, then hang up.
	stopWriters()
	writers.Wait()
	publisher.Wait()
	dctx, cancel := context.WithTimeout(bg, r.cfg.ShutdownTimeout)
	defer cancel()
	if err := cm.Disconnect(dctx); err != nil {
		r.log.Warn("MQTT disconnect did not finish", "err", err)
	}
	<-cm.Done()

	var errs []error
	if decisionsErr != nil {
		errs = append(errs, fmt.Errorf("recoverer: flush decisions at shutdown: %w", decisionsErr))
	}
	if commandsErr != nil {
		errs = append(errs, fmt.Errorf("recoverer: flush commands at shutdown: %w", commandsErr))
	}
	if n := out.len(); n > 0 {
		errs = append(errs, fmt.Errorf("recoverer: %d MQTT messages undelivered at shutdown", n))
	}
	r.log.Info("recoverer stopped")
	return errors.Join(errs...)
}

// clientConfig is the autopaho configuration: a session that survives
// short reconnects, subscriptions renewed on every connection, and a
// handler that hands messages to the tracker.
func (r *Recoverer) clientConfig(ctx context.Context, events chan<- event, rd *readings) autopaho.ClientConfig {
	cfg := autopaho.ClientConfig{
		AttemptConnection:             dialer(r.broker),
		ServerUrls:                    []*url.URL{r.broker},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		SessionExpiryInterval:         60,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(250*time.Millisecond, 10*time.Second, time.Second, 2),
		ConnectTimeout:                10 * time.Second,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			r.stats.connected.Store(true)
			r.subscribe(ctx, cm)
		},
		OnConnectionDown: func() bool {
			r.stats.connected.Store(false)
			r.log.Warn("MQTT connection lost; reconnecting", "broker", r.broker.Redacted())
			return true
		},
		OnConnectError: func(err error) {
			r.stats.connectFailures.Add(1)
			r.log.Warn("MQTT connection attempt failed; retrying", "broker", r.broker.Redacted(), "err", err)
		},
		Errors: pahoLogger{r.log},
		ClientConfig: paho.ClientConfig{
			ClientID: r.cfg.ClientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					now := time.Now()
					if strings.HasSuffix(pr.Packet.Topic, "/"+string(proto.KindTelemetry)) {
						r.reading(rd, pr.Packet.Topic, pr.Packet.Payload, now)
						return true, nil
					}
					ev := event{topic: pr.Packet.Topic, payload: pr.Packet.Payload, received: now}
					select {
					case events <- ev:
						return true, nil
					case <-ctx.Done():
						return false, ctx.Err()
					}
				},
			},
			OnClientError: func(err error) { r.log.Warn("MQTT client error", "err", err) },
		},
	}
	if r.cfg.Username != "" || r.cfg.Password != "" {
		cfg.ConnectUsername = r.cfg.Username
		cfg.ConnectPassword = []byte(r.cfg.Password)
	}
	return cfg
}

// subscribe (re)subscribes to status and telemetry. It runs in autopaho's
// connection goroutine, bounded by a timeout so a silent broker cannot
// wedge reconnection.
func (r *Recoverer) subscribe(ctx context.Context, cm *autopaho.ConnectionManager) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// Readings at QoS 0: every device sends one every few seconds and only
	// the latest counts, so a lost one is replaced before it matters, while
	// QoS 1 made the broker track, and the client acknowledge, 5,000 of them
	// a second at 10,000 devices. Status events, which decisions hang on,
	// stay at QoS 1.
	sub := &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: proto.FilterStatus, QoS: 1},
		{Topic: proto.FilterTelemetry, QoS: 0},
		{Topic: advisoryFilter, QoS: 1},
	}}
	ack, err := cm.Subscribe(sctx, sub)
	if err != nil {
		r.log.Error("subscribe failed; the recoverer sees nothing until the next connection", "err", err)
		return
	}
	for i, code := range ack.Reasons {
		if code >= 0x80 {
			r.log.Error("subscription refused by the broker", "filter", sub.Subscriptions[i].Topic, "reason_code", code)
			return
		}
	}
	r.log.Info("subscribed", "filters", []string{proto.FilterStatus, proto.FilterTelemetry})
	r.readyOnce.Do(func() { close(r.ready) })
}

// tickInterval is how often devices in a backoff are checked.
const tickInterval = 250 * time.Millisecond

// reading decodes a telemetry message on the MQTT client's goroutine and
// leaves it for the tracker (see readings).
func (r *Recoverer) reading(rd *readings, topic string, payload []byte, now time.Time) {
	tp, msg, err := proto.Decode(topic, payload, 0)
	if err != nil {
		r.stats.invalid.Add(1)
		r.log.Debug("dropping invalid message", "topic", topic, "reason", proto.Reason(err), "err", err)
		return
	}
	m, ok := msg.(*proto.Telemetry)
	if !ok {
		return
	}
	r.stats.telemetry.Add(1)
	if rd.put(reading{region: tp.Region, m: m, received: now}) {
		r.stats.coalesced.Add(1)
	}
}

// readingsPerTurn is how many readings the tracker applies before it looks
// for a waiting status again; emitChunk is the same for the decisions of a
// burst (see emitYielding).
const (
	readingsPerTurn = 256
	emitChunk       = 32
)

// loop is the tracker's goroutine: the only one that touches device state.
// Status events come first: between batches of readings it takes every
// status that is waiting.
func (r *Recoverer) loop(ctx context.Context, t *tracker, events <-chan event, rd *readings, cohorts <-chan []CohortRate, out *outbox,
	decisions *warehouse.Writer[warehouse.DecisionRow], commands *warehouse.Writer[warehouse.CommandRow]) {
	ticker := time.NewTicker(tickInterval)
	defer ticker.Stop()
	br := newBreaker(r.cfg.BreakerThreshold)
	emit := func(outs []output) {
		for _, o := range outs {
			r.emit(ctx, o, out, decisions, commands)
		}
	}
	apply := func(x reading) {
		v, o := t.telemetry(x.region, x.m, x.received)
		if v == duplicate {
			r.stats.duplicates.Add(1)
		}
		emit(o)
	}
	event := func(ev event) {
		if fw, ok := advisoryFirmware(ev.topic); ok {
			if len(ev.payload) == 0 {
				emit(br.operatorClear(t, fw, time.Now()))
				r.stats.setTripped(t.trippedList())
			}
			return
		}
		// The device's reading that came in before this status (it waits
		// in rd) is applied first, as it arrived first.
		if tp, err := proto.ParseTopic(ev.topic); err == nil {
			if x, ok := rd.takeDevice(tp.Region, tp.Device); ok {
				apply(x)
			}
		}
		emit(r.handle(t, ev))
	}
	// pending takes the status events waiting now, without blocking.
	pending := func() {
		for {
			select {
			case ev := <-events:
				event(ev)
			default:
				return
			}
		}
	}
	// emitYielding emits the decisions of a timer or of the breaker, which
	// come by the hundred when a wave's backoffs end together or a cohort
	// trips, taking the waiting status events between chunks, so a status
	// does not wait for the whole burst. A status that overtakes part of a
	// burst may publish its device's decision first; seq, assigned when
	// deciding, keeps the audit's order.
	emitYielding := func(outs []output) {
		for i := 0; i < len(outs); i += emitChunk {
			emit(outs[i:min(i+emitChunk, len(outs))])
			pending()
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			event(ev)
		case <-rd.notify:
			n := 0
			for _, x := range rd.take() {
				apply(x)
				if n++; n%readingsPerTurn == 0 {
					pending()
				}
			}
		case now := <-ticker.C:
			emitYielding(t.tick(now))
		case rates := <-cohorts:
			decided, pubs := br.apply(t, rates, time.Now())
			for _, p := range pubs {
				out.pushUrgent(p, time.Time{})
				r.log.Warn("cohort breaker advisory", "topic", p.Topic, "cleared", len(p.Payload) == 0, "tripped", t.trippedList())
			}
			r.stats.setTripped(t.trippedList())
			emitYielding(decided)
		}
		r.stats.setDevices(len(t.devices))
	}
}

// handle decodes one message and passes it to the tracker. Bad payloads are
// counted and logged; the ingestor stores them as dead letters.
func (r *Recoverer) handle(t *tracker, ev event) []output {
	topic, msg, err := proto.Decode(ev.topic, ev.payload, 0)
	if err != nil {
		r.stats.invalid.Add(1)
		r.log.Debug("dropping invalid message", "topic", ev.topic, "reason", proto.Reason(err), "err", err)
		return nil
	}
	var v verdict
	var outs []output
	switch m := msg.(type) {
	case *proto.StatusEvent:
		r.stats.status.Add(1)
		if m.Result != nil {
			r.stats.result(m.Result.Outcome)
		}
		v, outs = t.status(topic.Region, m, ev.received)
	default:
		return nil // Readings go through readings; commands are not subscribed to.
	}
	if v == duplicate {
		r.stats.duplicates.Add(1)
		r.log.Debug("dropping repeated or reordered message", "topic", ev.topic)
	}
	return outs
}

// emit publishes a decision (and its command) and queues both for the
// warehouse. Publishing never blocks the tracker: the outbox queues.
func (r *Recoverer) emit(ctx context.Context, o output, out *outbox,
	decisions *warehouse.Writer[warehouse.DecisionRow], commands *warehouse.Writer[warehouse.CommandRow]) {
	d := o.decision
	log := r.log.With("device", d.DeviceID, "region", o.region, "state", d.State, "action", d.Action, "reason", d.Reason)
	// What was decided is stored even when shutdown begins right now: a
	// cancelled ctx must not make Add drop the row (it used to, at random,
	// when the audit message was already out). See Recoverer.storeCtx.
	store := r.storeCtx
	if c := o.command; c != nil {
		payload, err := proto.Encode(c)
		if err != nil {
			// A bug in the tracker, not in the input: say so loudly.
			log.Error("cannot encode command; not sent", "err", err)
			return
		}
		out.pushUrgent(&paho.Publish{Topic: proto.CommandTopic(o.region, c.DeviceID), QoS: 1, Payload: payload}, o.received)
		r.stats.command(c.Action)
		if err := commands.Add(store, warehouse.CommandRowOf(c, o.region), r.stats.commandStored); err != nil {
			r.stats.storeFailures.Add(1)
			log.Warn("command not stored", "command_id", c.CommandID, "err", err)
		}
		log.Info("command sent", "command_id", c.CommandID, "target_firmware", c.TargetFirmware, "attempt", d.Attempt)
	} else {
		log.Debug("decision", "attempt", d.Attempt)
	}
	payload, err := proto.Encode(d)
	if err != nil {
		log.Error("cannot encode decision; not published", "err", err)
		return
	}
	r.stats.decision(d.Action, d.Reason)
	if err := decisions.Add(store, warehouse.DecisionRowOf(d), r.stats.decisionStored); err != nil {
		r.stats.storeFailures.Add(1)
		log.Warn("decision not stored", "err", err)
	}
	out.push(&paho.Publish{Topic: proto.RecoveryTopic(o.region, d.DeviceID), QoS: 1, Payload: payload}, time.Time{})
}

// advisoryFirmware returns the firmware of an advisory topic.
func advisoryFirmware(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, proto.RolloutRoot+"/")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "/halt")
}

// pahoLogger adapts slog to paho's logger for its error messages.
type pahoLogger struct{ l *slog.Logger }

func (p pahoLogger) Println(v ...any)               { p.l.Warn("paho: " + fmt.Sprint(v...)) }
func (p pahoLogger) Printf(format string, v ...any) { p.l.Warn("paho: " + fmt.Sprintf(format, v...)) }
