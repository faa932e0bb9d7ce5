package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sentinel-iot/sentinel/bench/ingest"
)

// cmdBenchIngest is `sentinel bench ingest`: the ingestor end to end, a
// broker and an ingestor in child processes (bench/ingest says what it
// measures).
func cmdBenchIngest(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("bench ingest", "[flags]")
	cfg := ingest.DefaultConfig()
	fs.Var(positiveInts(&cfg.Rates), "rates", "offered msg/s, one step each, to find the knee (empty: skip)")
	fs.DurationVar(&cfg.Step, "step", cfg.Step, "length of each ladder step")
	fs.IntVar(&cfg.SustainRate, "sustain-rate", cfg.SustainRate, "offered msg/s of the sustained run (0: skip)")
	fs.DurationVar(&cfg.Sustain, "sustain", cfg.Sustain, "length of the sustained run")
	fs.IntVar(&cfg.Backlog, "backlog", cfg.Backlog, "messages queued while no ingestor runs, then drained (0: skip)")
	fs.IntVar(&cfg.Naive, "naive", cfg.Naive, "backlog drained by the naive one-row-per-message ingestor (0: skip)")
	fs.IntVar(&cfg.Devices, "devices", cfg.Devices, "simulated devices")
	fs.StringVar(&cfg.Publisher, "publisher", cfg.Publisher, "load generator: raw (broker/rawclient's buffered publishes, a window in flight per connection) or paho (autopaho, 64 goroutines per connection each awaiting its PUBACK)")
	fs.IntVar(&cfg.Publishers, "publishers", cfg.Publishers, "publisher MQTT connections (0: 4 raw, 8 paho)")
	fs.IntVar(&cfg.PubWindow, "pub-window", cfg.PubWindow, "raw publisher: messages in flight per connection, at most the broker's receive maximum")
	fs.IntVar(&cfg.Connections, "connections", cfg.Connections, "ingestor MQTT connections")
	fs.IntVar(&cfg.BatchRows, "batch-rows", cfg.BatchRows, "ingestor batch rows")
	fs.DurationVar(&cfg.BatchDelay, "batch-delay", cfg.BatchDelay, "ingestor batch delay")
	fs.StringVar(&cfg.Dir, "dir", "", "data directory (default: a temporary one, removed after)")
	fs.StringVar(&cfg.Profile, "profile", "", "write a 20 s CPU profile of the ingestor taken during the sustained run to this file")
	fs.StringVar(&cfg.BrokerProfile, "broker-profile", "", "write a CPU profile of the broker over every phase up to the loss check to this file")
	brokerArgs := fs.String("broker-args", "", "extra flags for the `sentinel broker` child, space-separated")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.BrokerArgs = strings.Fields(*brokerArgs)
	exe, dir, cleanup, err := benchPaths(cfg.Dir, "sentinel-bench-ingest-")
	if err != nil {
		return err
	}
	defer cleanup()
	cfg.Exe, cfg.Dir = exe, dir
	return ingest.Run(ctx, cfg, out)
}

// benchPaths returns the sentinel binary a bench's children run, and dir,
// or a temporary directory that cleanup removes when dir is empty.
func benchPaths(dir, tempPrefix string) (exe, d string, cleanup func(), err error) {
	exe, err = os.Executable()
	if err != nil {
		return "", "", nil, fmt.Errorf("find the sentinel binary for the bench's children: %w", err)
	}
	if dir != "" {
		return exe, dir, func() {}, nil
	}
	d, err = os.MkdirTemp("", tempPrefix)
	if err != nil {
		return "", "", nil, fmt.Errorf("bench: make a scratch directory: %w", err)
	}
	return exe, d, func() { os.RemoveAll(d) }, nil
}
