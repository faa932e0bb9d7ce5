package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/ingestor"
	"github.com/sentinel-iot/sentinel/recoverer"
	"github.com/sentinel-iot/sentinel/simulator"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// pipeline is every component in one process, as `sentinel run` starts
// them: broker, ingestor, recoverer and the simulated fleet, sharing one
// warehouse. The end-to-end test drives the same wiring.
type pipeline struct {
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
	creds     *runCredentials
}

// pipelineConfig is what differs between `sentinel run` and the tests.
type pipelineConfig struct {
	Listen    string // broker address; port 0 picks one
	Broker    broker.Config
	Ingestor  ingestor.Config
	Recoverer recoverer.Config
	Fleet     simulator.Config
	Logger    *slog.Logger
}

// startPipeline starts the broker and the services on db and waits until
// both services are subscribed, so nothing the fleet publishes is missed.
func startPipeline(ctx context.Context, db *warehouse.DB, cfg pipelineConfig) (*pipeline, error) {
	p := &pipeline{db: db, log: cfg.Logger, serviceErrs: make(chan error, 2)}
	creds, err := newRunCredentials()
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
			p.shutdown()
			return nil, fmt.Errorf("start %s: %w", name, err)
		case <-wait.Done():
			p.shutdown()
			return nil, fmt.Errorf("start %s: not subscribed after 30s: %w", name, wait.Err())
		}
	}

	cfg.Fleet.Broker = b.URL()
	if cfg.Fleet.Logger == nil {
		cfg.Fleet.Logger = cfg.Logger
	}
	if p.fleet, err = simulator.New(cfg.Fleet); err != nil {
		p.shutdown()
		return nil, fleetFlagError(err)
	}
	return p, nil
}

// runFleet runs the simulated fleet until ctx ends; fleetDone reports its end.
func (p *pipeline) runFleet(ctx context.Context) {
	p.started = time.Now()
	p.fleetDone = make(chan error, 1)
	go func() { p.fleetDone <- p.fleet.Run(ctx) }()
}

// drain waits (up to timeout) until the ingestor has committed and
// acknowledged everything it received, so the report counts every reading.
func (p *pipeline) drain(timeout time.Duration) error {
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

// shutdown stops the fleet's wait, the services and the broker, in that
// order, and returns the first error any of them reported.
func (p *pipeline) shutdown() error {
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
	return errors.Join(errs...)
}

// status is one progress snapshot.
type status struct {
	Elapsed            time.Duration
	Connected, Devices int
	Published          uint64
	Rows               int64
	Decisions          uint64
	Commands           uint64
	DeadLetters        int64
	Degraded           bool
}

func (p *pipeline) status() status {
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
	return status{
		Elapsed: time.Since(p.started), Connected: f.Connected, Devices: len(p.fleet.Devices()),
		Published: f.Published, Rows: in.Telemetry + in.Status, Decisions: decisions, Commands: commands,
		DeadLetters: dead, Degraded: in.Degraded,
	}
}
