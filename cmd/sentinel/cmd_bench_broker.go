package main

import (
	"context"
	"io"
	"strings"

	"github.com/sentinel-iot/sentinel/bench/fanin"
)

// cmdBenchBroker is `sentinel bench broker`: QoS 1 fan-in against
// Sentinel's broker and Mosquitto, each in a child process (bench/fanin
// says what it measures).
func cmdBenchBroker(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("bench broker", "[flags]")
	cfg := fanin.DefaultConfig()
	fs.Var(positiveInts(&cfg.Sizes), "devices", "comma-separated fleet sizes: device connections per run")
	fs.IntVar(&cfg.Messages, "messages", cfg.Messages, "messages per run, spread over its devices (at least one each)")
	fs.IntVar(&cfg.Window, "window", cfg.Window, "messages a device has awaiting PUBACK (1: a device sends its next reading once the last is acknowledged)")
	fs.IntVar(&cfg.PipelineConns, "pipeline-conns", cfg.PipelineConns, "the pipelined comparison: service-like connections (0: skip it)")
	fs.IntVar(&cfg.PipelineWindow, "pipeline-window", cfg.PipelineWindow, "the pipelined comparison: messages each connection has awaiting PUBACK")
	targets := fs.String("targets", strings.Join(cfg.Targets, ","), "brokers to run: durable, immediate, blocking, memory (Sentinel with --acks durable|immediate|blocking, or no store), mosquitto, mosquitto-persist")
	brokerArgs := fs.String("broker-args", strings.Join(cfg.BrokerArgs, " "), "extra flags for every `sentinel broker` child, space-separated")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "bound on each run's publishing and delivery")
	fs.IntVar(&cfg.DialParallel, "dial-parallel", cfg.DialParallel, "connections opened at once")
	fs.IntVar(&cfg.Repeat, "repeat", cfg.Repeat, "runs per broker and fleet size, interleaved across the brokers; the report shows each broker's median run (by msg/s) and the range")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the brokers' stores (default: a temporary directory, removed after)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.Targets, cfg.BrokerArgs = strings.Split(*targets, ","), strings.Fields(*brokerArgs)
	exe, dir, cleanup, err := benchPaths(cfg.Dir, "sentinel-bench-broker-")
	if err != nil {
		return err
	}
	defer cleanup()
	cfg.Exe, cfg.Dir = exe, dir
	return fanin.Run(ctx, cfg, out)
}
