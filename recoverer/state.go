package recoverer

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
)

// device is what the recoverer knows about one device. Only the tracker's
// goroutine touches it.
type device struct {
	id, region string

	// Last sequence numbers accepted, per topic, to drop repeats and
	// reorderings.
	statusSeq, telemetrySeq uint64

	state          proto.State
	firmware       string
	target         string // firmware the rollout wants, from status
	stableFirmware string // firmware last seen in a healthy state: the rollback target
	tel            policy.Telemetry

	// The current failure: reset when the device is healthy again.
	retries, rollbacks int
	downloadFailures   int       // retries of ours that failed in their download
	lastCommand        time.Time // last retry or rollback sent
	open               string    // retry or rollback awaiting its result
	lastHeard          time.Time // last status or reading received
	stateSince         time.Time // when state was entered
	halted             bool
	deferReason        string // reason of the defer in force, so it is not re-sent
	decided            bool   // a decision was taken in this failure
	last               policy.Decision
	recheck            time.Time // when a backoff ends
	received           time.Time // when the message that led to the pending decision arrived

	outSeq uint64 // seq of the recoverer's own messages about this device
}

func (d *device) resetFailure() {
	d.retries, d.rollbacks, d.downloadFailures = 0, 0, 0
	d.lastCommand = time.Time{}
	d.open, d.deferReason = "", ""
	d.halted, d.decided = false, false
	d.last = policy.Decision{}
	d.recheck = time.Time{}
}

// nextSeq returns the seq of the next message the recoverer sends about d.
// It starts from the wall clock in milliseconds rather than 1 so that a
// restarted recoverer keeps counting upwards: the decisions table collapses
// rows with equal (region, device_id, seq), and a restart from 1 would
// overwrite the earlier audit trail.
func (d *device) nextSeq(now time.Time) uint64 {
	d.outSeq = max(d.outSeq+1, uint64(now.UnixMilli()))
	return d.outSeq
}

// output is one decision the tracker took, with the command it sends, if any.
type output struct {
	region   string
	decision *proto.Decision
	command  *proto.Command // nil when the decision sends nothing
	received time.Time      // when the status that caused it arrived; zero for timers
}

// verdict says what became of an incoming message.
type verdict int

const (
	accepted verdict = iota
	duplicate
)

// tracker holds every device's state and turns incoming messages into
// decisions. It does no I/O, so its behaviour is tested without a broker;
// Run feeds it from one goroutine.
type tracker struct {
	cfg     policy.Config
	decideF policy.Func
	devices map[string]*device
	waiting map[*device]struct{} // devices in a backoff, rechecked by tick
	open    map[*device]struct{} // devices with a command out, watched for silence
	tripped map[string]bool      // cohorts (cohortKey) the breaker tripped
	newID   func() string
}

func newTracker(cfg policy.Config) *tracker {
	return &tracker{
		cfg:     cfg.WithDefaults(),
		decideF: policy.Decide,
		devices: make(map[string]*device),
		waiting: make(map[*device]struct{}),
		open:    make(map[*device]struct{}),
		tripped: make(map[string]bool),
		newID:   newCommandID,
	}
}

// cohortKey names a (target firmware, region) cohort.
func cohortKey(firmware, region string) string { return firmware + "\x00" + region }

// settled reports whether d rests in a healthy state: idle, rolled back,
// or updated on its target version (a silent fallback is not settled).
func (d *device) settled() bool {
	if d.state == proto.StateUpdated {
		return d.target == "" || d.firmware == "" || d.firmware == d.target
	}
	return healthy(d.state)
}

// actionable reports whether d is in a failure the policy acts on.
func (d *device) actionable() bool {
	return policy.Actionable(d.state) || (d.state == proto.StateUpdated && !d.settled())
}

