package cohortstat

import (
	"fmt"
	"math"
)

// Verdict is a rule's judgement of a cohort.
type Verdict string

// The three verdicts.
const (
	// Continue means keep sampling: the evidence decides neither way yet.
	Continue Verdict = "continue"
	// Halt means the build is worse than its baseline by more than the
	// tolerance (v2), or over the absolute threshold (Wilson, AWS-style).
	Halt Verdict = "halt"
	// Promote means the build is shown not worse than its baseline by more
	// than the tolerance on every signal it has data for: a rollout
	// manager may start the next wave. Only v2 promotes.
	Promote Verdict = "promote"
)

// The signals a cohort is judged on, the names the advisory carries.
const (
	// SignalInstall is the share of settled devices whose update failed,
	// counting devices silent past their state's deadline as failed.
	SignalInstall = "install_failures"
	// SignalCrash is extra boots (crash loops) per device-hour on the build.
	SignalCrash = "crash_rate"
	// SignalDrain is battery percentage points lost per device-hour off
	// the charger.
	SignalDrain = "battery_drain"
	// SignalReporting is the share of devices gone quiet: updated devices
	// against the same region's devices not on the build.
	SignalReporting = "reporting"
)

// The rule names.
const (
	RuleV2     = "v2"
	RuleWilson = "wilson"
	RuleAWS    = "aws"
)

// Proportion is a count of devices and of those with the event.
type Proportion struct {
	// Trials is the devices counted.
	Trials int64 `json:"trials"`
	// Events is how many of them had the event (failed, went quiet).
	Events int64 `json:"events"`
}

// Rate is a count of events over an exposure in device-hours.
type Rate struct {
	// Events is the events counted (extra boots, battery points lost).
	Events float64 `json:"events"`
	// Hours is the device-hours observed.
	Hours float64 `json:"hours"`
}

// Sample is what a rule sees of one cohort and its baseline: the same
// region's previous firmware (or a held-back control share). A zero
// field is a signal without data, which v2 skips.
type Sample struct {
	Install, BaseInstall     Proportion
	Crash, BaseCrash         Rate
	Drain, BaseDrain         Rate
	Reporting, BaseReporting Proportion
}

// Evidence is one signal's numbers behind a verdict.
type Evidence struct {
	// Signal is one of the Signal constants.
	Signal string `json:"signal"`
	// Verdict is this signal's own verdict.
	Verdict Verdict `json:"verdict"`
	// Estimate is the cohort's observed proportion or rate.
	Estimate float64 `json:"estimate"`
	// Bound is the cohort's bound the verdict turned on: the lower bound
	// for a halt, the upper bound otherwise.
	Bound float64 `json:"bound"`
	// Limit is what Bound was compared with: the baseline's upper bound
	// plus the tolerance for a halt, the baseline's lower bound plus the
	// tolerance for a promote (v2); the threshold (Wilson, AWS-style).
	Limit float64 `json:"limit"`
	// Baseline is the baseline's observed proportion or rate (v2).
	Baseline float64 `json:"baseline"`
	// Sample is the cohort's devices (proportions) or device-hours (rates).
	Sample float64 `json:"sample"`
	// Events is the cohort's failures, quiet devices, boots or points lost.
	Events float64 `json:"events"`
	// BaselineSample and BaselineEvents are the same for the baseline.
	BaselineSample float64 `json:"baseline_sample"`
	BaselineEvents float64 `json:"baseline_events"`
}

// Result is a rule's verdict on a cohort and the evidence for it.
type Result struct {
	// Rule is the rule's name (RuleV2, RuleWilson, RuleAWS).
	Rule string `json:"rule"`
	// Verdict is the cohort's verdict.
	Verdict Verdict `json:"verdict"`
	// Signal is the signal that decided: the first halting one for a
	// halt, install failures otherwise.
	Signal string `json:"signal"`
	// Alpha is the error rate each install-failure bound was taken at,
	// after the split (V2.EachAlpha); release-health bounds take V2.HealthAlpha.
	Alpha float64 `json:"alpha"`
	// Evidence holds every signal judged, in the Signal constants' order.
	Evidence []Evidence `json:"evidence"`
}

// Decisive returns the evidence of the signal that decided.
func (r Result) Decisive() Evidence {
	for _, e := range r.Evidence {
		if e.Signal == r.Signal {
			return e
		}
	}
	return Evidence{Signal: r.Signal}
}

// Rule judges a cohort. active is how many cohorts are being judged at
// once (at least 1): v2 splits α across them.
type Rule interface {
	Name() string
	Judge(s Sample, active int) (Result, error)
}

