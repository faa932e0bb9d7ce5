package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sentinel-iot/sentinel/analytics"
	"github.com/sentinel-iot/sentinel/analytics/efficacy"
	"github.com/sentinel-iot/sentinel/analytics/report"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/chdb"
)

func cmdSetup(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("setup", "[flags]")
	dir := fs.String("dir", "", "install directory (default: the user cache, where sentinel finds it by itself)")
	npm := fs.String("npm", "npm", "npm client used to fetch the package")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path, err := chdb.Install(ctx, chdb.InstallOptions{Dir: *dir, NPM: *npm, Progress: out})
	if err != nil {
		return err
	}
	if *dir != "" {
		fmt.Fprintf(out, "set %s=%s so sentinel finds it\n", chdb.EnvLibPath, path)
	}
	return nil
}

// openWarehouse opens and migrates the warehouse named by dsn.
func openWarehouse(ctx context.Context, dsn string, c *common) (*warehouse.DB, error) {
	log, err := c.logger()
	if err != nil {
		return nil, err
	}
	db, err := warehouse.Open(ctx, dsn, warehouse.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func cmdSQL(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("sql", `[flags] "SELECT ..."`)
	var c common
	c.addDSN(fs)
	c.addLog(fs, "warn")
	format := fs.String("format", "table", "output: table, csv, tsv or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("sql takes one query, quoted; got %d arguments", fs.NArg())
	}
	db, err := openWarehouse(ctx, c.dsn, &c)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.Query(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	return writeResult(out, res, *format)
}

func cmdReport(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("report", "[flags] <name>|list|efficacy   or   sentinel report --html out.html")
	var c common
	c.addDSN(fs)
	c.addLog(fs, "warn")
	format := fs.String("format", "table", "output: table, csv, tsv or json")
	since := fs.String("since", "", "only events at or after this time: RFC 3339, a date, or a duration ago (24h)")
	until := fs.String("until", "", "only events before this time (same forms as --since)")
	var filter analytics.Filter
	fs.StringVar(&filter.Firmware, "firmware", "", "only rollouts to this target firmware")
	fs.StringVar(&filter.Region, "region", "", "only this region")
	fs.IntVar(&filter.Top, "top", analytics.DefaultTop, "rows per group in per-group lists (at least 1)")
	htmlOut := fs.String("html", "", "write the charts report, one self-contained HTML file, to this path")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var err error
	now := time.Now()
	if filter.Since, err = analytics.ParseTime(*since, now); err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	if filter.Until, err = analytics.ParseTime(*until, now); err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	if *htmlOut != "" && fs.NArg() == 0 {
		return writeHTMLReport(ctx, &c, filter, *htmlOut, out)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("report takes one query name, or list")
	}
	if fs.Arg(0) == "efficacy" {
		return reportEfficacy(ctx, &c, *format, out)
	}
	if fs.Arg(0) == "list" {
		qs, err := analytics.Queries()
		if err != nil {
			return err
		}
		for _, q := range qs {
			fmt.Fprintf(out, "%-24s %s\n", q.Name, q.Title)
		}
		fmt.Fprintf(out, "%-24s %s\n", "efficacy", "Each stored run's recovery efficacy against the simulator's ground truth")
		return nil
	}
	q, err := analytics.Get(fs.Arg(0))
	if err != nil {
		return err
	}
	// Zero means "the default" in a Filter; on the command line it is a
	// value, and --top 0 used to mean 5 without a word.
	if filter.Top < 1 {
		return fmt.Errorf("--top %d: must be at least 1", filter.Top)
	}
	if _, err := filter.Params(); err != nil {
		return err
	}
	db, err := openWarehouse(ctx, c.dsn, &c)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := analytics.Run(ctx, db, q.Name, filter)
	if err != nil {
		return err
	}
	if *format == "table" {
		fmt.Fprintf(out, "%s\n\n", q.Title)
		if len(res.Rows) == 0 && q.Empty != "" {
			_, err := fmt.Fprintf(out, "No rows: %s.\n", q.Empty)
			return err
		}
	}
	return writeResult(out, res, *format)
}

// writeResult prints res in the --format asked for.
func writeResult(out io.Writer, res *warehouse.Result, format string) error {
	switch format {
	case "table":
		return res.WriteTable(out)
	case "csv":
		return res.WriteDelimited(out, ',')
	case "tsv":
		return res.WriteDelimited(out, '\t')
	case "json":
		return res.WriteJSON(out)
	}
	return fmt.Errorf("--format %q: want table, csv, tsv or json", format)
}

// writeHTMLReport builds the charts report and writes it to path.
func writeHTMLReport(ctx context.Context, c *common, filter analytics.Filter, path string, out io.Writer) error {
	db, err := openWarehouse(ctx, c.dsn, c)
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := report.Build(ctx, db, filter)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	fmt.Fprintf(out, "wrote %s (%d KB, %d charts); open it in any browser, it fetches nothing\n", path, b.Len()/1024, len(r.Sections))
	return nil
}

// reportEfficacy scores every run whose ground truth the warehouse holds,
// with the policy's default battery guards as the safety envelope.
func reportEfficacy(ctx context.Context, c *common, format string, out io.Writer) error {
	db, err := openWarehouse(ctx, c.dsn, c)
	if err != nil {
		return err
	}
	defer db.Close()
	g := guards(policy.DefaultConfig())
	runs, scores, err := efficacy.ComputeAll(ctx, db, g)
	if err != nil {
		return err
	}
	switch format {
	case "json":
		return efficacy.WriteJSON(out, scores)
	case "table":
		fmt.Fprintf(out, "Efficacy against the simulator's ground truth (safety envelope: retry at %g %%, rollback at %g %%, or charging at %g %%)\n\n",
			g.RetryMinBattery, g.RollbackMinBattery, g.ChargingMinBattery)
		for _, r := range runs {
			fmt.Fprintf(out, "  %s: %s to %s\n", r.ID, r.Started.UTC().Format(time.DateTime), r.Ended.UTC().Format(time.DateTime))
		}
		fmt.Fprintln(out)
		return efficacy.WriteTable(out, scores)
	}
	return fmt.Errorf("report efficacy: --format %q: want table or json", format)
}
