package policy

import "github.com/sentinel-iot/sentinel/proto"

// Baseline reason codes: what the comparison controllers give as their
// reason, so their decisions are told apart from Decide's in the warehouse.
const (
	// ReasonBaselineRetry is a baseline's retry of any failure.
	ReasonBaselineRetry = "baseline_retry"
	// ReasonBaselineRollback is a baseline's rollback, without guards.
	ReasonBaselineRollback = "baseline_rollback"
	// ReasonBaselineGiveUp means a baseline spent its retries and stopped.
	ReasonBaselineGiveUp = "baseline_give_up"
	// ReasonObserveOnly means the controller only watches (no automation).
	ReasonObserveOnly = "observe_only"
)

// RetryOnly is the retry-count baseline, as AWS IoT Jobs retries: any
// failure is retried up to MaxRetries times, at once (no backoff), with no
// battery or signal guard and no rollback. It is here to be measured
// against Decide, never to run a fleet.
func RetryOnly(in Input, cfg Config) Decision {
	cfg = cfg.WithDefaults()
	switch {
	case !in.State.Failed() || in.CommandOpen:
		return none(ReasonObserveOnly)
	case in.Retries < cfg.MaxRetries:
		return Decision{Action: proto.ActionRetry, Reason: ReasonBaselineRetry}
	}
	return none(ReasonBaselineGiveUp)
}

// RetryThenRollback is the unguarded baseline: RetryOnly's retries, then
// (and at once for boot_failed) MaxRollbacks rollbacks whatever the
// battery. It is the naive controller the floor guard exists to beat.
func RetryThenRollback(in Input, cfg Config) Decision {
	cfg = cfg.WithDefaults()
	switch {
	case !in.State.Failed() || in.CommandOpen:
		return none(ReasonObserveOnly)
	case in.Rollbacks >= cfg.MaxRollbacks:
		return none(ReasonBaselineGiveUp)
	case in.State == proto.StateBootFailed || in.Retries >= cfg.MaxRetries:
		return Decision{Action: proto.ActionRollback, Reason: ReasonBaselineRollback}
	}
	return Decision{Action: proto.ActionRetry, Reason: ReasonBaselineRetry}
}

// Observe is the no-automation baseline: it decides nothing, ever.
func Observe(Input, Config) Decision { return none(ReasonObserveOnly) }
