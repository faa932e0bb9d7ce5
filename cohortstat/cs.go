// Package cohortstat holds the statistics of Sentinel's cohort breaker:
// anytime-valid confidence sequences for a failure proportion and for an
// event rate per device-hour, and the three rules that judge a rollout
// cohort with them (v2, the sequential test against a baseline; Wilson, the
// fixed-sample bound against an absolute threshold that the breaker used
// before; AWS-style, a raw percentage after a minimum count). It is a leaf
// module, importing only the standard library, so the recoverer (which
// acts on a verdict), analytics (which shows it) and the benchmarks (which
// measure the rules) share one implementation. Pure functions, no state,
// no clock.
//
// # Why confidence sequences
//
// The breaker looks at a cohort every few seconds for as long as a rollout
// lasts. A 95 % confidence interval is right 95 % of the time at one look
// fixed in advance; checked at every look, the chance that it is wrong at
// some look grows towards 1. A confidence sequence is a sequence of
// intervals that holds the true value at every look at once with
// probability 1-α (Howard, Ramdas, McAuliffe and Sekhon, "Time-uniform,
// nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2),
// 2021, 1055-1080; Lindon and Malek, "Anytime-valid inference for
// multinomial count data", NeurIPS 2022, which Netflix uses for canaries).
// The breaker can so look as often as it likes.
//
// The sequences here are the conjugate mixture martingales of Robbins
// ("Statistical methods related to the law of the iterated logarithm",
// Ann. Math. Statist. 41(5), 1970, 1397-1409; Howard et al. 2021, section
// 3): for a candidate value θ, M_n(θ) = ∫ L_n(θ')/L_n(θ) dπ(θ') is the
// likelihood of the data under the prior π over the likelihood under θ, a
// nonnegative martingale with mean 1 when θ is true. By Ville's
// inequality it ever reaches 1/α with probability at most α, so
// {θ : M_n(θ) < 1/α} is a (1-α) confidence sequence.
package cohortstat

import (
	"errors"
	"fmt"
	"math"
)

// ErrInput is wrapped by every error for counts or parameters that make no
// sense (negative counts, more failures than trials, α outside (0, 1)).
var ErrInput = errors.New("cohortstat: invalid input")

// BetaPrior is the mixing distribution of the proportion's confidence
// sequence, Beta(A, B). Its weight A+B is the sample size around which the
// sequence is tightest (Howard et al. 2021, section 3.4: a mixture is tuned
// to a time).
type BetaPrior struct{ A, B float64 }

// GammaPrior is the mixing distribution of the rate's confidence sequence,
// Gamma(Shape, Rate) over events per device-hour: mean Shape/Rate, and
// Rate is the exposure (device-hours) around which the sequence is tightest.
type GammaPrior struct{ Shape, Rate float64 }

// DefaultBetaPrior is the prior of the proportion's sequence: uniform,
// Beta(1, 1). A prior centred on a typical failure share (Beta(2, 8), mean
// 0.2) narrowed the interval by 6 % at a 12 % share but widened the lower
// side where a bad build sits: at α' = 0.01/64, 19 failures of 25 gave a
// lower bound of 0.248 against 0.317 for the uniform prior.
var DefaultBetaPrior = BetaPrior{A: 1, B: 1}

// DefaultGammaPrior is the prior of the rate's sequence: mean 0.5 events
// per device-hour, tightest around 2 device-hours of exposure per unit of
// shape, so a crash loop (tens of boots per device-hour) is seen within
// minutes while a healthy build's rare reboots stay inside the baseline's
// band.
var DefaultGammaPrior = GammaPrior{Shape: 1, Rate: 2}

// Interval is a two-sided bound on a proportion or a rate.
type Interval struct{ Low, High float64 }

// Contains reports whether x lies in the closed interval.
func (i Interval) Contains(x float64) bool { return x >= i.Low && x <= i.High }

// lnBeta is ln B(a, b) = lnΓ(a) + lnΓ(b) - lnΓ(a+b).
func lnBeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

// LogMixtureBinomial returns ln M_n(p), the beta-binomial mixture
// martingale after failures of trials at the candidate proportion p:
//
//	M_n(p) = B(A+x, B+n-x) / B(A, B) / (p^x (1-p)^(n-x))
//
// (Robbins 1970; Howard et al. 2021, section 3, the beta-binomial case).
// It is the evidence against p: at or above ln(1/α), p is outside the
// (1-α) confidence sequence.
func LogMixtureBinomial(failures, trials int64, p float64, prior BetaPrior) float64 {
	x, n := float64(failures), float64(trials)
	l := lnBeta(prior.A+x, prior.B+n-x) - lnBeta(prior.A, prior.B)
	if x > 0 {
		l -= x * math.Log(p)
	}
	if n-x > 0 {
		l -= (n - x) * math.Log1p(-p)
	}
	return l
}

