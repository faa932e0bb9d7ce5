// Package inproc runs every Sentinel component in one process, as
// `sentinel run` and `sentinel bench recover` start them: the broker, the
// ingestor, the recoverer and the simulated fleet, sharing one warehouse,
// each client with credentials of its own. The end-to-end tests drive the
// same wiring.
package inproc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sentinel-iot/sentinel/analytics/efficacy"
	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/ingestor"
	"github.com/sentinel-iot/sentinel/recoverer"
	"github.com/sentinel-iot/sentinel/simulator"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// Pipeline is every component in one process: broker, ingestor, recoverer
// and the simulated fleet, sharing one warehouse. Start it, RunFleet, then
// Drain and Shutdown.
type Pipeline struct {
	db     *warehouse.DB
	broker *broker.Broker
	ingest *ingestor.Ingestor
	recov  *recoverer.Recoverer
	fleet  *simulator.Fleet
	log    *slog.Logger

	services     sync.WaitGroup
	stopServices context.CancelFunc
	serviceErrs  chan error

	fleetDone chan error
	started   time.Time
	creds     *credentials

	shutdownOnce sync.Once
	shutdownErr  error // what Shutdown returns
}

// Config is what differs between `sentinel run`, the bench and the tests.
// Start fills in the broker's address, the services' credentials and the
// loggers; a client's credentials set here are kept.
type Config struct {
	Listen    string // broker address; port 0 picks one
	Broker    broker.Config
	Ingestor  ingestor.Config
	Recoverer recoverer.Config
	Fleet     simulator.Config
	Logger    *slog.Logger
}

// Start starts the broker and the services on db and waits until both
// services are subscribed, so nothing the fleet publishes is missed. An
// invalid fleet configuration is simulator.New's error, unwrapped, so a
// caller can name the flag (simulator.ConfigError).
func Start(ctx context.Context, db *warehouse.DB, cfg Config) (*Pipeline, error) {
	p := &Pipeline{db: db, log: cfg.Logger, serviceErrs: make(chan error, 2)}
	creds, err := newCredentials()
	if err != nil {
		return nil, err
	}
	creds.apply(&cfg)
	p.creds = creds
	cfg.Broker.Addr = cfg.Listen
	cfg.Broker.Logger = cfg.Logger
	b, err := broker.New(cfg.Broker)
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		return nil, err
	}
	p.broker = b

	cfg.Ingestor.Broker, cfg.Ingestor.Logger = b.URL(), cfg.Logger
	cfg.Recoverer.Broker, cfg.Recoverer.Logger = b.URL(), cfg.Logger
	if p.ingest, err = ingestor.New(cfg.Ingestor, db); err != nil {
		b.Close()
		return nil, err
	}
	if p.recov, err = recoverer.New(cfg.Recoverer, db); err != nil {
		b.Close()
		return nil, err
	}
	svcCtx, stop := context.WithCancel(context.Background())
	p.stopServices = stop
	for _, run := range []func(context.Context) error{p.ingest.Run, p.recov.Run} {
		p.services.Add(1)
		go func() {
			defer p.services.Done()
			if err := run(svcCtx); err != nil {
				p.serviceErrs <- err
			}
		}()
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for name, ready := range map[string]<-chan struct{}{"ingestor": p.ingest.Ready(), "recoverer": p.recov.Ready()} {
		select {
		case <-ready:
		case err := <-p.serviceErrs:
			p.Shutdown()
			return nil, fmt.Errorf("start %s: %w", name, err)
		case <-wait.Done():
			p.Shutdown()
			return nil, fmt.Errorf("start %s: not subscribed after 30s: %w", name, wait.Err())
		}
	}

	cfg.Fleet.Broker = b.URL()
	if cfg.Fleet.Logger == nil {
		cfg.Fleet.Logger = cfg.Logger
	}
	if p.fleet, err = simulator.New(cfg.Fleet); err != nil {
		p.Shutdown()
		return nil, err
	}
	return p, nil
}

