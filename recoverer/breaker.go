package recoverer

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/sentinel-iot/sentinel/cohortstat"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// AdvisoryTopic returns sentinel/rollout/<firmware>/halt, where the
// recoverer keeps a retained advisory while the cohort breaker holds a
// cohort of that firmware halted. An empty retained message clears it; an
// operator who publishes one overrides the breaker for that firmware until
// the recoverer restarts.
func AdvisoryTopic(firmware string) string { return proto.RolloutRoot + "/" + firmware + "/halt" }

// PromoteTopic returns sentinel/rollout/<firmware>/promote, where the
// recoverer keeps a retained advisory listing the cohorts of that firmware
// the v2 breaker found not worse than their baseline: a rollout manager
// may start their next wave.
func PromoteTopic(firmware string) string { return proto.RolloutRoot + "/" + firmware + "/promote" }

// advisoryFilter matches every halt advisory topic.
const advisoryFilter = proto.RolloutRoot + "/+/halt"

// The rules the breaker may judge by (Config.BreakerRule).
const (
	RuleV2     = cohortstat.RuleV2
	RuleWilson = cohortstat.RuleWilson
	RuleAWS    = cohortstat.RuleAWS
)

// Advisory is a retained advisory, JSON on AdvisoryTopic (verdict "halt")
// or PromoteTopic (verdict "promote"): every cohort of the firmware the
// breaker holds at that verdict, each with the rule that decided, the
// signal, the estimate, the bound, what the bound crossed and the sample.
// It is republished whenever that list changes, so it always lists them
// all.
type Advisory struct {
	// V is the message version, 2 (1 carried only the failure rate).
	V int `json:"v"`
	// Firmware is the rollout's target version.
	Firmware string `json:"firmware"`
	// TS is when the advisory was (re)published, RFC 3339 with milliseconds.
	TS string `json:"ts"`
	// Reason is "cohort_tripped" for a halt, "cohort_promoted" for a promote.
	Reason string `json:"reason"`
	// Verdict is "halt" or "promote".
	Verdict cohortstat.Verdict `json:"verdict"`
	// Cohorts are the firmware's cohorts at that verdict, by region.
	Cohorts []CohortVerdict `json:"cohorts"`
}

// CohortVerdict is one cohort's verdict with its numbers, as the advisory
// and breaker_verdicts carry it. The numbers are those of the look at
// which the verdict was reached: a halt is latched with the evidence that
// tripped it.
type CohortVerdict struct {
	// Firmware and Region name the cohort.
	Firmware string `json:"firmware"`
	Region   string `json:"region"`
	// Verdict is halt, promote or continue.
	Verdict cohortstat.Verdict `json:"verdict"`
	// Rule is the rule that judged (v2, wilson, aws).
	Rule string `json:"rule"`
	// Signal is the deciding signal (cohortstat.Signal*).
	Signal string `json:"signal"`
	// Estimate, Bound and Limit are the deciding signal's observed rate,
	// the cohort's bound and what it was compared with.
	Estimate float64 `json:"estimate"`
	Bound    float64 `json:"bound"`
	Limit    float64 `json:"limit"`
	// Baseline is the baseline's observed rate; BaselineFirmware its version.
	Baseline         float64 `json:"baseline"`
	BaselineFirmware string  `json:"baseline_firmware"`
	// Sample and Events are the cohort's devices (or device-hours) and its
	// failures (or events) for the deciding signal.
	Sample float64 `json:"sample"`
	Events float64 `json:"events"`
	// Devices, SettledDevices, FailedDevices and SilentDevices are the
	// cohort's install counts; failed and settled include the silent.
	Devices        int64 `json:"devices"`
	SettledDevices int64 `json:"settled_devices"`
	FailedDevices  int64 `json:"failed_devices"`
	SilentDevices  int64 `json:"silent_devices"`
	// Alpha is each bound's error rate after the split over Active cohorts.
	Alpha  float64 `json:"alpha"`
	Active int     `json:"active"`
	// Since is when the cohort reached the verdict.
	Since string `json:"since"`
	// Evidence is every signal judged.
	Evidence []cohortstat.Evidence `json:"evidence"`
}

