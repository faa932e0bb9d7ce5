package device

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
)

// WillSeqGap is how far above a device's message counter the seq of its
// Last Will is set. The will is fixed when the device connects, yet it may
// be published by the broker at any later moment, after any number of the
// device's own messages, and seq must only grow per device. So the will
// takes a seq WillSeqGap above the counter, and at the next connection the
// counter jumps past it: whether the broker published the will or not, the
// device's messages after a reconnection sort after it. A device would have
// to send WillSeqGap (about a million) messages on one connection, 24 days
// at one message every two seconds, before its will sorted before them.
const WillSeqGap = 1 << 20

// Timing is when a device's own events happen, in run time: the time since
// the fleet started, which is also the time its timestamps advance by.
type Timing struct {
	// TelemetryInterval is the mean time between two readings; each gap is
	// jittered by ±10 %.
	TelemetryInterval time.Duration
	// StepDuration is the mean time spent in each OTA phase; each step
	// lasts 0.5 to 1.5 times it.
	StepDuration time.Duration
	// Join is when the device comes online for the first time (the fleet
	// ramps up); it reports itself then.
	Join time.Duration
	// RolloutStart is when the device's update starts, never before Join.
	RolloutStart time.Duration
	// TimeScale is how much faster the physical model (battery, charger,
	// temperature, uptime) runs than run time, so that a one-minute demo
	// shows batteries draining and chargers cycling. Zero means 1.
	TimeScale float64
}

// Msg is one message a device sends: a *proto.Telemetry on its telemetry
// topic or a *proto.StatusEvent on its status topic.
type Msg struct {
	// Kind is the topic kind the message goes to.
	Kind proto.Kind
	// Message is the message, its header filled in.
	Message proto.Message
}

// Device is one simulated device as a pure, clock-free event machine: its
// profile, OTA state machine, sensors, message counter and ground truth.
// The caller moves it along run time (Advance) and feeds it connections
// and commands; it returns the messages the device sends. The same
// profile, timing and calls give the same messages, which is what makes a
// fleet reproducible. It is not safe for concurrent use.
type Device struct {
	p Profile
	t Timing
	m *Machine
	s Sensors

	noise *rand.Rand // sensor noise
	clock *rand.Rand // step and telemetry jitter, a stream apart so timings do not depend on how often sensors are read

	now      time.Duration // run time of the last event
	seq      uint64
	willSeq  uint64
	joined   bool
	nextTel  time.Duration
	rollout  bool // the update has not started yet
	nextStep time.Duration
	walk     *walk
	health   *health // release health of the builds it runs (health.go); nil: healthy

	truth truthLog
}

// walk is a path of states a device is moving along: its rollout, or the
// plan of a command.
type walk struct {
	path []proto.State
	cmd  *proto.Command // nil for the rollout
	plan Plan
}

// never is the Due of a device with nothing scheduled.
const never = time.Duration(math.MaxInt64)

// NewDevice returns the device p describes, not yet joined, idle on its
// starting firmware.
func NewDevice(p Profile, t Timing) *Device {
	if t.TimeScale <= 0 {
		t.TimeScale = 1
	}
	t.RolloutStart = max(t.RolloutStart, t.Join)
	return &Device{
		p:        p,
		t:        t,
		m:        NewMachine(p),
		s:        NewSensors(p),
		noise:    rand.New(rand.NewPCG(p.Seed, 0x5e4707)),
		clock:    rand.New(rand.NewPCG(p.Seed, 0xc10c)),
		now:      0,
		nextTel:  t.Join + t.TelemetryInterval/2 + time.Duration(p.TelemetryPhase*float64(t.TelemetryInterval)),
		rollout:  true,
		nextStep: never,
	}
}

// Profile returns the device's profile.
func (d *Device) Profile() Profile { return d.p }

// Timing returns the device's timing.
func (d *Device) Timing() Timing { return d.t }

// State returns the device's OTA state.
func (d *Device) State() proto.State { return d.m.State() }

// Joined reports whether the device has come online.
func (d *Device) Joined() bool { return d.joined }

// Seq returns the seq of the device's latest message.
func (d *Device) Seq() uint64 { return d.seq }

// Sensors returns the device's condition as of its latest event.
func (d *Device) Sensors() Sensors { return d.s }

