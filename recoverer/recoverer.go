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
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/sentinel-iot/sentinel/cohortstat"
	"github.com/sentinel-iot/sentinel/mqttconn"
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
	DefaultBreakerThreshold = cohortstat.DefaultWilsonThreshold
	// DefaultBreakerRule is Config.BreakerRule's default.
	DefaultBreakerRule = RuleV2
	// DefaultBreakerAlpha is Config.BreakerAlpha's default.
	DefaultBreakerAlpha = cohortstat.DefaultAlpha
	// DefaultBreakerDelta is Config.BreakerDelta's default.
	DefaultBreakerDelta = cohortstat.DefaultDelta
	// DefaultBreakerRateDelta is Config.BreakerRateDelta's default.
	DefaultBreakerRateDelta = cohortstat.DefaultRateDelta
	// DefaultBreakerLookback is Config.BreakerLookback's default.
	DefaultBreakerLookback = 24 * time.Hour
	// DefaultBreakerQuietAfter is Config.BreakerQuietAfter's default: the
	// policy's silence timeout.
	DefaultBreakerQuietAfter = 2 * time.Minute
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
	// policy.DefaultConfig's values. The states Policy.StateTimeouts does
	// not list take the warehouse's state_timeouts table (migration 13),
	// read at start unless NoRebuild, the numbers the analytics query
	// stuck_devices uses.
	Policy policy.Config
	// Decide is the decision rule. Default policy.Decide; the baselines
	// (policy.RetryOnly, policy.RetryThenRollback, policy.Observe) are for
	// measuring it, never for a fleet.
	Decide policy.Func
	// BreakerInterval is how often the cohort breaker queries the
	// warehouse. Default 5s; negative turns the breaker off.
	BreakerInterval time.Duration
	// BreakerRule is the rule the breaker judges cohorts by: "v2" (the
	// anytime-valid test of each cohort against its baseline, the previous
	// firmware in the region: cohortstat.V2), "wilson" (the Wilson lower
	// bound against BreakerThreshold, the breaker before v2) or "aws" (the
	// raw failure percentage BreakerThreshold after BreakerMinSample
	// devices, as AWS IoT Jobs' abortConfig). Default "v2". A v2 cohort
	// whose region has no record of the previous firmware (a first
	// rollout; a simulation without history) has nothing to be compared
	// with and is judged by the wilson rule instead; its advisory says so.
	BreakerRule string
	// BreakerAlpha is v2's family-wise false-halt rate over all cohorts
	// judged at once, split across them and their signals. Default 0.01.
	BreakerAlpha float64
	// BreakerDelta is v2's tolerance: a cohort halts when its failure (or
	// quiet) share is shown above its baseline's by more than this, in
	// absolute terms, and promotes when shown not to be. Default 0.05.
	BreakerDelta float64
	// BreakerRateDelta is v2's relative tolerance on crash and drain rates
	// per device-hour. Default 0.5.
	BreakerRateDelta float64
	// BreakerLookback is how far back the breaker counts a cohort's
	// devices: a rollout's cohort is judged on everything it did since,
	// a sample that only grows, as an anytime-valid test needs, not a
	// sliding window. A cohort with no event left in it is forgotten.
	// Default 24h.
	BreakerLookback time.Duration
	// BreakerQuietAfter is how long a device may send no reading before
	// the reporting-ratio check counts it quiet. Default 2m.
	BreakerQuietAfter time.Duration
	// BreakerMinSample is the fewest settled devices (and device-hours
	// for a rate) a cohort needs before any rule judges it. Default 20.
	BreakerMinSample int
	// BreakerThreshold is, for the wilson and aws rules, the failure rate
	// over a cohort's settled devices at which the breaker trips (wilson:
	// once the lower bound of its one-sided 95 % Wilson interval reaches
	// it, migration 9). v2 has no absolute threshold. Default 0.5: the simulator's
	// worst regions fail about 0.36 of their devices on a good build, and
	// early in a wave failures settle before successes, so 0.4 on the bare
	// rate tripped a healthy region and rolled back devices a retry fixes.
	BreakerThreshold float64
	// NoRebuild skips reading the warehouse at start: rebuilding state,
	// and the state_timeouts table (policy.DefaultStateTimeouts, the
	// table's seed, stand in). Default false: a restart resumes where the
	// last run stopped.
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
	if c.BreakerRule == "" {
		c.BreakerRule = DefaultBreakerRule
	}
	if c.BreakerAlpha == 0 {
		c.BreakerAlpha = DefaultBreakerAlpha
	}
	if c.BreakerDelta == 0 {
		c.BreakerDelta = DefaultBreakerDelta
	}
	if c.BreakerRateDelta == 0 {
		c.BreakerRateDelta = DefaultBreakerRateDelta
	}
	if c.BreakerLookback <= 0 {
		c.BreakerLookback = DefaultBreakerLookback
	}
	if c.BreakerQuietAfter <= 0 {
		c.BreakerQuietAfter = DefaultBreakerQuietAfter
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

// withDefaults returns c with its defaults filled in.
func (c Config) withDefaults() Config {
	c.ensureDefaults()
	return c
}

// breakerRule is the rule cfg names, with its parameters.
func (c Config) breakerRule() (cohortstat.Rule, error) {
	switch c.BreakerRule {
	case RuleV2:
		v := cohortstat.V2{Alpha: c.BreakerAlpha, Delta: c.BreakerDelta, RateDelta: c.BreakerRateDelta, MinSample: c.BreakerMinSample}.WithDefaults()
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("%w: breaker: %w", ErrConfig, err)
		}
		return v, nil
	case RuleWilson:
		return cohortstat.Wilson{Threshold: c.BreakerThreshold, MinSample: c.BreakerMinSample}, nil
	case RuleAWS:
		return cohortstat.AWS{ThresholdPct: 100 * c.BreakerThreshold, MinExecuted: c.BreakerMinSample}, nil
	}
	return nil, fmt.Errorf("%w: breaker rule %q: want %s, %s or %s", ErrConfig, c.BreakerRule, RuleV2, RuleWilson, RuleAWS)
}

