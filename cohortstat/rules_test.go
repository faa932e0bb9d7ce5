package cohortstat

import (
	"errors"
	"testing"
)

// TestV2 judges cohorts as a table: a bad build halts against its
// baseline wherever that baseline sits, a healthy build in a harsh region
// does not, a large healthy cohort promotes, and the release-health
// signals halt a build whose installs look fine.
func TestV2(t *testing.T) {
	base := Proportion{Trials: 2000, Events: 700} // af-south: 35 % for any build
	calm := Proportion{Trials: 2000, Events: 200} // eu-north: 10 %
	crashBase := Rate{Events: 10, Hours: 500}     // 0.02 extra boots per device-hour
	for _, c := range []struct {
		name   string
		s      Sample
		active int
		want   Verdict
		signal string
	}{
		{"too few settled", Sample{Install: Proportion{10, 9}, BaseInstall: calm}, 1, Continue, SignalInstall},
		{"harsh region, healthy build", Sample{Install: Proportion{300, 110}, BaseInstall: base}, 8, Continue, SignalInstall},
		{"harsh region, bad build", Sample{Install: Proportion{300, 210}, BaseInstall: base}, 8, Halt, SignalInstall},
		{"calm region, bad build at 4x", Sample{Install: Proportion{150, 60}, BaseInstall: calm}, 8, Halt, SignalInstall},
		{"calm region, slightly worse, inside delta", Sample{Install: Proportion{3000, 390}, BaseInstall: calm}, 8, Continue, SignalInstall},
		{"healthy and large: promote", Sample{Install: Proportion{8000, 800}, BaseInstall: Proportion{8000, 800}}, 1, Promote, SignalInstall},
		{"no baseline yet", Sample{Install: Proportion{300, 250}}, 1, Continue, SignalInstall},
		{"crash loop, installs fine", Sample{Install: Proportion{300, 30}, BaseInstall: calm,
			Crash: Rate{Events: 600, Hours: 50}, BaseCrash: crashBase}, 8, Halt, SignalCrash},
		{"drain three times as fast", Sample{Install: Proportion{300, 30}, BaseInstall: calm,
			Drain: Rate{Events: 1200, Hours: 200}, BaseDrain: Rate{Events: 1000, Hours: 500}}, 8, Halt, SignalDrain},
		{"goes quiet", Sample{Install: Proportion{300, 30}, BaseInstall: calm,
			Reporting: Proportion{300, 90}, BaseReporting: Proportion{2000, 40}}, 8, Halt, SignalReporting},
		{"crash data block a promote until there is enough", Sample{Install: Proportion{8000, 800}, BaseInstall: Proportion{8000, 800},
			Crash: Rate{Events: 0, Hours: 10}, BaseCrash: crashBase}, 1, Continue, SignalInstall},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := V2{}.Judge(c.s, c.active)
			if err != nil {
				t.Fatal(err)
			}
			if r.Verdict != c.want || r.Signal != c.signal {
				t.Fatalf("got %s on %s, want %s on %s: %+v", r.Verdict, r.Signal, c.want, c.signal, r)
			}
			d := r.Decisive()
			if c.want == Halt && !(d.Bound > d.Limit) {
				t.Errorf("halt with bound %g not above limit %g", d.Bound, d.Limit)
			}
			if r.Alpha != DefaultAlpha*InstallShare/float64(2*c.active) {
				t.Errorf("alpha %g", r.Alpha)
			}
		})
	}
}

// TestV2AlphaSplit checks that more active cohorts make each bound wider:
// a cohort that halts alone may need more evidence among 16.
func TestV2AlphaSplit(t *testing.T) {
	s := Sample{Install: Proportion{120, 42}, BaseInstall: Proportion{2000, 200}}
	one, _ := V2{}.Judge(s, 1)
	many, _ := V2{}.Judge(s, 16)
	lo1, _ := BinomialCS(42, 120, one.Alpha, DefaultBetaPrior)
	lo16, _ := BinomialCS(42, 120, many.Alpha, DefaultBetaPrior)
	if !(lo1.Low > lo16.Low) || one.Alpha != 16*many.Alpha {
		t.Fatalf("lower bound alone %g, among 16 %g (alpha %g, %g): the split did not widen it", lo1.Low, lo16.Low, one.Alpha, many.Alpha)
	}
	if one.Verdict != Halt || many.Verdict != Continue {
		t.Fatalf("alone %s, among 16 %s; want halt and continue", one.Verdict, many.Verdict)
	}
}

// TestV2Invalid checks that unusable parameters and counts are errors.
func TestV2Invalid(t *testing.T) {
	if _, err := (V2{Alpha: 2}).Judge(Sample{}, 1); !errors.Is(err, ErrInput) {
		t.Errorf("alpha 2: %v", err)
	}
	if _, err := (V2{}).Judge(Sample{Install: Proportion{3, 5}}, 1); !errors.Is(err, ErrInput) {
		t.Errorf("5 failures of 3: %v", err)
	}
}

// TestFixedRules checks the Wilson and AWS-style rules at their edges.
func TestFixedRules(t *testing.T) {
	for _, c := range []struct {
		name string
		rule Rule
		p    Proportion
		want Verdict
	}{
		{"wilson: 20 of 25 trips at 0.5", Wilson{}, Proportion{25, 20}, Halt},
		{"wilson: 15 of 25 does not", Wilson{}, Proportion{25, 15}, Continue},
		{"wilson: 9 of 10, too few", Wilson{}, Proportion{10, 9}, Continue},
		{"aws: 10 of 20 is 50 %", AWS{}, Proportion{20, 10}, Halt},
		{"aws: 9 of 20 is not", AWS{}, Proportion{20, 9}, Continue},
		{"aws: 19 of 19, too few", AWS{}, Proportion{19, 19}, Continue},
		{"aws: 10 % after 100", AWS{ThresholdPct: 10, MinExecuted: 100}, Proportion{100, 10}, Halt},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := c.rule.Judge(Sample{Install: c.p}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if r.Verdict != c.want || r.Rule != c.rule.Name() {
				t.Fatalf("got %+v, want %s", r, c.want)
			}
		})
	}
}