// Due returns the run time of the device's next own event: joining, a
// reading, the start of its update or the next step of a walk.
func (d *Device) Due() time.Duration {
	if !d.joined {
		return d.t.Join
	}
	due := d.nextTel
	if d.rollout {
		due = min(due, d.t.RolloutStart)
	}
	if d.walk != nil {
		due = min(due, d.nextStep)
	}
	return due
}

// Advance runs every event due up to run time to, in order, and appends
// the messages they send to out, stamped wall.
func (d *Device) Advance(to time.Duration, wall time.Time, out []Msg) []Msg {
	for {
		due := d.Due()
		if due > to {
			return out
		}
		out = d.fire(due, wall, out)
	}
}

// fire runs the events due at run time at. Ties go join, step, rollout,
// reading, so the order never depends on the caller.
func (d *Device) fire(at time.Duration, wall time.Time, out []Msg) []Msg {
	switch {
	case !d.joined:
		d.joined = true
		d.now = max(d.now, at)
		return d.report(wall, "connected", out)
	case d.walk != nil && d.nextStep == at:
		d.sense(at)
		return d.step(at, wall, out)
	case d.rollout && d.t.RolloutStart == at:
		d.rollout = false
		if d.m.State() != proto.StateIdle || d.walk != nil {
			return out
		}
		d.sense(at)
		d.truth.started = true
		d.walk = &walk{path: RolloutPath(d.p.Fate)}
		return d.step(at, wall, out)
	default:
		d.nextTel = at + d.jitter(d.t.TelemetryInterval, 0.1)
		d.sense(at)
		if d.m.State() == proto.StateBricked || d.quiet() {
			return out // a bricked device, or one a bad build cut off, says nothing more
		}
		return append(out, d.telemetry(wall))
	}
}

// Connected reports the device's state and a reading after a connection
// came up, as a device does after every (re)connection. A device that has
// not joined yet stays quiet: it reports itself when it joins.
func (d *Device) Connected(wall time.Time, out []Msg) []Msg {
	if !d.joined || d.m.State() == proto.StateBricked || d.quiet() {
		return out
	}
	return d.report(wall, "connected", out)
}

// report appends a status event with detail and the current reading.
func (d *Device) report(wall time.Time, detail string, out []Msg) []Msg {
	out = append(out, d.status(wall, detail, nil))
	return append(out, d.telemetry(wall))
}

// Will returns the offline status the broker publishes for the device if
// its connection dies, for the CONNECT packet about to be sent; see
// WillSeqGap for its seq. Call it once per connection attempt.
func (d *Device) Will(wall time.Time) *proto.StatusEvent {
	d.seq = max(d.seq, d.willSeq) // the previous will may have been published
	d.willSeq = d.seq + WillSeqGap
	return &proto.StatusEvent{
		Header: proto.NewHeader(d.p.ID, wall, d.willSeq),
		Region: d.p.Region,
		State:  proto.StateOffline,
		Detail: "connection lost",
	}
}

// Command applies cmd, received at run time at, after running every event
// due until then, and appends the messages the device sends: the first
// step of its plan, or its result at once.
func (d *Device) Command(at time.Duration, wall time.Time, cmd *proto.Command, out []Msg) []Msg {
	out = d.Advance(at, wall, out)
	at = max(at, d.now)
	d.sense(at)
	cond := d.s.Conditions(d.p)
	before := d.m.State()
	plan := d.m.Accept(cmd, cond)
	d.truth.command(d.p, before, cmd, plan, cond)
	switch {
	case plan.Silent:
		return out
	case len(plan.Path) > 0 && d.walk != nil:
		// Accept rejects commands in transient states, and a walk only
		// rests in transient states: this cannot happen.
		plan = Plan{Outcome: proto.OutcomeRejected, Detail: "busy"}
	case len(plan.Path) > 0:
		d.walk = &walk{path: plan.Path, cmd: cmd, plan: plan}
		return d.step(at, wall, out)
	}
	return append(out, d.status(wall, plan.Detail, result(cmd, plan)))
}

