package analytics_test

import (
	"context"
	"math"
	"net"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/analytics"
	"github.com/sentinel-iot/sentinel/analytics/internal/fixture"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/httpserver"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// expected computes a query's full result, as text rows, from the fixture:
// every status event and every decision, to be filtered by f.
type expected func(events []event, decisions []decision, f analytics.Filter) [][]string

// goldenRefs returns every query's reference; stuck_devices reads the
// warehouse's per-state timeouts, as the query and the recoverer do.
func goldenRefs(timeouts map[string]time.Duration) map[string]expected {
	return map[string]expected{
		"regional_ranking":         onEvents(wantRegionalRanking),
		"rollout_funnel":           onEvents(wantRolloutFunnel),
		"failure_clusters":         onEvents(wantFailureClusters),
		"top_problem_devices":      onEvents(wantTopProblemDevices),
		"moving_failure_rate":      onEvents(wantMovingFailureRate),
		"anomalous_regions":        onEvents(wantAnomalousRegions),
		"time_to_recover":          onEvents(wantTimeToRecover),
		"stuck_devices":            onEvents(wantStuckDevices(timeouts)),
		"failure_hotspots":         onEvents(wantFailureHotspots),
		"cohort_failure_rate":      onEvents(wantCohortFailureRate(fixture.Verdicts())),
		"retry_success_by_attempt": wantRetrySuccess,
		"battery_deferrals":        onDecisions(wantBatteryDeferrals),
		"recovery_decisions":       onDecisions(wantRecoveryDecisions),
		"command_outcomes":         onEvents(wantCommandOutcomes),
		"fleet_final_states":       onEvents(wantFleetFinalStates),
	}
}

// onDecisions adapts a reference that needs only the filtered decisions.
func onDecisions(fn func([]event, []decision, analytics.Filter) [][]string) expected {
	return func(all []event, ds []decision, f analytics.Filter) [][]string {
		return fn(all, filterDecisions(ds, f), f)
	}
}

// onEvents adapts a reference that needs only the filtered status events.
func onEvents(fn func([]event, analytics.Filter) [][]string) expected {
	return func(all []event, _ []decision, f analytics.Filter) [][]string {
		return fn(filterEvents(all, f.Since, f.Until, f.Firmware, f.Region), f)
	}
}

func TestGolden(t *testing.T) {
	ctx := context.Background()
	db := warehousetest.Open(t)
	events, decisions, rows, drows, crows := load()
	// Keep redelivered duplicates on disk as they arrive (no background
	// merge may collapse them first), so queries must cope with them.
	for _, table := range []string{"status_events", "decisions", "commands"} {
		require.NoError(t, db.Exec(ctx, "SYSTEM STOP MERGES "+table))
	}
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableStatusEvents, rows))
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableDecisions, drows))
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableCommands, crows))
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableBreakerVerdicts, fixture.Verdicts()))
	// Redelivered events (a crash between commit and ack) change nothing.
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableStatusEvents, rows[:len(rows)/3]))
	require.NoError(t, warehouse.Insert(ctx, db, warehouse.TableDecisions, drows[:len(drows)/2]))
	raw, err := db.QueryInt(ctx, "SELECT count() FROM status_events")
	require.NoError(t, err)
	require.EqualValues(t, len(rows)+len(rows)/3, raw, "duplicates are physically there")

	// The same SQL text through clickhouse-go, the code path a ClickHouse
	// server is reached by: here over HTTP to the embedded engine served
	// by `sentinel warehouse` (warehouse/httpserver), in this process.
	viaServer := serveOverHTTP(t, db)
	golden := goldenRefs(stateTimeouts(t, db))
	// The fixture's edge cases are where the references say they are.
	var stuck []string
	for _, r := range golden["stuck_devices"](events, decisions, analytics.Filter{}) {
		stuck = append(stuck, r[1])
	}
	require.Subset(t, stuck, []string{"dev-120", "dev-121"}, "0.5 s past verifying's and rebooting's timeouts")
	require.NotContains(t, stuck, "dev-122", "0.5 s short of installing's")
	gap := false // a quiet minute inside a 5-minute moving window
	moving := golden["moving_failure_rate"](events, decisions, analytics.Filter{})
	for i := 1; i < len(moving); i++ {
		a, _ := time.Parse(time.DateTime, moving[i-1][1])
		b, _ := time.Parse(time.DateTime, moving[i][1])
		gap = gap || (moving[i-1][0] == moving[i][0] && b.Sub(a) > time.Minute && b.Sub(a) < 5*time.Minute)
	}
	require.True(t, gap, "the fixture has a minute without events inside a moving window")
	tripped := map[string]string{} // region of 1.7.0 -> settled rate, tripped
	for _, r := range golden["cohort_failure_rate"](events, decisions, analytics.Filter{}) {
		if r[0] == "1.7.0" {
			tripped[r[1]] = r[5] + " " + r[13]
		}
	}
	require.Equal(t, map[string]string{"sa-east": "0.6667 0", "eu-west": "0.3333 1"}, tripped,
		"tripped is the recoverer's verdict, not a threshold on the rate: sa-east is over the Wilson line and the old 0.25, eu-west under both")

	filters := []struct {
		name string
		f    analytics.Filter
	}{
		{"everything", analytics.Filter{}},
		{"time window", analytics.Filter{Since: fixtureBase.Add(70 * time.Minute), Until: fixtureBase.Add(200 * time.Minute)}},
		{"small cohorts trip", analytics.Filter{MinSample: 5, Threshold: 0.3}},
		{"one firmware", analytics.Filter{Firmware: "1.6.0"}},
		{"one region, top 3", analytics.Filter{Region: "ap-south", Top: 3}},
		{"no match", analytics.Filter{Region: "nowhere"}},
		{"SQL-like text is only a value", analytics.Filter{Region: "eu-west' OR '1'='1"}},
	}
	qs, err := analytics.Queries()
	require.NoError(t, err)
	for _, q := range qs {
		want, ok := golden[q.Name]
		if !ok {
			continue
		}
		for _, fl := range filters {
			t.Run(q.Name+"/"+fl.name, func(t *testing.T) {
				res, err := analytics.Run(ctx, db, q.Name, fl.f)
				require.NoError(t, err)
				exp := want(events, decisions, fl.f)
				if fl.name == "everything" {
					require.NotEmpty(t, exp, "the fixture must exercise %s", q.Name)
				}
				remote, err := analytics.Run(ctx, viaServer, q.Name, fl.f)
				require.NoError(t, err, "through clickhouse-go")
				if len(exp) == 0 {
					require.Empty(t, res.Rows)
					require.Empty(t, remote.Rows)
					return
				}
				require.Equal(t, exp, res.Rows)
				require.Equal(t, exp, remote.Rows, "through clickhouse-go")
			})
		}
	}
	// Every query in the library has a golden test.
	for _, q := range qs {
		_, ok := golden[q.Name]
		require.True(t, ok, "query %s has no golden test", q.Name)
	}
}

