package analytics_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	"github.com/sentinel-iot/sentinel/analytics"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// The fixture fleet: a deterministic set of status events the golden tests
// load into the embedded engine. Every expected result is computed from the
// same events by plain Go below, never by SQL, so a wrong window frame,
// partition or filter in a query shows up as a difference.

var (
	fixtureBase    = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	fixtureRegions = []string{"af-south", "ap-south", "eu-west", "sa-east", "us-east"}
	// Failure probability of one install attempt per region: the bias the
	// ranking and the z-score must find.
	regionFailure = map[string]float64{"af-south": 0.45, "ap-south": 0.3, "eu-west": 0.1, "sa-east": 0.2, "us-east": 0.15}
	failedStates  = map[string]bool{"download_failed": true, "verify_failed": true, "install_failed": true, "partial": true, "boot_failed": true}
)

type event struct {
	device, region, firmware, state string
	seq                             uint64
	ts                              time.Time
	// Set on events that report a command's result.
	commandID, action, outcome string
}

// decision is one row the recoverer would have stored, with the command it
// sent (if any) and the target firmware of that command.
type decision struct {
	device, region, firmware, action, reason, commandID string
	seq                                                 uint64
	attempt                                             int
	ts                                                  time.Time
}

// fixtureDecisions gives failing devices recovery histories: retries by
// attempt number with results (ok, failed, or none yet), and battery
// deferrals that end in a retry or are still waiting. Results are appended
// to events as status events carrying the command ID.
func fixtureDecisions(events []event) ([]event, []decision) {
	rng := rand.New(rand.NewPCG(3, 5))
	m, ids := byDevice(events)
	var decisions []decision
	for _, id := range ids {
		es := m[id]
		last := es[len(es)-1]
		if !failedStates[last.state] {
			continue
		}
		seq, at := last.seq, last.ts
		var dseq uint64
		decide := func(action, reason, cmd string, attempt int) {
			dseq++
			at = at.Add(time.Duration(20+rng.IntN(200)) * time.Second)
			decisions = append(decisions, decision{device: id, region: last.region, firmware: last.firmware, action: action,
				reason: reason, commandID: cmd, seq: dseq, attempt: attempt, ts: at})
		}
		result := func(cmd, action, outcome, state string) {
			seq++
			at = at.Add(time.Duration(5+rng.IntN(60)) * time.Second)
			events = append(events, event{device: id, region: last.region, firmware: last.firmware, state: state, seq: seq, ts: at,
				commandID: cmd, action: action, outcome: outcome})
		}
		if rng.IntN(3) == 0 { // low battery first: deferred, for a while or for good
			decide("defer", "battery_low", "", 0)
			decide("defer", "battery_low", "", 0)
			if rng.IntN(2) == 0 {
				continue // still waiting
			}
		}
		for attempt := 0; attempt < 3; attempt++ {
			cmd := fmt.Sprintf("c-%s-%d", id, attempt)
			decide("retry", "retryable_failure", cmd, attempt)
			switch r := rng.IntN(10); {
			case r < 5:
				result(cmd, "retry", "ok", "updated")
			case r < 9:
				result(cmd, "retry", "failed", "partial")
				continue
			}
			break // ok, or no result yet
		}
	}
	return events, decisions
}