// LogMixturePoisson returns ln M_t(λ), the gamma-Poisson mixture
// martingale after events over hours of exposure at the candidate rate λ
// per hour:
//
//	M_t(λ) = b^a Γ(a+N) / (Γ(a) (b+T)^(a+N)) / (λ^N e^(-λT))
//
// with prior Gamma(a, b) (Howard et al. 2021, section 3, the gamma-Poisson
// case). It is a nonnegative martingale with mean 1 when events arrive as a
// Poisson process of rate λ, and a supermartingale for counts less
// dispersed than Poisson.
func LogMixturePoisson(events, hours, lambda float64, prior GammaPrior) float64 {
	a, b := prior.Shape, prior.Rate
	lga, _ := math.Lgamma(a)
	lgaN, _ := math.Lgamma(a + events)
	l := a*math.Log(b) + lgaN - lga - (a+events)*math.Log(b+hours) + lambda*hours
	if events > 0 {
		l -= events * math.Log(lambda)
	}
	return l
}

// BinomialCS returns the (1-α) confidence sequence's interval for a
// failure proportion after failures of trials: every p with
// LogMixtureBinomial below ln(1/α). With no trials it is [0, 1].
func BinomialCS(failures, trials int64, alpha float64, prior BetaPrior) (Interval, error) {
	if err := checkBinomial(failures, trials, alpha, prior); err != nil {
		return Interval{}, err
	}
	if trials == 0 {
		return Interval{0, 1}, nil
	}
	thr := math.Log(1 / alpha)
	f := func(p float64) float64 { return LogMixtureBinomial(failures, trials, p, prior) - thr }
	hat := float64(failures) / float64(trials)
	// ln M is convex in p with its minimum at the sample proportion, where
	// it is at most 0 < thr... unless the prior disagrees with the data
	// hard; then the interval is empty around hat and we return the point.
	if f(hat) >= 0 {
		return Interval{hat, hat}, nil
	}
	iv := Interval{0, 1}
	if failures > 0 {
		iv.Low = bisect(f, 0, hat)
	}
	if failures < trials {
		iv.High = bisect(f, 1, hat)
	}
	return iv, nil
}

// PoissonCS returns the (1-α) confidence sequence's interval for an event
// rate per hour after events over hours of exposure: every λ with
// LogMixturePoisson below ln(1/α). With no exposure it is [0, +Inf).
func PoissonCS(events, hours, alpha float64, prior GammaPrior) (Interval, error) {
	switch {
	case events < 0 || hours < 0 || math.IsNaN(events) || math.IsNaN(hours):
		return Interval{}, fmt.Errorf("%w: %g events over %g hours", ErrInput, events, hours)
	case !(alpha > 0 && alpha < 1):
		return Interval{}, fmt.Errorf("%w: alpha %g outside (0, 1)", ErrInput, alpha)
	case !(prior.Shape > 0 && prior.Rate > 0):
		return Interval{}, fmt.Errorf("%w: gamma prior (%g, %g) needs positive parameters", ErrInput, prior.Shape, prior.Rate)
	}
	if hours == 0 {
		return Interval{0, math.Inf(1)}, nil
	}
	thr := math.Log(1 / alpha)
	f := func(l float64) float64 { return LogMixturePoisson(events, hours, l, prior) - thr }
	hat := events / hours
	if hat > 0 && f(hat) >= 0 {
		return Interval{hat, hat}, nil
	}
	iv := Interval{}
	if events > 0 {
		iv.Low = bisect(f, 0, hat)
	}
	hi := math.Max(2*hat, 1/hours)
	for f(hi) < 0 {
		hi *= 2
	}
	iv.High = bisect(f, hi, hat)
	return iv, nil
}

// bisect finds the root of f between out (f >= 0, or the domain's edge)
// and in (f < 0), to 1e-12 of the span.
func bisect(f func(float64) float64, out, in float64) float64 {
	for range 200 {
		mid := (out + in) / 2
		if mid == out || mid == in || math.Abs(out-in) < 1e-12*math.Max(1, math.Abs(in)) {
			break
		}
		if f(mid) >= 0 {
			out = mid
		} else {
			in = mid
		}
	}
	return (out + in) / 2
}

func checkBinomial(failures, trials int64, alpha float64, prior BetaPrior) error {
	switch {
	case trials < 0 || failures < 0 || failures > trials:
		return fmt.Errorf("%w: %d failures of %d trials", ErrInput, failures, trials)
	case !(alpha > 0 && alpha < 1):
		return fmt.Errorf("%w: alpha %g outside (0, 1)", ErrInput, alpha)
	case !(prior.A > 0 && prior.B > 0):
		return fmt.Errorf("%w: beta prior (%g, %g) needs positive parameters", ErrInput, prior.A, prior.B)
	}
	return nil
}

// WilsonLower is the lower bound of the one-sided Wilson score interval for
// failures of trials at normal quantile z (1.645 for 95 %): Wilson, "Probable
// inference, the law of succession, and statistical inference", JASA 22,
// 1927, 209-212. It is a fixed-sample bound, valid at one look; the breaker
// before v2 checked it at every look (migration 9), which is the
// repeated-looks problem v2 solves. Zero with no trials.
func WilsonLower(failures, trials int64, z float64) float64 {
	if trials == 0 {
		return 0
	}
	n := float64(trials)
	p := float64(failures) / n
	z2 := z * z
	return (p + z2/(2*n) - z*math.Sqrt(p*(1-p)/n+z2/(4*n*n))) / (1 + z2/n)
}