func wantRegionalRanking(events []event, _ analytics.Filter) [][]string {
	type key struct{ fw, region string }
	type dev struct{ partial, failed bool }
	devs := map[key]map[string]*dev{}
	for _, e := range events {
		if e.state == "idle" || e.state == "offline" {
			continue
		}
		k := key{e.firmware, e.region}
		if devs[k] == nil {
			devs[k] = map[string]*dev{}
		}
		d := devs[k][e.device]
		if d == nil {
			d = &dev{}
			devs[k][e.device] = d
		}
		d.partial = d.partial || e.state == "partial"
		d.failed = d.failed || failedStates[e.state]
	}
	type rate struct {
		k                        key
		devices, partial, failed int
		rate                     float64
	}
	var rates []rate
	for k, ds := range devs {
		r := rate{k: k, devices: len(ds)}
		for _, d := range ds {
			if d.partial {
				r.partial++
			}
			if d.failed {
				r.failed++
			}
		}
		r.rate = math.RoundToEven(float64(r.partial)/float64(r.devices)*1e4) / 1e4
		rates = append(rates, r)
	}
	rank := func(r rate) int {
		n := 1
		for _, o := range rates {
			if o.k.fw == r.k.fw && o.rate > r.rate {
				n++
			}
		}
		return n
	}
	sort.Slice(rates, func(i, j int) bool {
		a, b := rates[i], rates[j]
		if a.k.fw != b.k.fw {
			return a.k.fw < b.k.fw
		}
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		return a.k.region < b.k.region
	})
	var out [][]string
	for _, r := range rates {
		out = append(out, []string{r.k.fw, u(rank(r)), r.k.region, u(r.devices), u(r.partial), u(r.failed), f64(r.rate, 4)})
	}
	return out
}

