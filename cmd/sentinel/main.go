// Command sentinel is the one binary of Sentinel: each subcommand wires the
// modules for one job (the whole pipeline in one process, or one service).
// Logic lives in the modules; this package parses flags and environment,
// builds components, starts them and waits for a signal.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, out io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "run broker, simulator, ingestor and recoverer in one process, then report", cmdRun},
		{"setup", "install the embedded ClickHouse engine (libchdb) into the user cache", cmdSetup},
		{"sql", "run a query against the warehouse and print the result", cmdSQL},
		{"report", "run a named analytics query (`report list` lists them)", cmdReport},
		{"broker", "run the MQTT broker", cmdBroker},
		{"warehouse", "serve the embedded warehouse over ClickHouse's HTTP interface", cmdWarehouse},
		{"simulate", "run the simulated fleet against an MQTT broker", cmdSimulate},
		{"ingest", "run the ingestor: MQTT telemetry and status into the warehouse", cmdIngest},
		{"recover", "run the recoverer: status in, guarded commands and audit out", cmdRecover},
		{"bench", "measure: `bench analytics`, `ingest`, `recover` or `broker` (`bench -h` says what each does)", cmdBench},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "sentinel:", err)
		}
		os.Exit(1)
	}
}

// errUsage means usage was already printed.
var errUsage = errors.New("usage")

func dispatch(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(out)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], out)
		}
	}
	usage(os.Stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprint(w, "Sentinel keeps an IoT fleet healthy through firmware rollouts.\n\nUsage: sentinel <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nEvery flag has an environment twin: --batch-rows is SENTINEL_BATCH_ROWS.\nRun `sentinel <command> -h` for a command's flags.\n")
}
