package analytics_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

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
		start := fixtureBase.Add(time.Duration(rng.IntN(15*60)) * time.Second)
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
			Firmware: "1.4.2", TargetFirmware: e.firmware, ReceivedAt: e.ts}
	}
	return rows
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