func wantRolloutFunnel(events []event, _ analytics.Filter) [][]string {
	stages := []struct {
		name   string
		states map[string]bool
	}{
		{"started", nil},
		{"downloaded", set("verifying", "installing", "rebooting", "updated", "verify_failed", "install_failed", "partial", "boot_failed")},
		{"verified", set("installing", "rebooting", "updated", "install_failed", "partial", "boot_failed")},
		{"installed", set("rebooting", "updated", "partial", "boot_failed")},
		{"updated", set("updated")},
	}
	type key struct{ fw, dev string }
	type cohort struct {
		fw   string
		wave int
	}
	reached := map[key][]bool{}
	wave := map[key]int{}
	for _, e := range events {
		k := key{e.firmware, e.device}
		if reached[k] == nil {
			reached[k] = make([]bool, len(stages))
		}
		wave[k] = max(wave[k], e.wave)
		for i, s := range stages {
			if (s.states == nil && e.state != "idle" && e.state != "offline") || s.states[e.state] {
				reached[k][i] = true
			}
		}
	}
	counts := map[cohort][]int{}
	for k, r := range reached {
		if !r[0] {
			continue
		}
		c := cohort{k.fw, wave[k]}
		if counts[c] == nil {
			counts[c] = make([]int, len(stages))
		}
		for i, ok := range r {
			if ok {
				counts[c][i]++
			}
		}
	}
	cohorts := make([]cohort, 0, len(counts))
	for c := range counts {
		cohorts = append(cohorts, c)
	}
	sort.Slice(cohorts, func(i, j int) bool {
		if cohorts[i].fw != cohorts[j].fw {
			return cohorts[i].fw < cohorts[j].fw
		}
		return cohorts[i].wave < cohorts[j].wave
	})
	var out [][]string
	for _, co := range cohorts {
		c := counts[co]
		for i, s := range stages {
			prev := c[i]
			if i > 0 {
				prev = c[i-1]
			}
			out = append(out, []string{co.fw, u(co.wave), u(i + 1), s.name, u(c[i]),
				f64(float64(c[i])/float64(c[0]), 4), f64(float64(c[i])/float64(prev), 4)})
		}
	}
	return out
}

func wantFailureClusters(events []event, _ analytics.Filter) [][]string {
	events = stateChanges(events)
	m, ids := byDevice(events)
	type row struct {
		region, dev, fw             string
		episodes, failures, longest int
		first, last                 time.Time
	}
	var rows []row
	for _, id := range ids {
		es := m[id]
		r := row{region: es[0].region, dev: id, fw: es[0].firmware}
		run := 0
		for i, e := range es {
			if !failedStates[e.state] {
				run = 0
				continue
			}
			if i == 0 || !failedStates[es[i-1].state] {
				r.episodes++
			}
			run++
			r.failures++
			r.longest = max(r.longest, run)
			if r.first.IsZero() {
				r.first = e.ts
			}
			r.last = e.ts
		}
		if r.episodes >= 2 {
			rows = append(rows, r)
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.episodes != b.episodes {
			return a.episodes > b.episodes
		}
		if a.failures != b.failures {
			return a.failures > b.failures
		}
		if a.region != b.region {
			return a.region < b.region
		}
		return a.dev < b.dev
	})
	var out [][]string
	for _, r := range rows {
		out = append(out, []string{r.region, r.dev, r.fw, u(r.episodes), u(r.failures), u(r.longest), ts(r.first), ts(r.last)})
	}
	return out
}