// Recoverer is the recovery controller. Make one with New and start it
// with Run; Stats is safe to call from any goroutine meanwhile.
type Recoverer struct {
	cfg    Config
	rule   cohortstat.Rule
	broker *url.URL
	db     *warehouse.DB
	log    *slog.Logger

	ran       atomic.Bool
	ready     chan struct{}
	readyOnce sync.Once
	stats     statsCounter
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
	rule, err := cfg.breakerRule()
	if err != nil {
		return nil, err
	}
	return &Recoverer{
		cfg:    cfg,
		rule:   rule,
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
	verdicts := warehouse.NewWriter[warehouse.BreakerVerdictRow](r.db, warehouse.TableBreakerVerdicts, warehouse.WriterConfig{Logger: r.log})
	commands := warehouse.NewWriter[warehouse.CommandRow](r.db, warehouse.TableCommands, warehouse.WriterConfig{Logger: r.log})
	var writers sync.WaitGroup
	var decisionsErr, commandsErr, verdictsErr error
	writers.Go(func() { decisionsErr = decisions.Run(writersCtx) })
	writers.Go(func() { verdictsErr = verdicts.Run(writersCtx) })
	writers.Go(func() { commandsErr = commands.Run(writersCtx) })

	t := newTracker(r.cfg.Policy)
	t.decideF = r.cfg.Decide
	br := newBreaker(r.rule, r.log)
	br.fallback = cohortstat.Wilson{Threshold: r.cfg.BreakerThreshold, MinSample: r.cfg.BreakerMinSample}
	br.lookback = r.cfg.BreakerLookback
	if !r.cfg.NoRebuild {
		timeouts, err := loadStateTimeouts(ctx, r.db)
		if err != nil {
			stopWriters()
			writers.Wait()
			return err
		}
		t.cfg = withStateTimeouts(t.cfg, timeouts)
		n, err := rebuild(ctx, r.db, t)
		if err != nil {
			stopWriters()
			writers.Wait()
			return err
		}
		r.stats.rebuilt.Store(int64(n))
		c, err := br.restore(ctx, r.db, t, r.cfg.BreakerLookback, time.Now())
		if err != nil {
			stopWriters()
			writers.Wait()
			return err
		}
		r.stats.setTripped(t.trippedList())
		r.log.Info("state rebuilt from the warehouse", "devices", n, "open_commands", len(t.open), "cohort_verdicts", c)
	}

	events := make(chan inbound, 1024)
	rd := newReadings()
	out := newOutbox()
	up := mqttconn.NewConnUp()
	cm, err := autopaho.NewConnection(connCtx, r.clientConfig(ctx, events, rd, up))
	if err != nil {
		stopWriters()
		writers.Wait()
		return fmt.Errorf("recoverer: start MQTT connection to %s: %w", r.broker, err)
	}
	// Subscriptions are renewed on every connection from this goroutine:
	// OnConnectionUp only hands the connection over (paho documents it
	// must not block).
	var subscriber sync.WaitGroup
	subscriber.Go(func() { up.Run(ctx, func(ctx context.Context, u mqttconn.Up) { r.subscribe(ctx, u.CM) }) })
	var publisher sync.WaitGroup
	publisher.Go(func() { out.run(ctx, cm, r.cfg.ShutdownTimeout, &r.stats, r.log) })

	cohorts := make(chan []Counts)
	var breakerWG sync.WaitGroup
	if r.cfg.BreakerInterval > 0 {
		// The breaker's silence deadlines are the tracker's state timeouts,
		// the warehouse's table included.
		bcfg := r.cfg
		bcfg.Policy = t.cfg
		breakerWG.Go(func() { r.runBreaker(ctx, bcfg, cohorts) })
	}

	r.log.Info("recoverer started", "broker", r.broker.Redacted(), "client_id", r.cfg.ClientID)
	r.loop(ctx, t, br, events, rd, cohorts, &sink{out: out, decisions: decisions, commands: commands, verdictRows: verdicts, stats: &r.stats, log: r.log})
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
	subscriber.Wait()

	var errs []error
	if decisionsErr != nil {
		errs = append(errs, fmt.Errorf("recoverer: flush decisions at shutdown: %w", decisionsErr))
	}
	if commandsErr != nil {
		errs = append(errs, fmt.Errorf("recoverer: flush commands at shutdown: %w", commandsErr))
	}
	if verdictsErr != nil {
		errs = append(errs, fmt.Errorf("recoverer: flush breaker verdicts at shutdown: %w", verdictsErr))
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
func (r *Recoverer) clientConfig(ctx context.Context, events chan<- inbound, rd *readings, up *mqttconn.ConnUp) autopaho.ClientConfig {
	cfg := autopaho.ClientConfig{
		AttemptConnection:             mqttconn.Dialer(r.broker, dialConfig),
		ServerUrls:                    []*url.URL{r.broker},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		SessionExpiryInterval:         60,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(250*time.Millisecond, 10*time.Second, time.Second, 2),
		ConnectTimeout:                10 * time.Second,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ack *paho.Connack) {
			r.stats.connected.Store(true)
			up.OnConnectionUp(cm, ack) // Run's subscriber goroutine subscribes
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
				r.received(ctx, events, rd),
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

// dialConfig reads the MQTT socket through a buffer. paho reads each
// packet's fixed header byte by byte and its body in another read,
// straight from the connection: at 10,000 devices, 5,000 readings a second
// made read system calls the recoverer's largest cost (a CPU profile of
// scripts/bench-recover-latency.sh). Writes, a few commands and audit
// records a second, go straight through.
var dialConfig = mqttconn.DialConfig{ReadBuffer: 32 << 10}

// subscribeTimeout bounds the wait for a SUBACK.
const subscribeTimeout = 10 * time.Second

// subscribe (re)subscribes to status and telemetry on a connection that
// came up. It runs on Run's subscriber goroutine, never in autopaho's
// callback, bounded by a timeout so a silent broker cannot hold it until
// the next connection.
func (r *Recoverer) subscribe(ctx context.Context, cm *autopaho.ConnectionManager) {
	sctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
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
		if ctx.Err() != nil {
			return // stopping
		}
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

// received returns the MQTT client's handler of every message, which paho
// calls on its one goroutine. It decodes the message (decode, the one
// place that does) and hands it on: a reading to rd, which keeps each
// device's latest for the tracker (see readings), a status or an advisory
// to events, in the order they came. Invalid messages are counted and
// logged here; the ingestor stores them as dead letters.
func (r *Recoverer) received(ctx context.Context, events chan<- inbound, rd *readings) func(paho.PublishReceived) (bool, error) {
	return func(pr paho.PublishReceived) (bool, error) {
		in, err := decode(pr.Packet.Topic, pr.Packet.Payload, time.Now())
		switch {
		case errors.Is(err, errNotActed):
			return true, nil
		case err != nil:
			r.stats.invalid.Add(1)
			r.log.Debug("dropping invalid message", "topic", pr.Packet.Topic, "reason", proto.Reason(err), "err", err)
			return true, nil
		case in.kind == inReading:
			r.stats.telemetry.Add(1)
			if rd.put(reading{region: in.region, m: in.reading, received: in.received}) {
				r.stats.coalesced.Add(1)
			}
			return true, nil
		}
		select {
		case events <- in:
			return true, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// readingsPerTurn is how many readings the tracker applies before it looks
// for a waiting status again; emitChunk is the same for the decisions of a
// burst (see applyYielding in loop).
const (
	readingsPerTurn = 256
	emitChunk       = 32
)

// loop is the tracker's goroutine: the only one that touches device state.
// Status events come first: between batches of readings it takes every
// status that is waiting. Everything decided leaves through s.
func (r *Recoverer) loop(ctx context.Context, t *tracker, br *breaker, events <-chan inbound, rd *readings, cohorts <-chan []Counts, s *sink) {
	ticker := time.NewTicker(tickInterval)
	defer ticker.Stop()
	// What was decided is stored even when shutdown begins right now: a
	// cancelled ctx must not make the writers drop the row (it used to, at
	// random, when the audit message was already out).
	store, stopStore := storeContext(ctx, r.cfg.ShutdownTimeout)
	defer stopStore()
	apply := func(x reading) {
		v, o := t.telemetry(x.region, x.m, x.received)
		if v == duplicate {
			r.stats.duplicates.Add(1)
		}
		s.apply(store, o)
	}
	event := func(in inbound) {
		switch in.kind {
		case inAdvisory:
			if in.cleared {
				s.apply(store, br.operatorClear(t, in.firmware, time.Now()))
				r.stats.setTripped(t.trippedList())
			}
		case inStatus:
			// The device's reading that came in before this status (it
			// waits in rd) is applied first, as it arrived first.
			if x, ok := rd.takeDevice(in.region, in.status.DeviceID); ok {
				apply(x)
			}
			s.apply(store, r.status(t, in))
		}
	}
	// pending takes the status events waiting now, without blocking.
	pending := func() {
		for {
			select {
			case in := <-events:
				event(in)
			default:
				return
			}
		}
	}
	// applyYielding applies the decisions of a timer or of the breaker,
	// which come by the hundred when a wave's backoffs end together or a
	// cohort trips, taking the waiting status events between chunks, so a
	// status does not wait for the whole burst. A status that overtakes
	// part of a burst may publish its device's decision first; seq,
	// assigned when deciding, keeps the audit's order.
	applyYielding := func(outs []output) {
		for i := 0; i < len(outs); i += emitChunk {
			s.apply(store, outs[i:min(i+emitChunk, len(outs))])
			pending()
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-events:
			event(in)
		case <-rd.notify:
			n := 0
			for _, x := range rd.take() {
				apply(x)
				if n++; n%readingsPerTurn == 0 {
					pending()
				}
			}
		case now := <-ticker.C:
			applyYielding(t.tick(now))
		case rows := <-cohorts:
			decided, pubs, verdicts := br.apply(t, rows, time.Now())
			s.verdicts(store, verdicts)
			s.advise(pubs, t.trippedList())
			r.stats.setTripped(t.trippedList())
			applyYielding(decided)
		}
		r.stats.setDevices(len(t.devices))
	}
}

// status passes one decoded status to the tracker and counts it.
func (r *Recoverer) status(t *tracker, in inbound) []output {
	m := in.status
	r.stats.status.Add(1)
	if m.Result != nil {
		r.stats.result(m.Result.Outcome)
	}
	v, outs := t.status(in.region, m, in.received)
	if v == duplicate {
		r.stats.duplicates.Add(1)
		r.log.Debug("dropping repeated or reordered message", "topic", proto.StatusTopic(in.region, m.DeviceID))
	}
	return outs
}

// pahoLogger adapts slog to paho's logger for its error messages.
type pahoLogger struct{ l *slog.Logger }

func (p pahoLogger) Println(v ...any)               { p.l.Warn("paho: " + fmt.Sprint(v...)) }
func (p pahoLogger) Printf(format string, v ...any) { p.l.Warn("paho: " + fmt.Sprintf(format, v...)) }