// Defaults of V2, exported so that flags state them once.
const (
	// DefaultAlpha is the family-wise false-halt rate over a rollout's
	// cohorts: 1 %.
	DefaultAlpha = 0.01
	// DefaultDelta is the tolerance on failure and quiet shares, in
	// absolute terms: a build failing 5 points more than its baseline is
	// still acceptable. Smaller catches milder bad builds later to promote.
	DefaultDelta = 0.05
	// DefaultRateDelta is the relative tolerance on rates: a build may
	// crash or drain 50 % more than its baseline.
	DefaultRateDelta = 0.5
	// DefaultRateSlack is an absolute tolerance added to the rates' so a
	// baseline of almost no crashes does not make any reboot a halt: 0.05
	// events per device-hour (one extra boot per device in 20 hours).
	DefaultRateSlack = 0.05
	// DefaultMinSample is the fewest settled devices before v2 judges
	// install failures, and the fewest device-hours before it judges a
	// rate: 20.
	DefaultMinSample = 20
)

// InstallShare is the share of α v2 gives install failures, the signal
// every rollout has; the three release-health signals share the rest
// equally. The split is fixed, with data for a signal or not, so it does
// not depend on the data. An equal split over four left a 4x bad build in
// eu-north (a 160-device canary cohort) unhalted in 2 of 5
// `sentinel bench breaker` rollouts.
const InstallShare = 0.5

// healthSignals is how many release-health signals share 1-InstallShare.
const healthSignals = 3

// V2 is the anytime-valid rule: per signal, HALT when the cohort's lower
// bound is above the baseline's upper bound plus the tolerance, PROMOTE
// when every signal with data has the cohort's upper bound under the
// baseline's lower bound plus the tolerance. Each bound is a (1-α')
// confidence sequence at α' = α·share / (2 · active), share being
// InstallShare for install failures and (1-InstallShare)/3 for each
// release-health signal, so over all
// looks, signals, cohorts and both sides the chance of halting a cohort
// that is not worse by more than the tolerance is at most α (a union
// bound, Bonferroni). The caller latches a HALT: evidence that once
// crossed the line is not withdrawn when later devices dilute it.
type V2 struct {
	// Alpha is the family-wise error rate. Default DefaultAlpha.
	Alpha float64
	// Delta is the absolute tolerance on failure and quiet shares. Default
	// DefaultDelta; negative means zero.
	Delta float64
	// RateDelta is the relative tolerance on rates. Default DefaultRateDelta.
	RateDelta float64
	// RateSlack is the absolute tolerance on rates, per device-hour.
	// Default DefaultRateSlack.
	RateSlack float64
	// MinSample is the fewest devices (or device-hours) a signal needs
	// before it is judged. Default DefaultMinSample.
	MinSample int
	// Prior and RatePrior tune the sequences. Defaults DefaultBetaPrior
	// and DefaultGammaPrior.
	Prior     BetaPrior
	RatePrior GammaPrior
}