// setCohort records whether the breaker tripped a cohort and, when it just
// tripped, takes the decision again for its failed devices that are not
// waiting on a command: they get a rollback instead of a retry.
func (t *tracker) setCohort(firmware, region string, tripped bool, now time.Time) []output {
	key := cohortKey(firmware, region)
	was := t.tripped[key]
	if tripped {
		t.tripped[key] = true
	} else {
		delete(t.tripped, key)
	}
	if !tripped || was {
		return nil
	}
	var outs []output
	for _, d := range t.devices {
		if d.region == region && d.target == firmware && d.actionable() && d.open == "" && !d.halted {
			outs = append(outs, t.decide(d, now, false)...)
		}
	}
	return outs
}

func (t *tracker) device(region, id string) *device {
	key := region + "/" + id
	d := t.devices[key]
	if d == nil {
		d = &device{id: id, region: region}
		t.devices[key] = d
	}
	return d
}

// healthy reports whether s ends a failure.
func healthy(s proto.State) bool {
	switch s {
	case proto.StateIdle, proto.StateUpdated, proto.StateRolledBack:
		return true
	}
	return false
}

// telemetry records a reading received at now and, when the device waits in
// a failure, takes the decision again: the battery or signal it waited for
// may be back. That decision is published only when it differs from the
// last one, so a steady stream of readings does not flood the audit.
func (t *tracker) telemetry(region string, m *proto.Telemetry, now time.Time) (verdict, []output) {
	d := t.device(region, m.DeviceID)
	if m.Seq <= d.telemetrySeq {
		return duplicate, nil
	}
	d.telemetrySeq = m.Seq
	d.tel = policy.Telemetry{Known: true, BatteryPct: m.BatteryPct, Charging: m.Charging, RSSI: m.RSSI, At: now}
	d.lastHeard = now
	if d.firmware == "" {
		d.firmware = m.Firmware
	}
	if healthy(m.State) && !d.actionable() && m.State != proto.StateUpdated {
		d.stableFirmware = m.Firmware
	}
	if d.decided && d.actionable() && d.open == "" && !d.halted {
		return accepted, t.decide(d, now, false)
	}
	return accepted, nil
}

// status records a state change or command result and decides when the
// device is in a failure or a command of ours failed.
func (t *tracker) status(region string, m *proto.StatusEvent, now time.Time) (verdict, []output) {
	d := t.device(region, m.DeviceID)
	if m.Seq <= d.statusSeq {
		return duplicate, nil
	}
	d.statusSeq = m.Seq
	d.lastHeard = now
	if m.State != d.state || d.stateSince.IsZero() {
		d.stateSince = now
	}
	d.state = m.State
	if m.Firmware != "" {
		d.firmware = m.Firmware
	}
	if m.TargetFirmware != "" {
		d.target = m.TargetFirmware
	}

	resultFailed := false
	if r := m.Result; r != nil && r.CommandID == d.open && d.open != "" {
		d.open = ""
		delete(t.open, d)
		// ok needs nothing more: the state says where the device is now.
		// failed and rejected call for the next step. duplicate means the
		// device applied the command before and its result went missing:
		// decide again from the state it reports now.
		resultFailed = r.Outcome != proto.OutcomeOK
		if r.Outcome == proto.OutcomeFailed && r.Action == proto.ActionRetry && m.State == proto.StateDownloadFailed {
			d.downloadFailures++
		}
	}

	switch {
	case d.settled():
		// Success is confirmed only here: idle, rolled back, or updated on
		// the target version after the reboot.
		d.resetFailure()
		delete(t.waiting, d)
		delete(t.open, d)
		if m.State != proto.StateUpdated {
			d.stableFirmware = d.firmware
		}
		return accepted, nil
	case d.actionable() || resultFailed:
		d.received = now
		return accepted, t.decide(d, now, true)
	}
	return accepted, nil
}

// tick takes the decision again for every device whose backoff ended by
// now, and for every device with a command out that has gone silent or
// stuck past its timeout (the policy escalates those).
func (t *tracker) tick(now time.Time) []output {
	var outs []output
	for d := range t.open {
		if d.halted || d.open == "" {
			delete(t.open, d)
			continue
		}
		silent := now.Sub(d.lastHeard) > t.cfg.SilenceTimeout
		limit := t.cfg.StateTimeout(d.state)
		stuck := limit > 0 && !d.stateSince.IsZero() && now.Sub(d.stateSince) > limit
		if silent || stuck {
			outs = append(outs, t.decide(d, now, true)...)
		}
	}
	for d := range t.waiting {
		if now.Before(d.recheck) {
			continue
		}
		delete(t.waiting, d)
		d.recheck = time.Time{}
		if d.actionable() && d.open == "" && !d.halted {
			outs = append(outs, t.decide(d, now, false)...)
		}
	}
	return outs
}