// fixtureEvents walks 120 devices through rollouts with retries.
func fixtureEvents() []event {
	rng := rand.New(rand.NewPCG(7, 11))
	var out []event
	for d := 0; d < 120; d++ {
		region := fixtureRegions[d%len(fixtureRegions)]
		firmware := "1.5.0"
		if d%4 == 3 {
			firmware = "1.6.0"
		}
		dev := fmt.Sprintf("dev-%03d", d)
		start := fixtureBase.Add(time.Duration(rng.IntN(6*3600)) * time.Second)
		var seq uint64
		add := func(state string) {
			seq++
			out = append(out, event{device: dev, region: region, firmware: firmware, state: state, seq: seq,
				ts: start.Add(time.Duration(seq) * 17 * time.Second)})
		}
		add("idle")
		if d%10 == 9 {
			continue // never starts: not in the funnel or the rates
		}
		if d%13 == 0 { // goes quiet mid-update: stuck
			add("downloading")
			add("verifying")
			if d%26 == 0 {
				add("installing")
			}
			continue
		}
		for attempt := 0; attempt < 3; attempt++ {
			add("downloading")
			if rng.Float64() < regionFailure[region]/4 {
				add("download_failed")
			} else {
				add("verifying")
				if rng.Float64() < 0.05 {
					add("verify_failed")
				} else {
					add("installing")
					switch r := rng.Float64(); {
					case r < regionFailure[region]*0.6:
						add("partial")
					case r < regionFailure[region]*0.9:
						add("install_failed")
					case r < regionFailure[region]:
						add("rebooting")
						add("boot_failed")
					default:
						add("rebooting")
						add("updated")
					}
				}
			}
			if last := out[len(out)-1].state; last == "updated" || rng.Float64() < 0.3 {
				break
			}
		}
	}
	return out
}

func statusRows(events []event) []warehouse.StatusRow {
	rows := make([]warehouse.StatusRow, len(events))
	for i, e := range events {
		rows[i] = warehouse.StatusRow{DeviceID: e.device, Region: e.region, TS: e.ts, Seq: e.seq, State: e.state,
			Firmware: "1.4.2", TargetFirmware: e.firmware, ReceivedAt: e.ts,
			CommandID: e.commandID, Action: e.action, Outcome: e.outcome}
	}
	return rows
}

func decisionRows(ds []decision) ([]warehouse.DecisionRow, []warehouse.CommandRow) {
	var drows []warehouse.DecisionRow
	var crows []warehouse.CommandRow
	for _, d := range ds {
		drows = append(drows, warehouse.DecisionRow{DeviceID: d.device, Region: d.region, TS: d.ts, Seq: d.seq, Action: d.action,
			Reason: d.reason, CommandID: d.commandID, State: "partial", Firmware: "1.4.2", BatteryPct: 50, Attempt: uint16(d.attempt)})
		if d.commandID != "" {
			crows = append(crows, warehouse.CommandRow{CommandID: d.commandID, DeviceID: d.device, Region: d.region, TS: d.ts,
				Seq: d.seq, Action: d.action, TargetFirmware: d.firmware, Reason: d.reason})
		}
	}
	return drows, crows
}

// filterEvents applies the library's Filter semantics.
func filterEvents(events []event, since, until time.Time, firmware, region string) []event {
	var out []event
	for _, e := range events {
		if (!since.IsZero() && e.ts.Before(since)) || (!until.IsZero() && !e.ts.Before(until)) ||
			(firmware != "" && e.firmware != firmware) || (region != "" && e.region != region) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// filterDecisions applies the library's Filter semantics to decisions:
// time and region on the decision, firmware on its command's target.
func filterDecisions(ds []decision, f analytics.Filter) []decision {
	var out []decision
	for _, d := range ds {
		if (!f.Since.IsZero() && d.ts.Before(f.Since)) || (!f.Until.IsZero() && !d.ts.Before(f.Until)) ||
			(f.Firmware != "" && d.firmware != f.Firmware) || (f.Region != "" && d.region != f.Region) {
			continue
		}
		out = append(out, d)
	}
	return out
}

// byDevice groups events per device, in seq order.
func byDevice(events []event) (map[string][]event, []string) {
	m := map[string][]event{}
	for _, e := range events {
		m[e.device] = append(m[e.device], e)
	}
	ids := make([]string, 0, len(m))
	for id, es := range m {
		sort.Slice(es, func(i, j int) bool { return es[i].seq < es[j].seq })
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return m, ids
}

// Formatting as ClickHouse prints values.
func f64(x float64, digits int) string {
	p := math.Pow(10, float64(digits))
	return strconv.FormatFloat(math.RoundToEven(x*p)/p, 'f', -1, 64)
}
func u(n int) string        { return strconv.Itoa(n) }
func ts(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") }
func minute(t time.Time) string {
	return t.UTC().Truncate(time.Minute).Format("2006-01-02 15:04:05")
}
func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