// WithDefaults returns v with its zero fields set to their defaults.
func (v V2) WithDefaults() V2 {
	v.Alpha = orDefault(v.Alpha, DefaultAlpha)
	v.Delta = max(orDefault(v.Delta, DefaultDelta), 0)
	v.RateDelta = orDefault(v.RateDelta, DefaultRateDelta)
	v.RateSlack = orDefault(v.RateSlack, DefaultRateSlack)
	v.MinSample = orDefault(v.MinSample, DefaultMinSample)
	v.Prior = orDefault(v.Prior, DefaultBetaPrior)
	v.RatePrior = orDefault(v.RatePrior, DefaultGammaPrior)
	return v
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Validate reports a V2 (after WithDefaults) that cannot work.
func (v V2) Validate() error {
	switch {
	case !(v.Alpha > 0 && v.Alpha < 1):
		return fmt.Errorf("%w: alpha %g outside (0, 1)", ErrInput, v.Alpha)
	case v.Delta >= 1:
		return fmt.Errorf("%w: delta %g is 1 or more: nothing could halt", ErrInput, v.Delta)
	case v.RateDelta < 0 || v.RateSlack < 0:
		return fmt.Errorf("%w: rate tolerances %g, %g must not be negative", ErrInput, v.RateDelta, v.RateSlack)
	case v.MinSample < 1:
		return fmt.Errorf("%w: minimum sample %d", ErrInput, v.MinSample)
	}
	return nil
}

// Name returns RuleV2.
func (V2) Name() string { return RuleV2 }

// EachAlpha is the error rate of each install-failure bound when active
// cohorts are judged; HealthAlpha that of each release-health bound.
func (v V2) EachAlpha(active int) float64 {
	return v.Alpha * InstallShare / float64(2*max(active, 1))
}

// HealthAlpha is the error rate of each release-health bound (crash rate,
// drain, reporting) when active cohorts are judged.
func (v V2) HealthAlpha(active int) float64 {
	return v.Alpha * (1 - InstallShare) / healthSignals / float64(2*max(active, 1))
}

// Judge returns the verdict on s with α split over active cohorts.
func (v V2) Judge(s Sample, active int) (Result, error) {
	v = v.WithDefaults()
	if err := v.Validate(); err != nil {
		return Result{}, err
	}
	a, ha := v.EachAlpha(active), v.HealthAlpha(active)
	res := Result{Rule: RuleV2, Alpha: a, Signal: SignalInstall}
	promote, halted := true, false
	note := func(e Evidence, err error) error {
		if err != nil {
			return err
		}
		res.Evidence = append(res.Evidence, e)
		switch e.Verdict {
		case Halt:
			if !halted {
				res.Signal = e.Signal
			}
			halted = true
		case Continue:
			promote = false
		}
		return nil
	}
	// Install failures are always judged; the other signals only when
	// there is data for them (a fleet whose devices send no boot count
	// has no crash rate), in the Signal constants' order.
	if err := note(v.proportion(SignalInstall, s.Install, s.BaseInstall, a)); err != nil {
		return Result{}, err
	}
	for _, r := range []struct {
		name string
		c, b Rate
	}{{SignalCrash, s.Crash, s.BaseCrash}, {SignalDrain, s.Drain, s.BaseDrain}} {
		if r.c.Hours == 0 && r.b.Hours == 0 {
			continue
		}
		if err := note(v.rate(r.name, r.c, r.b, ha)); err != nil {
			return Result{}, err
		}
	}
	if s.Reporting.Trials > 0 || s.BaseReporting.Trials > 0 {
		if err := note(v.proportion(SignalReporting, s.Reporting, s.BaseReporting, ha)); err != nil {
			return Result{}, err
		}
	}
	switch {
	case halted:
		res.Verdict = Halt
	case promote:
		res.Verdict = Promote
	default:
		res.Verdict = Continue
	}
	return res, nil
}

func (v V2) proportion(name string, c, b Proportion, a float64) (Evidence, error) {
	e := Evidence{Signal: name, Verdict: Continue, Sample: float64(c.Trials), Events: float64(c.Events),
		BaselineSample: float64(b.Trials), BaselineEvents: float64(b.Events)}
	ci, err := BinomialCS(c.Events, c.Trials, a, v.Prior)
	if err != nil {
		return e, fmt.Errorf("cohortstat: %s of the cohort: %w", name, err)
	}
	bi, err := BinomialCS(b.Events, b.Trials, a, v.Prior)
	if err != nil {
		return e, fmt.Errorf("cohortstat: %s of the baseline: %w", name, err)
	}
	e.Estimate, e.Baseline = ratio(float64(c.Events), float64(c.Trials)), ratio(float64(b.Events), float64(b.Trials))
	e.Bound, e.Limit = ci.High, bi.Low+v.Delta
	if c.Trials < int64(v.MinSample) || b.Trials == 0 {
		return e, nil
	}
	switch {
	case ci.Low > bi.High+v.Delta:
		e.Verdict, e.Bound, e.Limit = Halt, ci.Low, bi.High+v.Delta
	case ci.High <= bi.Low+v.Delta:
		e.Verdict = Promote
	}
	return e, nil
}

func (v V2) rate(name string, c, b Rate, a float64) (Evidence, error) {
	e := Evidence{Signal: name, Verdict: Continue, Sample: c.Hours, Events: c.Events,
		BaselineSample: b.Hours, BaselineEvents: b.Events}
	ci, err := PoissonCS(c.Events, c.Hours, a, v.RatePrior)
	if err != nil {
		return e, fmt.Errorf("cohortstat: %s of the cohort: %w", name, err)
	}
	bi, err := PoissonCS(b.Events, b.Hours, a, v.RatePrior)
	if err != nil {
		return e, fmt.Errorf("cohortstat: %s of the baseline: %w", name, err)
	}
	e.Estimate, e.Baseline = ratio(c.Events, c.Hours), ratio(b.Events, b.Hours)
	limit := func(x float64) float64 { return x*(1+v.RateDelta) + v.RateSlack }
	e.Bound, e.Limit = ci.High, limit(bi.Low)
	if c.Hours < float64(v.MinSample) || b.Hours == 0 {
		return e, nil
	}
	switch {
	case ci.Low > limit(bi.High):
		e.Verdict, e.Bound, e.Limit = Halt, ci.Low, limit(bi.High)
	case ci.High <= limit(bi.Low):
		e.Verdict = Promote
	}
	return e, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Defaults of Wilson and AWS, exported so that flags state them once.
const (
	// DefaultWilsonThreshold is the failure share the Wilson rule halts at
	// (migration 9's breaker): 0.5.
	DefaultWilsonThreshold = 0.5
	// DefaultWilsonZ is the normal quantile of its one-sided 95 % bound.
	DefaultWilsonZ = 1.645
	// DefaultAWSThresholdPct is the AWS-style rule's failure percentage,
	// the Wilson rule's threshold so the two differ only in the bound.
	DefaultAWSThresholdPct = 50
	// DefaultRawMinSample is both fixed rules' minimum settled devices
	// (migration 9's min_sample): 20.
	DefaultRawMinSample = 20
)

// Wilson is the breaker before v2 (migration 9): HALT when the one-sided
// Wilson lower bound of the settled failure share reaches Threshold with
// at least MinSample settled devices. It never promotes and sees only
// install outcomes.
type Wilson struct {
	// Threshold is the failure share to halt at. Default DefaultWilsonThreshold.
	Threshold float64
	// Z is the normal quantile of the bound. Default DefaultWilsonZ.
	Z float64
	// MinSample is the fewest settled devices. Default DefaultRawMinSample.
	MinSample int
}

// Name returns RuleWilson.
func (Wilson) Name() string { return RuleWilson }

// Judge returns Halt or Continue; active is ignored (the rule has no α split).
func (w Wilson) Judge(s Sample, _ int) (Result, error) {
	w.Threshold, w.Z = orDefault(w.Threshold, DefaultWilsonThreshold), orDefault(w.Z, DefaultWilsonZ)
	w.MinSample = orDefault(w.MinSample, DefaultRawMinSample)
	return fixed(RuleWilson, s.Install, w.MinSample, w.Threshold, func(c Proportion) (float64, bool) {
		lo := WilsonLower(c.Events, c.Trials, w.Z)
		return lo, lo >= w.Threshold
	})
}

// fixed is the Wilson and AWS-style rules' judgement: Halt when the cohort
// has at least min settled devices and over(c) says its bound is over the
// threshold.
func fixed(rule string, c Proportion, min int, threshold float64, over func(Proportion) (float64, bool)) (Result, error) {
	if c.Trials < 0 || c.Events < 0 || c.Events > c.Trials {
		return Result{}, fmt.Errorf("%w: %d failures of %d trials", ErrInput, c.Events, c.Trials)
	}
	bound, halt := over(c)
	e := Evidence{Signal: SignalInstall, Verdict: Continue, Estimate: ratio(float64(c.Events), float64(c.Trials)),
		Bound: bound, Limit: threshold, Sample: float64(c.Trials), Events: float64(c.Events)}
	if c.Trials >= int64(min) && halt {
		e.Verdict = Halt
	}
	return Result{Rule: rule, Verdict: e.Verdict, Signal: SignalInstall, Evidence: []Evidence{e}}, nil
}

// AWS is the rule of AWS IoT Jobs' abortConfig (AbortCriteria,
// https://docs.aws.amazon.com/iot/latest/apireference/API_AbortCriteria.html):
// HALT once at least MinExecuted devices have finished and the share of
// them that failed is at least ThresholdPct percent. Per cohort here (AWS
// judges a whole job). It never promotes and sees only install outcomes.
type AWS struct {
	// ThresholdPct is the failure percentage. Default DefaultAWSThresholdPct.
	ThresholdPct float64
	// MinExecuted is minNumberOfExecutedThings. Default DefaultRawMinSample.
	MinExecuted int
}

// Name returns RuleAWS.
func (AWS) Name() string { return RuleAWS }

// Judge returns Halt or Continue; active is ignored.
func (r AWS) Judge(s Sample, _ int) (Result, error) {
	r.ThresholdPct, r.MinExecuted = orDefault(r.ThresholdPct, DefaultAWSThresholdPct), orDefault(r.MinExecuted, DefaultRawMinSample)
	// Compared in percent, rounded as AWS takes two decimals, so 50 %
	// of 20 halts at exactly 10 failures.
	return fixed(RuleAWS, s.Install, r.MinExecuted, r.ThresholdPct/100, func(c Proportion) (float64, bool) {
		rate := ratio(float64(c.Events), float64(c.Trials))
		return rate, math.Round(rate*1e4)/100 >= r.ThresholdPct
	})
}
