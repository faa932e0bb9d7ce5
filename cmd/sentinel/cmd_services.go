package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/sentinel-iot/sentinel/bench/proc"
	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/broker/hooks/store"
	"github.com/sentinel-iot/sentinel/ingestor"
	"github.com/sentinel-iot/sentinel/warehouse"
)

func cmdBroker(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && args[0] == "adduser" {
		return cmdBrokerAddUser(ctx, args[1:], out)
	}
	fs := newFlags("broker", "[flags]  |  sentinel broker adduser [flags] USERNAME")
	var c common
	c.addLog(fs, "info")
	listen := fs.String("listen", broker.DefaultAddr, "TCP address for MQTT clients")
	c.addCPUProfile(fs)
	storeDir := fs.String("store-dir", "", "keep sessions, subscriptions, retained and in-flight messages in this directory (pebble) across restarts; empty: memory only")
	var bf brokerFlags
	bf.add(fs)
	backlogBytes := fs.Int64("backlog-bytes", broker.DefaultBacklogBytes, "with --store-dir, disk budget for the backlogs of sessions whose in-flight window is full (a stalled ingestor's queue); past it publishes for them are refused with 0x97 and their publishers keep them; negative: no backlog")
	addrFile := addAddrFile(fs)
	acks := fs.String("acks", "durable", "with --store-dir, when a QoS 1/2 publish is acknowledged: durable (after an fsync, group commit), immediate (before, as upstream mochi), blocking (after an fsync, one publish per connection at a time; for comparison)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	ackMode, err := parseAckMode(*acks)
	if err != nil {
		return err
	}
	stopProfile, err := c.startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	cfg := broker.Config{Addr: *listen, Logger: log,
		Store: broker.StoreConfig{Dir: *storeDir, Acks: ackMode, BacklogBytes: *backlogBytes}}
	if err := bf.apply(&cfg); err != nil {
		return err
	}
	b, err := broker.New(cfg)
	if err != nil {
		return err
	}
	metricsAt, stopped, err := bf.serve(ctx, b, out)
	if err != nil {
		return err
	}
	defer func() { <-stopped }()
	defer func(reloader <-chan struct{}) { <-reloader }(bf.reloadOnHangup(ctx, b, log))
	if err := b.Start(); err != nil {
		return errors.Join(err, b.Close())
	}
	if err := writeAddrFile(*addrFile, map[string]string{"mqtt": b.Addr(), "tls": b.TLSAddr(), "metrics": metricsAt}); err != nil {
		return errors.Join(err, b.Close())
	}
	<-ctx.Done()
	return b.Close()
}

// parseAckMode reads --acks.
func parseAckMode(s string) (store.AckMode, error) {
	for _, m := range []store.AckMode{store.AckDurable, store.AckImmediate, store.AckBlocking} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("--acks %q: want durable, immediate or blocking", s)
}

func cmdIngest(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("ingest", "[flags]")
	var c common
	c.addDSN(fs)
	c.addBroker(fs)
	c.addLog(fs, "info")
	clientID := fs.String("client-id", ingestor.DefaultClientID, "MQTT client ID; give each instance its own")
	username := fs.String("username", "", "MQTT username")
	password := fs.String("password", "", "MQTT password")
	rows := fs.Int("batch-rows", warehouse.DefaultMaxRows, "flush a batch at this many rows")
	delay := fs.Duration("batch-delay", warehouse.DefaultMaxDelay, "flush a batch this long after its first row")
	bytes := fs.Int("batch-bytes", warehouse.DefaultMaxBytes, "flush a batch at about this many bytes of rows")
	conns := fs.Int("connections", ingestor.DefaultConnections, "MQTT connections into the share group (client IDs CLIENT-ID-0, -1, ...)")
	var window uint16
	uintVar(fs, &window, "receive-maximum", 0, "unacknowledged messages per connection (0: two batches over the connections, at most 4096; keep it well below the broker's per-session store)")
	tsAge := fs.Duration("ts-max-age", ingestor.DefaultMaxTSAge, "a reading or status whose ts is further behind this host's clock is a dead letter (ts_out_of_range)")
	tsAhead := fs.Duration("ts-max-ahead", ingestor.DefaultMaxTSAhead, "a reading or status whose ts is further ahead of this host's clock is a dead letter (ts_out_of_range)")
	degradedAfter := fs.Duration("degraded-after", 0, fmt.Sprintf("report degraded once a commit has been outstanding this long (0: --batch-delay + %s)", warehouse.DefaultDegradedSlack))
	metricsAddr := fs.String("metrics-listen", "", "serve Prometheus /metrics on this address (e.g. 127.0.0.1:9101); empty: off")
	addrFile := addAddrFile(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	db, err := openWarehouse(ctx, c.dsn, &c)
	if err != nil {
		return err
	}
	defer db.Close()
	in, err := ingestor.New(ingestor.Config{
		Broker: c.broker, ClientID: *clientID, Username: *username, Password: *password,
		Batch:       warehouse.WriterConfig{MaxRows: *rows, MaxDelay: *delay, MaxBytes: *bytes, DegradedAfter: *degradedAfter},
		Connections: *conns, ReceiveMaximum: window,
		MaxTSAge: *tsAge, MaxTSAhead: *tsAhead,
		Logger: log,
	}, db)
	if err != nil {
		return err
	}
	metricsAt := ""
	if *metricsAddr != "" {
		var stopped <-chan struct{}
		if metricsAt, stopped, err = serveMetrics(ctx, *metricsAddr, in.Handler(), out); err != nil {
			return err
		}
		defer func() { <-stopped }()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- in.Run(ctx) }()
	select {
	case <-in.Ready():
		if err := writeAddrFile(*addrFile, map[string]string{"metrics": metricsAt}); err != nil {
			cancel()
			return errors.Join(err, <-ran)
		}
	case err := <-ran:
		return fmt.Errorf("ingest: %w", err)
	}
	if err := <-ran; err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	return nil
}

// addAddrFile adds --addr-file, how a parent process (`sentinel bench`)
// learns the ports a child picked, instead of reading its log.
func addAddrFile(fs *flag.FlagSet) *string {
	return fs.String("addr-file", "", "once ready (listening; the ingestor: subscribed too), write the listen addresses to this file, one `name host:port` line each (mqtt, tls, metrics; the warehouse: http)")
}

// writeAddrFile writes --addr-file, when given.
func writeAddrFile(path string, addrs map[string]string) error {
	if path == "" {
		return nil
	}
	if err := proc.WriteAddrFile(path, addrs); err != nil {
		return fmt.Errorf("--addr-file: %w", err)
	}
	return nil
}