func wantTopProblemDevices(events []event, f analytics.Filter) [][]string {
	events = stateChanges(events)
	top := f.Top
	if top == 0 {
		top = 5
	}
	m, ids := byDevice(events)
	type row struct {
		region, dev, current string
		failures             int
		last                 time.Time
	}
	perRegion := map[string][]row{}
	for _, id := range ids {
		es := m[id]
		r := row{region: es[0].region, dev: id, current: es[len(es)-1].state}
		for _, e := range es {
			if failedStates[e.state] {
				r.failures++
				if e.ts.After(r.last) {
					r.last = e.ts
				}
			}
		}
		if r.failures > 0 {
			perRegion[r.region] = append(perRegion[r.region], r)
		}
	}
	var out [][]string
	for _, region := range sortedKeys(perRegion) {
		rs := perRegion[region]
		sort.Slice(rs, func(i, j int) bool {
			a, b := rs[i], rs[j]
			if a.failures != b.failures {
				return a.failures > b.failures
			}
			if !a.last.Equal(b.last) {
				return a.last.After(b.last)
			}
			return a.dev < b.dev
		})
		for i, r := range rs {
			if i == top {
				break
			}
			out = append(out, []string{region, u(i + 1), r.dev, u(r.failures), ts(r.last), r.current})
		}
	}
	return out
}

func wantMovingFailureRate(events []event, _ analytics.Filter) [][]string {
	events = stateChanges(events)
	type bucket struct{ ota, failures int }
	per := map[string]map[time.Time]*bucket{}
	for _, e := range events {
		if per[e.firmware] == nil {
			per[e.firmware] = map[time.Time]*bucket{}
		}
		m := e.ts.Truncate(time.Minute)
		b := per[e.firmware][m]
		if b == nil {
			b = &bucket{}
			per[e.firmware][m] = b
		}
		if e.state != "idle" && e.state != "offline" {
			b.ota++
		}
		if failedStates[e.state] {
			b.failures++
		}
	}
	var out [][]string
	for _, fw := range sortedKeys(per) {
		var minutes []time.Time
		for m, b := range per[fw] {
			if b.ota > 0 {
				minutes = append(minutes, m)
			}
		}
		sort.Slice(minutes, func(i, j int) bool { return minutes[i].Before(minutes[j]) })
		for _, m := range minutes {
			b := per[fw][m]
			var so, sf int // over the five minutes of time ending at m, quiet ones too
			for back := range 5 {
				if p := per[fw][m.Add(-time.Duration(back)*time.Minute)]; p != nil {
					so += p.ota
					sf += p.failures
				}
			}
			out = append(out, []string{fw, minute(m), u(b.ota), u(b.failures),
				f64(float64(b.failures)/float64(b.ota), 4), f64(float64(sf)/float64(so), 4)})
		}
	}
	return out
}

func wantAnomalousRegions(events []event, _ analytics.Filter) [][]string {
	type row struct {
		k               cohortKey
		devices, failed int
		rate, z         float64
	}
	perFW := map[string][]*row{}
	for k, c := range cohortCounts(events) {
		r := &row{k: k, devices: c.devices, failed: c.failed, rate: float64(c.failed) / float64(c.devices)}
		perFW[k.fw] = append(perFW[k.fw], r)
	}
	var out [][]string
	for _, fw := range sortedKeys(perFW) {
		rs := perFW[fw]
		var mean, sd float64
		for _, r := range rs {
			mean += r.rate
		}
		mean /= float64(len(rs))
		for _, r := range rs {
			sd += (r.rate - mean) * (r.rate - mean)
		}
		sd = math.Sqrt(sd / float64(len(rs)))
		for _, r := range rs {
			if sd > 0 {
				r.z = (r.rate - mean) / sd
			}
		}
		sort.Slice(rs, func(i, j int) bool {
			zi, zj := math.RoundToEven(rs[i].z*100), math.RoundToEven(rs[j].z*100)
			if zi != zj {
				return zi > zj
			}
			return rs[i].k.region < rs[j].k.region
		})
		for _, r := range rs {
			out = append(out, []string{fw, r.k.region, u(r.devices), u(r.failed), f64(r.rate, 4), f64(mean, 4), f64(r.z, 2), b01(r.z >= 1.5)})
		}
	}
	return out
}

