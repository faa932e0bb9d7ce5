package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/sentinel-iot/sentinel/broker"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// envName is the environment twin of a flag: --batch-rows is SENTINEL_BATCH_ROWS.
func envName(flagName string) string {
	return "SENTINEL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// newFlags returns a flag set whose usage lists each flag's environment twin.
func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: sentinel %s %s\n\nFlags (each also read from its SENTINEL_* variable):\n", name, synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(w, "  --%s  [%s]\n      %s%s\n", f.Name, envName(f.Name), f.Usage, def)
		})
	}
	return fs
}

// parseFlags parses args, then fills every flag not given on the command
// line from its environment twin. This is the one place Sentinel reads its
// configuration from the environment.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		// The flag package has printed the problem (or -h's usage) already.
		return errUsage
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, e)
			}
		}
	})
	return err
}

// common holds the flags most commands share.
type common struct {
	dsn        string
	broker     string
	logLevel   string
	cpuProfile string
}

func (c *common) addDSN(fs *flag.FlagSet) {
	fs.StringVar(&c.dsn, "dsn", warehouse.DefaultDSN, "warehouse: chdb:///dir (embedded), clickhouse://host:9000/db or http://host:8123/db")
}

func (c *common) addBroker(fs *flag.FlagSet) {
	fs.StringVar(&c.broker, "broker", "tcp://"+broker.DefaultAddr, "MQTT broker URL")
}

func (c *common) addCPUProfile(fs *flag.FlagSet) {
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
}

// startProfile starts the CPU profile --cpuprofile asked for; the returned
// function stops it (a no-op without one).
func (c *common) startProfile() (stop func(), err error) {
	if c.cpuProfile == "" {
		return func() {}, nil
	}
	return startCPUProfile(c.cpuProfile)
}

func (c *common) addLog(fs *flag.FlagSet, def string) {
	fs.StringVar(&c.logLevel, "log-level", def, "log level: debug, info, warn or error")
}

// logger returns a text logger on stderr at the chosen level.
func (c *common) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})), nil
}

// discard is a logger that drops everything.
func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// uintVar defines an unsigned flag of a config field's own width, so a
// value that does not fit is refused when parsed instead of wrapping.
func uintVar[T uint16 | uint32](fs *flag.FlagSet, p *T, name string, value T, usage string) {
	*p = value
	fs.Var(uintFlag[T]{p}, name, usage)
}

// uintFlag is the flag.Value of uintVar.
type uintFlag[T uint16 | uint32] struct{ p *T }

func (u uintFlag[T]) String() string {
	if u.p == nil {
		return "0"
	}
	return strconv.FormatUint(uint64(*u.p), 10)
}

func (u uintFlag[T]) Set(s string) error {
	limit := uint64(^T(0))
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > limit {
		return fmt.Errorf("want a whole number from 0 to %d", limit)
	}
	*u.p = T(v)
	return nil
}

// listFlag is a comma-separated list of numbers, as --waves and --rates
// take: parse reads one entry, blanks around it trimmed.
type listFlag[T int | float64] struct {
	vals  *[]T
	parse func(string) (T, error)
	// skipBlank drops empty entries instead of handing them to parse.
	skipBlank bool
}

func (l *listFlag[T]) String() string {
	if l.vals == nil {
		return ""
	}
	parts := make([]string, len(*l.vals))
	for i, v := range *l.vals {
		parts[i] = fmt.Sprint(v) // a float as strconv's 'g', -1
	}
	return strings.Join(parts, ",")
}

func (l *listFlag[T]) Set(s string) error {
	var out []T
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" && l.skipBlank {
			continue
		}
		v, err := l.parse(part)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	*l.vals = out
	return nil
}

// percentages binds a list of percentages (--waves) to vals.
func percentages(vals *[]float64) *listFlag[float64] {
	return &listFlag[float64]{vals: vals, parse: func(s string) (float64, error) {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a percentage", s)
		}
		return v, nil
	}}
}

// positiveInts binds a list of positive whole numbers (--rates, a bench's
// --devices) to vals; empty entries are skipped.
func positiveInts(vals *[]int) *listFlag[int] {
	return &listFlag[int]{vals: vals, skipBlank: true, parse: func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a positive number", s)
		}
		return n, nil
	}}
}