// RunFleet starts the simulated fleet, which runs until ctx ends; Shutdown
// waits for its end.
func (p *Pipeline) RunFleet(ctx context.Context) {
	p.started = time.Now()
	p.fleetDone = make(chan error, 1)
	go func() { p.fleetDone <- p.fleet.Run(ctx) }()
}

// Drain waits (up to timeout) until the ingestor has committed and
// acknowledged everything it received, so the report counts every reading.
func (p *Pipeline) Drain(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s := p.ingest.Stats()
		if s.Acked+s.AcksDropped >= s.Received {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ingestor still holds %d uncommitted messages after %s", s.Received-s.Acked, timeout)
		}
		<-tick.C
	}
}

// Shutdown waits for the fleet's end (RunFleet's ctx must end first), then
// stops the services and the broker, in that order, and returns the errors
// any of them reported. It is safe to call more than once (a test's
// cleanup after its own Shutdown); every call returns the first's errors.
func (p *Pipeline) Shutdown() error {
	p.shutdownOnce.Do(func() {
		var errs []error
		if p.fleetDone != nil {
			if err := <-p.fleetDone; err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("simulator: %w", err))
			}
			p.fleetDone = nil
		}
		p.stopServices()
		p.services.Wait()
		close(p.serviceErrs)
		for err := range p.serviceErrs {
			errs = append(errs, err)
		}
		if err := p.broker.Close(); err != nil {
			errs = append(errs, err)
		}
		p.shutdownErr = errors.Join(errs...)
	})
	return p.shutdownErr
}

// Status is one progress snapshot, summed over the components' counters.
type Status struct {
	Elapsed            time.Duration
	Connected, Devices int
	Published          uint64
	Rows               int64
	Decisions          uint64
	Commands           uint64
	DeadLetters        int64
	Degraded           bool
}

// Status returns a snapshot of the components' counters.
func (p *Pipeline) Status() Status {
	f, in, r := p.fleet.Stats(), p.ingest.Stats(), p.recov.Stats()
	var dead int64
	for _, n := range in.DeadLetters {
		dead += n
	}
	var decisions, commands uint64
	for _, n := range r.Decisions {
		decisions += n
	}
	for _, n := range r.Commands {
		commands += n
	}
	return Status{
		Elapsed: time.Since(p.started), Connected: f.Connected, Devices: len(p.fleet.Devices()),
		Published: f.Published, Rows: in.Telemetry + in.Status, Decisions: decisions, Commands: commands,
		DeadLetters: dead, Degraded: in.Degraded,
	}
}

// Broker is the pipeline's broker.
func (p *Pipeline) Broker() *broker.Broker { return p.broker }

// Ingestor is the pipeline's ingestor.
func (p *Pipeline) Ingestor() *ingestor.Ingestor { return p.ingest }

// Recoverer is the pipeline's recoverer.
func (p *Pipeline) Recoverer() *recoverer.Recoverer { return p.recov }

// Fleet is the pipeline's simulated fleet.
func (p *Pipeline) Fleet() *simulator.Fleet { return p.fleet }

// Started is when RunFleet started the fleet.
func (p *Pipeline) Started() time.Time { return p.started }

// Password is the generated password of one of the pipeline's users
// (IngestorUser, RecovererUser, GatewayUser, OpsUser); empty for another.
func (p *Pipeline) Password(user string) string { return p.creds.passwords[user] }

// DeviceKey is the key the devices' passwords derive from
// (auth.DevicePassword), so a test can speak as any device.
func (p *Pipeline) DeviceKey() []byte { return p.creds.deviceKey }

// Run names the fleet's run for scoring, after the controller: from the
// fleet's start until now.
func (p *Pipeline) Run(controller string) efficacy.Run {
	return efficacy.Run{ID: controller + "@" + p.started.UTC().Format(time.RFC3339), Controller: controller, Started: p.started, Ended: time.Now()}
}