func set(states ...string) map[string]bool {
	m := map[string]bool{}
	for _, s := range states {
		m[s] = true
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func wantTimeToRecover(events []event, _ analytics.Filter) [][]string {
	events = stateChanges(events)
	m, ids := byDevice(events)
	type agg struct {
		failed, recovered int
		secs              []float64
	}
	per := map[string]*agg{}
	for _, id := range ids {
		es := m[id]
		var first time.Time
		for _, e := range es {
			if failedStates[e.state] && (first.IsZero() || e.ts.Before(first)) {
				first = e.ts
			}
		}
		if first.IsZero() {
			continue
		}
		a := per[es[0].region]
		if a == nil {
			a = &agg{}
			per[es[0].region] = a
		}
		a.failed++
		var fix time.Time
		for _, e := range es {
			if (e.state == "updated" || e.state == "rolled_back") && e.ts.After(first) && (fix.IsZero() || e.ts.Before(fix)) {
				fix = e.ts
			}
		}
		if !fix.IsZero() {
			a.recovered++
			a.secs = append(a.secs, fix.Sub(first).Seconds())
		}
	}
	var out [][]string
	for _, region := range sortedKeys(per) {
		a := per[region]
		sort.Float64s(a.secs)
		out = append(out, []string{region, u(a.failed), u(a.recovered), f64(float64(a.recovered)/float64(a.failed), 4),
			rank(a.secs, 0.5), rank(a.secs, 0.9), rank(a.secs, 1)})
	}
	return out
}

// rank is the nearest-rank percentile of sorted xs, or NULL.
func rank(xs []float64, p float64) string {
	if len(xs) == 0 {
		return "NULL"
	}
	return strconv.FormatFloat(xs[int(math.Ceil(p*float64(len(xs))))-1], 'f', -1, 64)
}

// stateTimeouts reads the warehouse's per-state timeouts (migration 13).
func stateTimeouts(t *testing.T, db *warehouse.DB) map[string]time.Duration {
	t.Helper()
	res, err := db.Query(context.Background(), "SELECT state, timeout_ms FROM "+warehouse.TableStateTimeouts+" FINAL")
	require.NoError(t, err)
	out := map[string]time.Duration{}
	for _, r := range res.Rows {
		ms, err := strconv.Atoi(r[1])
		require.NoError(t, err)
		out[r[0]] = time.Duration(ms) * time.Millisecond
	}
	require.Equal(t, 3*time.Minute, out["rebooting"], "the fixture's stragglers sit at the recoverer's timeouts")
	require.Equal(t, 2*time.Minute, out["verifying"], "the fixture's stragglers sit at the recoverer's timeouts")
	return out
}

func wantStuckDevices(timeouts map[string]time.Duration) func([]event, analytics.Filter) [][]string {
	phases := set("downloading", "verifying", "installing", "rebooting", "rolling_back")
	return func(events []event, _ analytics.Filter) [][]string {
		m, ids := byDevice(events)
		var ref time.Time
		for _, e := range events {
			if e.ts.After(ref) {
				ref = e.ts
			}
		}
		type row struct {
			region, dev, fw, state string
			last                   time.Time
			silent, timeout        time.Duration
		}
		var rows []row
		for _, id := range ids {
			es := m[id]
			latest := es[len(es)-1]
			var lastSeen time.Time
			for _, e := range es {
				if e.ts.After(lastSeen) {
					lastSeen = e.ts
				}
			}
			silent := ref.Sub(lastSeen)
			if to := timeouts[latest.state]; phases[latest.state] && to > 0 && silent > to {
				rows = append(rows, row{latest.region, id, latest.firmware, latest.state, lastSeen, silent, to})
			}
		}
		sort.Slice(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if a.silent != b.silent {
				return a.silent > b.silent
			}
			if a.region != b.region {
				return a.region < b.region
			}
			return a.dev < b.dev
		})
		var out [][]string
		for _, r := range rows {
			out = append(out, []string{r.region, r.dev, r.fw, r.state, ts(r.last), f64(r.silent.Seconds(), 3), f64(r.timeout.Seconds(), 3)})
		}
		return out
	}
}

func wantFailureHotspots(events []event, f analytics.Filter) [][]string {
	events = stateChanges(events)
	top := f.Top
	if top == 0 {
		top = 5
	}
	per := map[string]map[time.Time]int{}
	for _, e := range events {
		if per[e.region] == nil {
			per[e.region] = map[time.Time]int{}
		}
		h := e.ts.Truncate(time.Hour)
		per[e.region][h] += 0
		if failedStates[e.state] {
			per[e.region][h]++
		}
	}
	var out [][]string
	for _, region := range sortedKeys(per) {
		hours := per[region]
		total := 0
		for _, n := range hours {
			total += n
		}
		avg := float64(total) / float64(len(hours))
		var hs []time.Time
		for h := range hours {
			hs = append(hs, h)
		}
		rankOf := func(h time.Time) int {
			r := 1
			for _, o := range hs {
				if hours[o] > hours[h] {
					r++
				}
			}
			return r
		}
		sort.Slice(hs, func(i, j int) bool {
			if ri, rj := rankOf(hs[i]), rankOf(hs[j]); ri != rj {
				return ri < rj
			}
			return hs[i].Before(hs[j])
		})
		for _, h := range hs {
			if hours[h] == 0 || rankOf(h) > top {
				continue
			}
			out = append(out, []string{region, u(rankOf(h)), h.Format("2006-01-02 15:04:05"), u(hours[h]),
				f64(float64(hours[h])/float64(total), 4), f64(float64(hours[h])/avg, 2)})
		}
	}
	return out
}

// wantCohortFailureRate lists each cohort of the window with the
// breaker's latest verdict before until: the recoverer's, from its log.
func wantCohortFailureRate(verdicts []warehouse.BreakerVerdictRow) func([]event, analytics.Filter) [][]string {
	return func(events []event, f analytics.Filter) [][]string {
		settledStates := set("download_failed", "verify_failed", "install_failed", "partial", "boot_failed", "updated", "rolled_back", "bricked")
		settled := map[cohortKey]map[string]bool{}
		for _, e := range events {
			if e.state == "idle" || e.state == "offline" || e.firmware == "" {
				continue
			}
			k := cohortKey{e.firmware, e.region}
			if settled[k] == nil {
				settled[k] = map[string]bool{}
			}
			settled[k][e.device] = settled[k][e.device] || settledStates[e.state]
		}
		latest := map[cohortKey]warehouse.BreakerVerdictRow{}
		for _, v := range verdicts {
			if !f.Until.IsZero() && !v.TS.Before(f.Until) {
				continue
			}
			k := cohortKey{v.Firmware, v.Region}
			if l, ok := latest[k]; !ok || v.TS.After(l.TS) {
				latest[k] = v
			}
		}
		type row struct {
			k                        cohortKey
			devices, settled, failed int
			rate                     float64
			v                        warehouse.BreakerVerdictRow
		}
		var rows []row
		for k, c := range cohortCounts(events) {
			r := row{k: k, devices: c.devices, failed: c.failed, v: latest[k]}
			for _, ok := range settled[k] {
				if ok {
					r.settled++
				}
			}
			if r.settled > 0 {
				r.rate = math.RoundToEven(float64(r.failed)/float64(r.settled)*1e4) / 1e4
			}
			rows = append(rows, r)
		}
		sort.Slice(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if ta, tb := a.v.Verdict == "halt", b.v.Verdict == "halt"; ta != tb {
				return ta
			}
			if a.rate != b.rate {
				return a.rate > b.rate
			}
			if a.k.fw != b.k.fw {
				return a.k.fw < b.k.fw
			}
			return a.k.region < b.k.region
		})
		var out [][]string
		for _, r := range rows {
			verdict, est, bound, limit, at := "continue", "NULL", "NULL", "NULL", "NULL"
			if r.v.Verdict != "" {
				verdict, est, bound, limit, at = r.v.Verdict, f64(r.v.Estimate, 4), f64(r.v.Bound, 4), f64(r.v.Limit, 4), ts(r.v.TS)
			}
			out = append(out, []string{r.k.fw, r.k.region, u(r.devices), u(r.settled), u(r.failed), f64(r.rate, 4),
				r.v.Rule, verdict, r.v.Signal, est, bound, limit, at, b01(r.v.Verdict == "halt")})
		}
		return out
	}
}

