package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/sentinel-iot/sentinel/analytics"
	"github.com/sentinel-iot/sentinel/analytics/efficacy"
	"github.com/sentinel-iot/sentinel/bench/inproc"
	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/simulator"
	"github.com/sentinel-iot/sentinel/warehouse"
)

func cmdRun(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("run", "[flags]")
	var c common
	c.addDSN(fs)
	c.addLog(fs, "warn")
	listen := fs.String("listen", broker.DefaultAddr, "MQTT listener for the embedded broker (port 0 picks a free one)")
	duration := fs.Duration("duration", 60*time.Second, "how long the fleet runs before the report (Ctrl-C ends it early)")
	var fleet simulator.Config
	addFleetFlags(fs, &fleet)
	controller := fs.String("controller", policy.SentinelController, "recovery controller: sentinel, or a baseline to compare it with (retry-then-rollback, retry-only, none)")
	baselines := fs.String("baselines", "retry-then-rollback,retry-only,none", "after the run, run these baselines on the same seeded fleet, each in a child process with a scratch embedded warehouse, and print the comparison (empty: none)")
	scoreJSON := fs.String("score-json", "", "also write the run's efficacy score to this file as JSON")
	wh := serverFlags{prefix: "warehouse-"}
	wh.add(fs, "", "serve the live warehouse over ClickHouse's HTTP interface on this address, e.g. 127.0.0.1:8123 (default: off)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fleet.RunFor = *duration // --horizon's time scale
	rc, err := controllerConfig(*controller)
	if err != nil {
		return err
	}
	baselineControllers, err := policy.ParseControllers(*baselines)
	if err != nil {
		return fmt.Errorf("--baselines: %w", err)
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
	fmt.Fprintf(out, "warehouse: %s\n", db.Engine())
	_, stopServer, err := wh.start(ctx, db, out, log)
	if err != nil {
		return err
	}
	defer stopServer()

	p, err := inproc.Start(ctx, db, inproc.Config{
		Listen:    *listen,
		Fleet:     fleet,
		Recoverer: rc,
		Logger:    log,
	})
	if err != nil {
		return fleetFlagError(err)
	}
	h, port, _ := net.SplitHostPort(p.Broker().Addr())
	fmt.Fprintf(out, "broker: %s (watch decisions: mosquitto_sub -V mqttv5 -h %s -p %s -u %s -P %s -t 'sentinel/recovery/#' -v)\n",
		p.Broker().URL(), h, port, inproc.OpsUser, p.Password(inproc.OpsUser))

	fleetCtx, stopFleet := context.WithTimeout(ctx, *duration)
	defer stopFleet()
	p.RunFleet(fleetCtx)
	showProgress(fleetCtx, out, p)
	fmt.Fprintln(out, "\nstopping the fleet; committing what is in flight...")
	stopFleet()
	if err := p.Drain(15 * time.Second); err != nil {
		fmt.Fprintln(out, "warning:", err)
	}
	shutdownErr := p.Shutdown()
	final := p.Status()
	fmt.Fprintf(out, "done: %d devices, %d messages published, %d rows stored, %d decisions, %d commands, %d dead letters\n\n",
		final.Devices, final.Published, final.Rows, final.Decisions, final.Commands, final.DeadLetters)

	// The report reads the warehouse, not the counters: what analysts see.
	reportCtx := context.WithoutCancel(ctx)
	run := p.Run(*controller)
	if err := inproc.StoreTruth(reportCtx, db, run, p.Fleet().GroundTruth()); err != nil {
		return fmt.Errorf("store the simulator's ground truth: %w", err)
	}
	if err := printReport(reportCtx, out, db); err != nil {
		return err
	}
	if err := printScore(reportCtx, out, db, run.ID); err != nil {
		return err
	}
	score, err := efficacy.Compute(reportCtx, db, run, guards(rc.Policy))
	if err != nil {
		return err
	}
	if *scoreJSON != "" {
		if err := efficacy.WriteScoreFile(*scoreJSON, score); err != nil {
			return err
		}
	}
	scores := []efficacy.Score{score}
	if len(baselineControllers) > 0 && ctx.Err() == nil {
		fmt.Fprintf(out, "\nBaselines: the same seeded fleet for %s under each, one child process and scratch warehouse each\n", *duration)
		bs, err := runBaselines(ctx, baselineControllers, args, out)
		if err != nil {
			fmt.Fprintln(out, "warning: baselines incomplete:", err)
		}
		scores = append(scores, bs...)
	}
	title := "Efficacy against the simulator's ground truth"
	fmt.Fprintf(out, "\n%s\n%s\n", title, strings.Repeat("=", len(title)))
	if err := efficacy.WriteTable(out, scores); err != nil {
		return err
	}
	return shutdownErr
}

// showProgress prints a status line every second until ctx ends: in place
// on a terminal, one line every 10 seconds otherwise (logs, CI).
func showProgress(ctx context.Context, out io.Writer, p *inproc.Pipeline) {
	tty := isTerminal(out)
	every := time.Second
	if !tty {
		every = 10 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var last inproc.Status
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s := p.Status()
		rate := float64(s.Published-last.Published) / every.Seconds()
		line := fmt.Sprintf("%4.0fs  devices %d/%d connected  %6.0f msg/s  rows %d  decisions %d  commands %d  dead letters %d",
			s.Elapsed.Seconds(), s.Connected, s.Devices, rate, s.Rows, s.Decisions, s.Commands, s.DeadLetters)
		if s.Degraded {
			line += "  WAREHOUSE DEGRADED (retrying)"
		}
		if tty {
			fmt.Fprintf(out, "\r%-120s", line)
		} else {
			fmt.Fprintln(out, line)
		}
		last = s
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// reportQueries are the library queries `sentinel run` prints, the
// ranking first, then what the controller did and where the fleet ended up.
var reportQueries = []string{"regional_ranking", "recovery_decisions", "command_outcomes", "fleet_final_states"}

func printReport(ctx context.Context, out io.Writer, db *warehouse.DB) error {
	for i, name := range reportQueries {
		q, err := analytics.Get(name)
		if err != nil {
			return err
		}
		res, err := analytics.Run(ctx, db, q.Name, analytics.Filter{})
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(out)
		}
		if err := printTable(out, q.Title, res); err != nil {
			return err
		}
	}
	return nil
}

// printScore scores the run against the simulator's ground truth: how
// each device ended, by what would have fixed it.
func printScore(ctx context.Context, out io.Writer, db *warehouse.DB, runID string) error {
	res, err := efficacy.Verdicts(ctx, db, runID)
	if err != nil {
		return err
	}
	fmt.Fprintln(out)
	return printTable(out, "Scored against the simulator's ground truth (run "+runID+")", res)
}

// printTable prints a titled, underlined table.
func printTable(out io.Writer, title string, res *warehouse.Result) error {
	fmt.Fprintf(out, "%s\n%s\n", title, strings.Repeat("=", len(title)))
	return res.WriteTable(out)
}