// Counts is one row of the cohort_breaker_counts view: a cohort's
// cumulative install counts and release health.
type Counts struct {
	Firmware, Region, FromFirmware  string
	Devices, Settled, Failed, Quiet int64
	Silent, Reporting, Boots        int64
	LastEvent                       time.Time
	RunHours, DrainHours, Drain     float64
}

// queryCounts runs the breaker's query: the cohort_breaker_counts view
// over the lookback ending now, with the policy's state timeouts as the
// deadlines past which a silent device counts as failed.
func queryCounts(ctx context.Context, db *warehouse.DB, cfg Config, now time.Time) ([]Counts, error) {
	const layout = "2006-01-02 15:04:05.000"
	secs := func(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }
	res, err := db.Query(ctx, `SELECT firmware, region, from_firmware, devices, settled_devices, failed_devices, silent_devices,
	last_event, run_hours, boots, drain_hours, drain_points, reporting_devices, quiet_devices
FROM `+warehouse.ViewCohortBreakerCounts+`(since = {since:DateTime64(3, 'UTC')}, until = {until:DateTime64(3, 'UTC')},
	now = {now:DateTime64(3, 'UTC')}, dl_downloading = {dd:UInt32}, dl_verifying = {dv:UInt32},
	dl_installing = {di:UInt32}, dl_rebooting = {dr:UInt32}, quiet_s = {q:UInt32})`,
		warehouse.WithParams(map[string]string{
			"since": now.Add(-cfg.BreakerLookback).UTC().Format(layout),
			"until": now.Add(time.Minute).UTC().Format(layout), // device clocks may run a little ahead
			"now":   now.UTC().Format(layout),
			"dd":    secs(cfg.Policy.StateTimeout(proto.StateDownloading)),
			"dv":    secs(cfg.Policy.StateTimeout(proto.StateVerifying)),
			"di":    secs(cfg.Policy.StateTimeout(proto.StateInstalling)),
			"dr":    secs(cfg.Policy.StateTimeout(proto.StateRebooting)),
			"q":     secs(cfg.BreakerQuietAfter),
		}))
	if err != nil {
		return nil, fmt.Errorf("recoverer: cohort breaker query: %w", err)
	}
	out := make([]Counts, 0, len(res.Rows))
	i64 := func(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
	f64 := func(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }
	for _, r := range res.Rows {
		out = append(out, Counts{
			Firmware: r[0], Region: r[1], FromFirmware: r[2],
			Devices: i64(r[3]), Settled: i64(r[4]), Failed: i64(r[5]), Silent: i64(r[6]),
			LastEvent: chTime(r[7]), RunHours: f64(r[8]), Boots: i64(r[9]), DrainHours: f64(r[10]), Drain: f64(r[11]),
			Reporting: i64(r[12]), Quiet: i64(r[13]),
		})
	}
	return out, nil
}

// breakerShare bounds the share of the warehouse's time the breaker's
// query takes: after a query that took d, the next waits at least
// d * breakerShare, whatever BreakerInterval says, so a slow query on a
// loaded engine cannot starve the writers' inserts.
const breakerShare = 4

// runBreaker queries the cohorts every BreakerInterval (or slower, see
// breakerShare) and hands the result to the tracker's loop until ctx ends.
func (r *Recoverer) runBreaker(ctx context.Context, cfg Config, results chan<- []Counts) {
	t := time.NewTimer(cfg.BreakerInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		rows, err := queryCounts(ctx, r.db, cfg, start)
		t.Reset(max(cfg.BreakerInterval, breakerShare*time.Since(start)))
		r.stats.breakerRuns.Add(1)
		if err != nil {
			if ctx.Err() == nil {
				r.stats.breakerFailures.Add(1)
				r.log.Warn("cohort breaker query failed; keeping the last verdict", "err", err)
			}
			continue
		}
		select {
		case results <- rows:
		case <-ctx.Done():
			return
		}
	}
}

// sampleOf is what a rule sees of cohort c against its baseline b (the
// same region's row of the firmware c came from; zero if there is none).
func sampleOf(c, b Counts) cohortstat.Sample {
	return cohortstat.Sample{
		Install:       cohortstat.Proportion{Trials: c.Settled, Events: c.Failed},
		BaseInstall:   cohortstat.Proportion{Trials: b.Settled, Events: b.Failed},
		Crash:         cohortstat.Rate{Events: float64(c.Boots), Hours: c.RunHours},
		BaseCrash:     cohortstat.Rate{Events: float64(b.Boots), Hours: b.RunHours},
		Drain:         cohortstat.Rate{Events: c.Drain, Hours: c.DrainHours},
		BaseDrain:     cohortstat.Rate{Events: b.Drain, Hours: b.DrainHours},
		Reporting:     cohortstat.Proportion{Trials: c.Reporting, Events: c.Quiet},
		BaseReporting: cohortstat.Proportion{Trials: b.Reporting, Events: b.Quiet},
	}
}

// breaker is the loop's cohort breaker: the rule, every cohort's latched
// verdict, what the retained advisories say, and which firmware an
// operator cleared by hand. Only the tracker's goroutine touches it.
type breaker struct {
	rule       cohortstat.Rule
	fallback   cohortstat.Rule // for a v2 cohort without a baseline: Wilson
	lookback   time.Duration   // a halt older than this, absent from the counts, is forgotten
	log        *slog.Logger
	verdicts   map[string]CohortVerdict // cohortKey -> latched halt or promote
	advised    map[string]string        // topic -> signature of the retained advisory
	overridden map[string]bool          // firmware an operator cleared
}

// newBreaker returns the loop's breaker judging by rule.
func newBreaker(rule cohortstat.Rule, log *slog.Logger) *breaker {
	return &breaker{rule: rule, fallback: cohortstat.Wilson{}, lookback: DefaultBreakerLookback, log: log, verdicts: map[string]CohortVerdict{}, advised: map[string]string{}, overridden: map[string]bool{}}
}

// judged reports whether c is a cohort the breaker judges: devices are
// updating to a firmware other than the one they ran. A row of devices
// reinstalling their own version (a control share) or only running a
// firmware is a baseline, not a cohort.
func judged(c Counts) bool {
	return c.Devices > 0 && c.FromFirmware != "" && c.FromFirmware != c.Firmware
}

// apply judges every cohort of one breaker query and returns the decisions
// the verdicts caused, the advisories to publish (retained; an empty
// payload clears) and the verdict rows to store. A halt is latched: once
// the evidence crossed the line, devices that join later do not withdraw
// it; only an operator's clear, or the cohort leaving the lookback, does.
// A promote is latched too, but a later halt overrides it.
func (b *breaker) apply(t *tracker, rows []Counts, now time.Time) ([]output, []*paho.Publish, []warehouse.BreakerVerdictRow) {
	byKey := make(map[string]Counts, len(rows))
	active := 0
	for _, c := range rows {
		byKey[cohortKey(c.Firmware, c.Region)] = c
		if judged(c) {
			active++
		}
	}
	var outs []output
	var stored []warehouse.BreakerVerdictRow
	for _, c := range rows {
		if !judged(c) {
			continue
		}
		key := cohortKey(c.Firmware, c.Region)
		base := byKey[cohortKey(c.FromFirmware, c.Region)]
		rule := b.rule
		if rule.Name() == RuleV2 && base.Settled == 0 {
			// No record of the previous firmware in this region (a first
			// rollout, or a simulation without history): nothing to
			// compare with, so the cohort is judged on the absolute
			// Wilson rule instead, which the advisory names.
			rule = b.fallback
		}
		res, err := rule.Judge(sampleOf(c, base), active)
		if err != nil {
			b.log.Warn("cohort breaker cannot judge a cohort", "firmware", c.Firmware, "region", c.Region, "err", err)
			continue
		}
		prev, latched := b.verdicts[key]
		if b.overridden[c.Firmware] && res.Verdict == cohortstat.Halt {
			res.Verdict = cohortstat.Continue
		}
		switch {
		case latched && prev.Verdict == cohortstat.Halt:
		case res.Verdict == cohortstat.Halt || (res.Verdict == cohortstat.Promote && !latched):
			v := verdictOf(c, base.Firmware, res, active, now)
			b.verdicts[key] = v
			stored = append(stored, rowOf(v))
		}
		outs = append(outs, t.setCohort(c.Firmware, c.Region, b.verdicts[key].Verdict == cohortstat.Halt, now)...)
	}
	// A cohort gone from the lookback is over: forget its verdict. One
	// query result without it is not enough for a halt: the verdict
	// stays until it is older than the lookback itself, so a result that
	// lacks the cohort (a partial answer under load) cannot forget a trip.
	for key, v := range b.verdicts {
		if _, ok := byKey[key]; ok {
			continue
		}
		since, _ := time.Parse(proto.TimeFormat, v.Since)
		if v.Verdict != cohortstat.Halt || now.Sub(since) > b.lookback {
			delete(b.verdicts, key)
			continue
		}
		b.log.Warn("cohort breaker: a halted cohort is missing from the counts; keeping the halt", "firmware", v.Firmware, "region", v.Region)
	}
	for key := range t.tripped {
		if b.verdicts[key].Verdict != cohortstat.Halt {
			fw, region, _ := strings.Cut(key, "\x00")
			outs = append(outs, t.setCohort(fw, region, false, now)...)
		}
	}
	pubs := b.advisories(now, stored)
	return outs, pubs, stored
}

// verdictOf is c's verdict from res.
func verdictOf(c Counts, baseFirmware string, res cohortstat.Result, active int, now time.Time) CohortVerdict {
	d := res.Decisive()
	if baseFirmware == "" {
		baseFirmware = c.FromFirmware
	}
	return CohortVerdict{
		Firmware: c.Firmware, Region: c.Region, Verdict: res.Verdict, Rule: res.Rule, Signal: res.Signal,
		Estimate: d.Estimate, Bound: d.Bound, Limit: d.Limit, Baseline: d.Baseline, BaselineFirmware: baseFirmware,
		Sample: d.Sample, Events: d.Events,
		Devices: c.Devices, SettledDevices: c.Settled, FailedDevices: c.Failed, SilentDevices: c.Silent,
		Alpha: res.Alpha, Active: active, Since: now.UTC().Format(proto.TimeFormat), Evidence: res.Evidence,
	}
}

// rowOf is v's breaker_verdicts row.
func rowOf(v CohortVerdict) warehouse.BreakerVerdictRow {
	whole, _ := json.Marshal(v)
	since, _ := time.Parse(proto.TimeFormat, v.Since)
	var d cohortstat.Evidence
	for _, e := range v.Evidence {
		if e.Signal == v.Signal {
			d = e
		}
	}
	return warehouse.BreakerVerdictRow{
		TS: since, Firmware: v.Firmware, Region: v.Region, Rule: v.Rule, Verdict: string(v.Verdict), Signal: v.Signal,
		Estimate: v.Estimate, Bound: v.Bound, Limit: v.Limit, Baseline: v.Baseline, Sample: v.Sample, Events: v.Events,
		BaselineSample: d.BaselineSample, BaselineEvents: d.BaselineEvents,
		Alpha: v.Alpha, Active: uint16(min(v.Active, 65535)), Evidence: string(whole),
	}
}

// advisories returns the retained advisories whose content changed: per
// firmware, one on the halt topic listing every halted cohort (empty when
// none is left) and one on the promote topic listing every promoted one.
// The rows of this round whose cohort an advisory lists are marked
// advised.
func (b *breaker) advisories(now time.Time, rows []warehouse.BreakerVerdictRow) []*paho.Publish {
	lists := map[string][]CohortVerdict{} // topic -> cohorts
	for _, v := range b.verdicts {
		switch v.Verdict {
		case cohortstat.Halt:
			lists[AdvisoryTopic(v.Firmware)] = append(lists[AdvisoryTopic(v.Firmware)], v)
		case cohortstat.Promote:
			lists[PromoteTopic(v.Firmware)] = append(lists[PromoteTopic(v.Firmware)], v)
		}
	}
	var pubs []*paho.Publish
	for topic, cs := range lists {
		slices.SortFunc(cs, func(x, y CohortVerdict) int { return cmp.Compare(x.Region, y.Region) })
		sig := signature(cs)
		if b.advised[topic] == sig {
			continue
		}
		b.advised[topic] = sig
		a := Advisory{V: 2, Firmware: cs[0].Firmware, TS: now.UTC().Format(proto.TimeFormat), Verdict: cs[0].Verdict, Cohorts: cs}
		a.Reason = "cohort_tripped"
		if a.Verdict == cohortstat.Promote {
			a.Reason = "cohort_promoted"
		}
		payload, _ := json.Marshal(a)
		pubs = append(pubs, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: payload})
		for i := range rows {
			if (a.Verdict == cohortstat.Halt && topic == AdvisoryTopic(rows[i].Firmware) ||
				a.Verdict == cohortstat.Promote && topic == PromoteTopic(rows[i].Firmware)) && rows[i].Verdict == string(a.Verdict) {
				rows[i].Advised = true
			}
		}
	}
	for topic := range b.advised {
		if len(lists[topic]) == 0 {
			delete(b.advised, topic)
			pubs = append(pubs, &paho.Publish{Topic: topic, QoS: 1, Retain: true})
		}
	}
	slices.SortFunc(pubs, func(x, y *paho.Publish) int { return cmp.Compare(x.Topic, y.Topic) })
	return pubs
}