func wantRetrySuccess(all []event, decisions []decision, f analytics.Filter) [][]string {
	type res struct {
		seq     uint64
		outcome string
	}
	results := map[string]res{}
	for _, e := range all {
		if e.commandID == "" {
			continue
		}
		if r, ok := results[e.commandID]; !ok || e.seq > r.seq {
			results[e.commandID] = res{e.seq, e.outcome}
		}
	}
	// Number each device's retries per kind within its failure episode,
	// over its whole history: an episode starts at a command of attempt 0.
	type key struct {
		kind    string
		attempt int
	}
	number := map[string]int{} // command ID -> attempt number within its kind
	perDevice := map[string][]decision{}
	for _, d := range decisions {
		perDevice[d.device] = append(perDevice[d.device], d)
	}
	for _, ds := range perDevice {
		sort.Slice(ds, func(i, j int) bool { return ds[i].seq < ds[j].seq })
		n := map[string]int{}
		for _, d := range ds {
			if (d.action == "retry" || d.action == "rollback") && d.attempt == 0 {
				n = map[string]int{}
			}
			if d.action == "retry" && d.commandID != "" {
				n[retryKind(d.state)]++
				number[d.commandID] = n[retryKind(d.state)]
			}
		}
	}
	type agg struct{ retries, ok, failed, refused, none int }
	per := map[key]*agg{}
	for _, d := range filterDecisions(decisions, f) {
		if d.action != "retry" || d.commandID == "" {
			continue
		}
		k := key{retryKind(d.state), number[d.commandID]}
		a := per[k]
		if a == nil {
			a = &agg{}
			per[k] = a
		}
		a.retries++
		switch results[d.commandID].outcome {
		case "ok":
			a.ok++
		case "":
			a.none++
		case "failed":
			a.failed++
		default:
			a.refused++
		}
	}
	keys := make([]key, 0, len(per))
	for k := range per {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].kind != keys[j].kind {
			return keys[i].kind < keys[j].kind
		}
		return keys[i].attempt < keys[j].attempt
	})
	var out [][]string
	cum := map[string]int{}
	for _, k := range keys {
		a := per[k]
		cum[k.kind] += a.ok
		out = append(out, []string{k.kind, u(k.attempt), u(a.retries), u(a.ok), u(a.failed), u(a.refused), u(a.none),
			f64(float64(a.ok)/float64(a.retries), 4), u(cum[k.kind])})
	}
	return out
}

