package breaker

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sentinel-iot/sentinel/cohortstat"
	"github.com/sentinel-iot/sentinel/quantile"
)

// Interval95 is the two-sided 95 % Wilson score interval of x in n, for
// the false-halt rate's confidence interval.
func Interval95(x, n int) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	const z = 1.959964 // the normal distribution's 0.975 quantile
	return cohortstat.WilsonLower(int64(x), int64(n), z), 1 - cohortstat.WilsonLower(int64(n-x), int64(n), z)
}

// Detection summarises a bad-build scenario for one rule: how many
// trials halted the bad cohort, and the median failed devices and
// simulated minutes at the halt over those that did.
type Detection struct {
	Halted, Trials  int
	Failed, Minutes float64
	// Signals are the signals that decided, most common first.
	Signals []string
}

// Detect summarises outcomes.
func Detect(os []Outcome) Detection {
	d := Detection{Trials: len(os)}
	var failed, minutes []float64
	count := map[string]int{}
	for _, o := range os {
		if o.Bad != nil {
			d.Halted++
			failed = append(failed, float64(o.Bad.Failed))
			minutes = append(minutes, o.Bad.Minutes)
			count[o.Bad.Signal]++
		}
	}
	if d.Halted > 0 {
		d.Failed, d.Minutes = quantile.Nearest(failed, 0.5), quantile.Nearest(minutes, 0.5)
	}
	for s := range count {
		d.Signals = append(d.Signals, s)
	}
	slices.SortFunc(d.Signals, func(a, b string) int { return count[b] - count[a] })
	return d
}

// String prints the detection as "failed devices / minutes (halted of trials)".
func (d Detection) String() string {
	if d.Halted == 0 {
		return fmt.Sprintf("never (0/%d)", d.Trials)
	}
	s := fmt.Sprintf("%.0f dev / %.0f min (%d/%d)", d.Failed, d.Minutes, d.Halted, d.Trials)
	if len(d.Signals) > 0 && d.Signals[0] != cohortstat.SignalInstall {
		s += " on " + d.Signals[0]
	}
	return s
}

// FalseHalts counts the rollouts of os in which the rule halted a healthy
// cohort, and those in which it halted the healthy cohort of region.
func FalseHalts(os []Outcome, region string) (any, inRegion int) {
	for _, o := range os {
		if len(o.Others) > 0 {
			any++
		}
		for _, t := range o.Others {
			if t.Region == region {
				inRegion++
				break
			}
		}
	}
	return any, inRegion
}

// Write prints the results as two Markdown tables, one column per rule:
// false halts and time to detect, then the bad build in each region.
func Write(w io.Writer, rules []string, results []Result) error {
	var b strings.Builder
	row := func(cells ...string) { b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	head := append([]string{"scenario"}, rules...)
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = "---"
	}
	row(head...)
	row(sep...)
	var regions []Result
	for _, r := range results {
		s := r.Scenario
		switch {
		case s.BadRegion == "":
			cells := []string{fmt.Sprintf("false halts, %d healthy rollouts (95 %% CI)", s.Trials)}
			af := []string{"healthy af-south halted"}
			promoted := []string{"healthy cohorts promoted (of 8 per rollout)"}
			for _, name := range rules {
				n, inAf := FalseHalts(r.Outcomes[name], "af-south")
				lo, hi := Interval95(n, s.Trials)
				cells = append(cells, fmt.Sprintf("%d = %.1f %% (%.1f–%.1f %%)", n, 100*float64(n)/float64(s.Trials), 100*lo, 100*hi))
				af = append(af, fmt.Sprintf("%d / %d", inAf, s.Trials))
				p := 0
				for _, o := range r.Outcomes[name] {
					p += o.Promoted
				}
				promoted = append(promoted, fmt.Sprintf("%.1f", float64(p)/float64(s.Trials)))
			}
			row(cells...)
			row(af...)
			row(promoted...)
		case strings.HasPrefix(s.Name, "bad in "):
			regions = append(regions, r)
		default:
			cells := []string{s.Name + ": failed devices / minutes at the halt, median"}
			for _, name := range rules {
				cells = append(cells, Detect(r.Outcomes[name]).String())
			}
			row(cells...)
		}
	}
	if len(regions) > 0 {
		b.WriteString("\n")
		row(append([]string{"bad build (default factor) in"}, rules...)...)
		row(sep...)
		for _, r := range regions {
			cells := []string{r.Scenario.BadRegion}
			for _, name := range rules {
				d := Detect(r.Outcomes[name])
				n, _ := FalseHalts(r.Outcomes[name], "")
				c := d.String()
				if n > 0 {
					c += fmt.Sprintf(", %d with a healthy cohort halted", n)
				}
				cells = append(cells, c)
			}
			row(cells...)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