// step enters the next state of the current walk, reports it, and
// schedules the following step, or reports the walk's result when it was
// the last.
func (d *Device) step(at time.Duration, wall time.Time, out []Msg) []Msg {
	w := d.walk
	next := w.path[0]
	w.path = w.path[1:]
	if err := d.m.Enter(next); err != nil {
		// Plans and rollout paths are legal by construction (tested).
		d.walk, d.nextStep = nil, never
		return out
	}
	d.spend(next)
	if next == proto.StateRebooting {
		d.s.Reboot()
	}
	detail := ""
	var res *proto.CommandResult
	if len(w.path) == 0 {
		d.walk, d.nextStep = nil, never
		if w.cmd != nil {
			detail, res = w.plan.Detail, result(w.cmd, w.plan)
			if next == proto.StateBricked {
				d.truth.brickedBy = w.cmd.CommandID
			}
		} else {
			detail = Cause(d.p)
			d.truth.rolloutEnded(d.p, next, d.s, d.deviceTime(at))
		}
	} else {
		d.nextStep = at + d.jitter(d.t.StepDuration, 0.5)
	}
	return append(out, d.status(wall, detail, res))
}

func result(cmd *proto.Command, plan Plan) *proto.CommandResult {
	return &proto.CommandResult{CommandID: cmd.CommandID, Action: cmd.Action, Outcome: plan.Outcome}
}

// spend takes the charge of the operation state next starts: a download
// at the current signal, an image write (an install, or a single-bank
// rollback; an A/B rollback switches slots and writes nothing). Their
// physical duration is the hardware's, whatever the run's time scale.
func (d *Device) spend(next proto.State) {
	h := d.p.Hardware
	switch {
	case next == proto.StateDownloading:
		d.s.Spend(d.p, h.RadioMA, h.DownloadTime(float64(d.s.RSSI)))
	case next == proto.StateInstalling, next == proto.StateRollingBack && d.p.Storage != proto.StorageAB:
		d.s.Spend(d.p, h.FlashMA, h.FlashTime())
	}
}

// sense moves the sensors on to run time at.
func (d *Device) sense(at time.Duration) {
	if at < d.now {
		at = d.now
	}
	dt := at - d.now
	d.s.Advance(d.p, d.m.State(), d.deviceTime(at), time.Duration(float64(dt)*d.t.TimeScale), d.noise)
	d.applyHealth(d.deviceTime(at), time.Duration(float64(dt)*d.t.TimeScale))
	d.now = at
}

// deviceTime converts run time to the physical model's time.
func (d *Device) deviceTime(at time.Duration) time.Duration {
	return time.Duration(float64(at) * d.t.TimeScale)
}

// jitter returns dur scaled by a factor drawn uniformly from [1-spread, 1+spread).
func (d *Device) jitter(dur time.Duration, spread float64) time.Duration {
	return max(time.Duration(float64(dur)*(1-spread+2*spread*d.clock.Float64())), time.Microsecond)
}

func (d *Device) header(wall time.Time) proto.Header {
	d.seq++
	return proto.NewHeader(d.p.ID, wall, d.seq)
}

func (d *Device) telemetry(wall time.Time) Msg {
	s := d.s
	return Msg{Kind: proto.KindTelemetry, Message: &proto.Telemetry{
		Header:       d.header(wall),
		Region:       d.p.Region,
		Firmware:     d.m.Firmware(),
		State:        d.m.State(),
		BatteryPct:   s.BatteryPct,
		Charging:     s.Charging,
		RSSI:         s.RSSI,
		TemperatureC: s.TemperatureC,
		UptimeS:      int64(s.Uptime / time.Second),
		// The device-physics fields: what a fuel gauge and the boot
		// loader's counters report.
		BatteryMV:     int(math.Round(s.VoltageV * 1000)),
		BatteryCycles: s.ChargeCycles,
		HWModel:       d.p.Model,
		Storage:       d.p.Storage,
		BootCount:     int64(s.BootCount),
	}}
}

func (d *Device) status(wall time.Time, detail string, res *proto.CommandResult) Msg {
	return Msg{Kind: proto.KindStatus, Message: &proto.StatusEvent{
		Header:         d.header(wall),
		Region:         d.p.Region,
		State:          d.m.State(),
		Firmware:       d.m.Firmware(),
		TargetFirmware: d.m.Target(),
		Wave:           d.p.Wave + 1, // the wire counts waves from 1
		Detail:         detail,
		Result:         res,
	}}
}