// retryKind is what a retry sent to a device in state does: a download
// retry downloads the image again (from download_failed or verify_failed),
// a flash retry writes the image it has again.
func retryKind(state string) string {
	if state == "download_failed" || state == "verify_failed" {
		return "download"
	}
	return "flash"
}

func wantBatteryDeferrals(_ []event, decisions []decision, _ analytics.Filter) [][]string {
	type dev struct {
		region     string
		deferrals  int
		firstDefer time.Time
		acted      []time.Time
	}
	devs := map[string]*dev{}
	for _, d := range decisions {
		v := devs[d.device]
		if v == nil {
			v = &dev{region: d.region}
			devs[d.device] = v
		}
		switch {
		case d.action == "defer" && (d.reason == "battery_low" || d.reason == "battery_below_rollback_floor"):
			v.deferrals++
			if v.firstDefer.IsZero() || d.ts.Before(v.firstDefer) {
				v.firstDefer = d.ts
			}
		case d.action == "retry" || d.action == "rollback":
			v.acted = append(v.acted, d.ts)
		}
	}
	type agg struct {
		devices, deferrals, resumed, waiting int
		waits                                []float64
	}
	per := map[string]*agg{}
	for _, v := range devs {
		if v.deferrals == 0 {
			continue
		}
		a := per[v.region]
		if a == nil {
			a = &agg{}
			per[v.region] = a
		}
		a.devices++
		a.deferrals += v.deferrals
		var next time.Time
		for _, t := range v.acted {
			if t.After(v.firstDefer) && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		if next.IsZero() {
			a.waiting++
			continue
		}
		a.resumed++
		a.waits = append(a.waits, next.Sub(v.firstDefer).Seconds())
	}
	var out [][]string
	for _, region := range sortedKeys(per) {
		a := per[region]
		sort.Float64s(a.waits)
		out = append(out, []string{region, u(a.devices), u(a.deferrals), u(a.resumed), u(a.waiting), rank(a.waits, 0.5), rank(a.waits, 1)})
	}
	return out
}

// serveOverHTTP serves db's engine on a loopback port and returns a
// warehouse client for it through clickhouse-go (an http:// DSN).
func serveOverHTTP(t *testing.T, db *warehouse.DB) *warehouse.DB {
	t.Helper()
	srv, err := httpserver.New(httpserver.Config{AllowAnonymous: true, TempDir: t.TempDir()}, db)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	client, err := warehouse.Open(ctx, "http://"+ln.Addr().String()+"/default", warehouse.Options{})
	require.NoError(t, err)
	t.Cleanup(func() {
		client.Close()
		cancel()
		<-done
	})
	return client
}

// cohortKey is a (target firmware, region) cohort.
type cohortKey struct{ fw, region string }

// cohortCount is how many devices of a cohort started the update and how
// many of those failed at least once.
type cohortCount struct{ devices, failed int }

// cohortCounts is the per-cohort input of anomalous_regions and
// cohort_failure_rate: devices past idle, and which of them failed.
func cohortCounts(events []event) map[cohortKey]cohortCount {
	failed := map[cohortKey]map[string]bool{}
	for _, e := range events {
		if e.state == "idle" || e.state == "offline" {
			continue
		}
		k := cohortKey{e.firmware, e.region}
		if failed[k] == nil {
			failed[k] = map[string]bool{}
		}
		failed[k][e.device] = failed[k][e.device] || failedStates[e.state]
	}
	out := make(map[cohortKey]cohortCount, len(failed))
	for k, ds := range failed {
		c := cohortCount{devices: len(ds)}
		for _, f := range ds {
			if f {
				c.failed++
			}
		}
		out[k] = c
	}
	return out
}

func wantRecoveryDecisions(_ []event, decisions []decision, _ analytics.Filter) [][]string {
	type key struct{ action, reason string }
	n := map[key]int{}
	devs := map[key]map[string]bool{}
	for _, d := range decisions {
		k := key{d.action, d.reason}
		n[k]++
		if devs[k] == nil {
			devs[k] = map[string]bool{}
		}
		devs[k][d.device] = true
	}
	keys := make([]key, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if n[a] != n[b] {
			return n[a] > n[b]
		}
		if a.action != b.action {
			return a.action < b.action
		}
		return a.reason < b.reason
	})
	var out [][]string
	for _, k := range keys {
		out = append(out, []string{k.action, k.reason, u(n[k]), u(len(devs[k]))})
	}
	return out
}

