package recoverer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// AdvisoryTopic returns sentinel/rollout/<firmware>/halt, where the
// recoverer keeps a retained advisory while the cohort breaker holds a
// cohort of that firmware tripped. An empty retained message clears it; an
// operator who publishes one overrides the breaker for that firmware until
// the recoverer restarts.
func AdvisoryTopic(firmware string) string { return proto.RolloutRoot + "/" + firmware + "/halt" }

// advisoryFilter matches every advisory topic.
const advisoryFilter = proto.RolloutRoot + "/+/halt"

// Advisory is the retained halt advisory, JSON on AdvisoryTopic: which
// cohorts of a firmware the breaker tripped, and on what numbers.
type Advisory struct {
	// V is the message version, 1.
	V int `json:"v"`
	// Firmware is the rollout's target version.
	Firmware string `json:"firmware"`
	// TS is when the advisory was (re)published, RFC 3339 with milliseconds.
	TS string `json:"ts"`
	// Reason is why: "cohort_tripped".
	Reason string `json:"reason"`
	// Cohorts are the tripped regions of the firmware.
	Cohorts []CohortRate `json:"cohorts"`
}

// CohortRate is one row of the cohort_failure_rate view.
type CohortRate struct {
	// Firmware is the cohort's target firmware.
	Firmware string `json:"firmware"`
	// Region is the cohort's region.
	Region string `json:"region"`
	// Devices is how many devices of the cohort ended the update (failed,
	// updated or rolled back) in the window.
	Devices int `json:"devices"`
	// FailedDevices is how many of them failed at least once.
	FailedDevices int `json:"failed_devices"`
	// FailureRate is FailedDevices / Devices.
	FailureRate float64 `json:"failure_rate"`
	// Tripped is true when the cohort is over the threshold with enough sample.
	Tripped bool `json:"tripped"`
}

// queryCohorts runs the breaker's query: the warehouse's
// cohort_failure_rate view over the window ending now, judged over the
// devices whose update has ended (a device still downloading is neither a
// success nor a failure yet).
func queryCohorts(ctx context.Context, db *warehouse.DB, cfg Config, now time.Time) ([]CohortRate, error) {
	const layout = "2006-01-02 15:04:05.000"
	res, err := db.Query(ctx, `SELECT firmware, region, settled_devices, failed_devices, settled_failure_rate, breaker_tripped
FROM `+warehouse.ViewCohortFailureRate+`(since = {since:DateTime64(3, 'UTC')}, until = {until:DateTime64(3, 'UTC')},
	firmware = '', region = '', min_sample = {min_sample:UInt32}, threshold = {threshold:Float64})`,
		warehouse.WithParams(map[string]string{
			"since":      now.Add(-cfg.BreakerWindow).UTC().Format(layout),
			"until":      now.Add(time.Minute).UTC().Format(layout), // device clocks may run a little ahead
			"min_sample": strconv.Itoa(cfg.BreakerMinSample),
			"threshold":  strconv.FormatFloat(cfg.BreakerThreshold, 'g', -1, 64),
		}))
	if err != nil {
		return nil, fmt.Errorf("recoverer: cohort breaker query: %w", err)
	}
	out := make([]CohortRate, 0, len(res.Rows))
	for _, r := range res.Rows {
		c := CohortRate{Firmware: r[0], Region: r[1], Tripped: r[5] == "1" || r[5] == "true"}
		c.Devices, _ = strconv.Atoi(r[2])
		c.FailedDevices, _ = strconv.Atoi(r[3])
		c.FailureRate, _ = strconv.ParseFloat(r[4], 64)
		out = append(out, c)
	}
	return out, nil
}

// runBreaker queries the cohorts every BreakerInterval and hands the result
// to the tracker's loop until ctx ends.
func (r *Recoverer) runBreaker(ctx context.Context, results chan<- []CohortRate) {
	t := time.NewTicker(r.cfg.BreakerInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rates, err := queryCohorts(ctx, r.db, r.cfg, time.Now())
		r.stats.breakerRuns.Add(1)
		if err != nil {
			if ctx.Err() == nil {
				r.stats.breakerFailures.Add(1)
				r.log.Warn("cohort breaker query failed; keeping the last verdict", "err", err)
			}
			continue
		}
		select {
		case results <- rates:
		case <-ctx.Done():
			return
		}
	}
}

// breaker is the loop's view of the cohort breaker: what is tripped, what
// was advised, and which firmware an operator cleared by hand.
type breaker struct {
	clearBelow float64         // a tripped cohort clears under this failure rate
	advised    map[string]bool // firmware with an advisory out
	overridden map[string]bool // firmware an operator cleared
}

// newBreaker returns the loop's breaker. A cohort trips at threshold and
// clears only once its rate falls under half of it, so a cohort near the
// line does not flap as devices that are still updating join the window.
func newBreaker(threshold float64) *breaker {
	return &breaker{clearBelow: threshold / 2, advised: map[string]bool{}, overridden: map[string]bool{}}
}

// apply feeds one breaker result to the tracker and returns the decisions
// it caused and the advisories to publish (retained; an empty payload clears).
func (b *breaker) apply(t *tracker, rates []CohortRate, now time.Time) ([]output, []*paho.Publish) {
	var outs []output
	byFirmware := map[string][]CohortRate{}
	seen := map[string]bool{}
	for _, c := range rates {
		held := t.tripped[cohortKey(c.Firmware, c.Region)] && c.FailureRate >= b.clearBelow
		trip := (c.Tripped || held) && !b.overridden[c.Firmware]
		seen[cohortKey(c.Firmware, c.Region)] = true
		outs = append(outs, t.setCohort(c.Firmware, c.Region, trip, now)...)
		if trip {
			byFirmware[c.Firmware] = append(byFirmware[c.Firmware], c)
		}
	}
	// A cohort gone from the window has recovered (or left it): clear it.
	for key := range t.tripped {
		if !seen[key] {
			fw, region, _ := strings.Cut(key, "\x00")
			outs = append(outs, t.setCohort(fw, region, false, now)...)
		}
	}
	var pubs []*paho.Publish
	for fw, cs := range byFirmware {
		if b.advised[fw] {
			continue
		}
		b.advised[fw] = true
		payload, _ := json.Marshal(Advisory{V: 1, Firmware: fw, TS: now.UTC().Format(proto.TimeFormat), Reason: "cohort_tripped", Cohorts: cs})
		pubs = append(pubs, &paho.Publish{Topic: AdvisoryTopic(fw), QoS: 1, Retain: true, Payload: payload})
	}
	for fw := range b.advised {
		if len(byFirmware[fw]) == 0 {
			delete(b.advised, fw)
			pubs = append(pubs, &paho.Publish{Topic: AdvisoryTopic(fw), QoS: 1, Retain: true})
		}
	}
	return outs, pubs
}

// operatorClear handles an empty retained advisory: when it clears a
// firmware the breaker holds tripped, an operator overrode the breaker.
func (b *breaker) operatorClear(t *tracker, firmware string, now time.Time) []output {
	if !b.advised[firmware] {
		return nil // our own clear, echoed back, or nothing to clear
	}
	delete(b.advised, firmware)
	b.overridden[firmware] = true
	var outs []output
	for key := range t.tripped {
		if fw, region, _ := strings.Cut(key, "\x00"); fw == firmware {
			outs = append(outs, t.setCohort(fw, region, false, now)...)
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