// signature names an advisory's content: which cohorts, at which verdict,
// since when. Equal signatures need no new advisory.
func signature(cs []CohortVerdict) string {
	var sb strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&sb, "%s/%s/%s/%s;", c.Firmware, c.Region, c.Verdict, c.Since)
	}
	return sb.String()
}

// restore takes the latched verdicts a previous run left in
// breaker_verdicts (each cohort's latest row), so a restarted recoverer
// neither trips a cohort again nor forgets a trip, and, since the
// advisories that run published list exactly those verdicts, publishes
// none again until a verdict changes. It marks halted cohorts tripped in
// t without deciding anything: their devices' decisions were taken.
func (b *breaker) restore(ctx context.Context, db *warehouse.DB, t *tracker, lookback time.Duration, now time.Time) (int, error) {
	res, err := db.Query(ctx, `SELECT argMax(evidence, ts) FROM `+warehouse.TableBreakerVerdicts+`
WHERE ts >= {since:DateTime64(3, 'UTC')}
GROUP BY firmware, region`, warehouse.WithParams(map[string]string{
		"since": now.Add(-lookback).UTC().Format("2006-01-02 15:04:05.000"),
	}))
	if err != nil {
		return 0, fmt.Errorf("recoverer: rebuild breaker verdicts: %w", err)
	}
	for _, r := range res.Rows {
		var v CohortVerdict
		if err := json.Unmarshal([]byte(r[0]), &v); err != nil {
			return 0, fmt.Errorf("recoverer: rebuild breaker verdicts: row %q: %w", r[0], err)
		}
		key := cohortKey(v.Firmware, v.Region)
		b.verdicts[key] = v
		if v.Verdict == cohortstat.Halt {
			t.tripped[key] = true
		}
	}
	// What the previous run's advisories said: the same lists.
	_ = b.advisories(now, nil)
	return len(res.Rows), nil
}

// operatorClear handles an empty retained advisory: when it clears a
// firmware the breaker holds halted, an operator overrode the breaker.
func (b *breaker) operatorClear(t *tracker, firmware string, now time.Time) []output {
	if _, ok := b.advised[AdvisoryTopic(firmware)]; !ok {
		return nil // our own clear, echoed back, or nothing to clear
	}
	b.log.Warn("cohort breaker: an empty retained advisory cleared the halt; standing down for the firmware", "firmware", firmware)
	delete(b.advised, AdvisoryTopic(firmware))
	b.overridden[firmware] = true
	var outs []output
	for key, v := range b.verdicts {
		if v.Firmware == firmware && v.Verdict == cohortstat.Halt {
			delete(b.verdicts, key)
			outs = append(outs, t.setCohort(v.Firmware, v.Region, false, now)...)
		}
	}
	return outs
}

// trippedList returns the tripped cohorts as "firmware/region", sorted.
func (t *tracker) trippedList() []string {
	out := make([]string, 0, len(t.tripped))
	for key := range t.tripped {
		fw, region, _ := strings.Cut(key, "\x00")
		out = append(out, fw+"/"+region)
	}
	slices.Sort(out)
	return out
}