func wantCommandOutcomes(events []event, _ analytics.Filter) [][]string {
	type key struct{ action, outcome string }
	n := map[key]int{}
	for _, e := range events {
		if e.commandID != "" {
			n[key{e.action, e.outcome}]++
		}
	}
	keys := make([]key, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].action != keys[j].action {
			return keys[i].action < keys[j].action
		}
		return keys[i].outcome < keys[j].outcome
	})
	var out [][]string
	for _, k := range keys {
		out = append(out, []string{k.action, k.outcome, u(n[k])})
	}
	return out
}

func wantFleetFinalStates(events []event, _ analytics.Filter) [][]string {
	type latest struct {
		seq   uint64
		state string
	}
	last := map[string]latest{}
	for _, e := range events {
		if l, ok := last[e.device]; !ok || e.seq > l.seq {
			last[e.device] = latest{e.seq, e.state}
		}
	}
	n := map[string]int{}
	for _, l := range last {
		n[l.state]++
	}
	states := make([]string, 0, len(n))
	for st := range n {
		states = append(states, st)
	}
	sort.Slice(states, func(i, j int) bool {
		if n[states[i]] != n[states[j]] {
			return n[states[i]] > n[states[j]]
		}
		return states[i] < states[j]
	})
	var out [][]string
	for _, st := range states {
		out = append(out, []string{st, u(n[st])})
	}
	return out
}