// decide runs the policy for d and applies its decision. A forced decision
// (from a status) is always published; an unforced one (from a reading or
// a timer) only when its action or reason changed.
func (t *tracker) decide(d *device, now time.Time, forced bool) []output {
	dec := t.decideF(policy.Input{
		DeviceID:         d.id,
		State:            d.state,
		Firmware:         d.firmware,
		TargetFirmware:   d.target,
		Telemetry:        d.tel,
		Retries:          d.retries,
		DownloadFailures: d.downloadFailures,
		Rollbacks:        d.rollbacks,
		LastCommand:      d.lastCommand,
		CommandOpen:      d.open != "",
		Halted:           d.halted,
		LastHeard:        d.lastHeard,
		StateSince:       d.stateSince,
		CohortTripped:    t.tripped[cohortKey(d.target, d.region)],
		Now:              now,
	}, t.cfg)
	received := d.received
	d.received = time.Time{}

	d.recheck = dec.Until
	if dec.Until.IsZero() {
		delete(t.waiting, d)
	} else {
		t.waiting[d] = struct{}{}
	}
	if !forced && d.decided && dec.Action == d.last.Action && dec.Reason == d.last.Reason {
		return nil
	}
	d.decided, d.last = true, dec

	attempt := d.retries + d.rollbacks
	var cmd *proto.Command
	if t.sends(d, dec) {
		cmd = &proto.Command{
			Header:    proto.NewHeader(d.id, now, d.nextSeq(now)),
			CommandID: t.newID(),
			Action:    dec.Action,
			Reason:    dec.Reason,
		}
		switch dec.Action {
		case proto.ActionRetry:
			cmd.TargetFirmware = d.target
			d.retries++
			d.lastCommand, d.open, d.deferReason = now, cmd.CommandID, ""
			t.open[d] = struct{}{}
		case proto.ActionRollback:
			cmd.TargetFirmware = d.stableFirmware
			d.rollbacks++
			d.lastCommand, d.open, d.deferReason = now, cmd.CommandID, ""
			t.open[d] = struct{}{}
		case proto.ActionDefer:
			d.deferReason = dec.Reason
		case proto.ActionHalt:
			d.halted = true
			delete(t.open, d)
		}
	}

	rec := &proto.Decision{
		Header:     proto.NewHeader(d.id, now, d.nextSeq(now)),
		Region:     d.region,
		Action:     dec.Action,
		Reason:     dec.Reason,
		State:      d.state,
		Firmware:   d.firmware,
		BatteryPct: -1,
		Charging:   d.tel.Charging,
		RSSI:       d.tel.RSSI,
		Attempt:    attempt,
	}
	if d.tel.Known {
		rec.BatteryPct = d.tel.BatteryPct
	}
	if cmd != nil {
		rec.CommandID = cmd.CommandID
	}
	return []output{{region: d.region, decision: rec, command: cmd, received: received}}
}

// sends reports whether dec needs a command. A defer already in force for
// the same reason and a second halt are not re-sent: the device holds them.
func (t *tracker) sends(d *device, dec policy.Decision) bool {
	switch dec.Action {
	case proto.ActionRetry, proto.ActionRollback:
		return true
	case proto.ActionDefer:
		return d.deferReason != dec.Reason
	case proto.ActionHalt:
		return !d.halted
	}
	return false
}

// newCommandID returns a 32-character hex ID: 48 bits of milliseconds, so
// IDs sort by time in logs and tables, then 80 random bits, so two
// recoverers never collide.
func newCommandID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go 1.24+).
	return hex.EncodeToString(b[:])
}
