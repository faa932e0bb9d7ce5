package analytics_test

import (
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/sentinel-iot/sentinel/analytics"
	"github.com/sentinel-iot/sentinel/analytics/internal/fixture"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// Local copies of the fixture's values with short field names keep the
// reference computations below easy to read.
type event struct {
	device, region, firmware, state string
	seq                             uint64
	ts                              time.Time
	commandID, action, outcome      string
	wave                            int
}

type decision struct {
	device, region, firmware, action, reason, commandID, state string
	seq                                                        uint64
	attempt                                                    int
	ts                                                         time.Time
}

var (
	fixtureBase  = fixture.Base
	failedStates = fixture.FailedStates
)

// load returns the fixture as the warehouse rows to insert and as the
// local values the references read.
func load() ([]event, []decision, []warehouse.StatusRow, []warehouse.DecisionRow, []warehouse.CommandRow) {
	fe, fd := fixture.Fleet()
	events := make([]event, len(fe))
	for i, e := range fe {
		events[i] = event{e.Device, e.Region, e.Firmware, e.State, e.Seq, e.TS, e.CommandID, e.Action, e.Outcome, e.Wave}
	}
	decisions := make([]decision, len(fd))
	for i, d := range fd {
		decisions[i] = decision{d.Device, d.Region, d.Firmware, d.Action, d.Reason, d.CommandID, d.State, d.Seq, d.Attempt, d.TS}
	}
	drows, crows := fixture.DecisionRows(fd)
	return events, decisions, fixture.StatusRows(fe), drows, crows
}

// acknowledgement is fixture.Event.Acknowledgement on the local copy: an
// event answering a defer or halt, or a command the device did not run,
// by re-reporting the state it is in.
func (e event) acknowledgement() bool {
	return fixture.Event{CommandID: e.commandID, Action: e.action, Outcome: e.outcome}.Acknowledgement()
}

// stateChanges leaves out acknowledgements: the events that count as
// state changes (and failure events) in the queries that count events.
func stateChanges(events []event) []event {
	var out []event
	for _, e := range events {
		if !e.acknowledgement() {
			out = append(out, e)
		}
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
