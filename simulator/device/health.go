package device

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
)

// ReleaseHealth is how a firmware build behaves once it is installed:
// the release health that install outcomes do not show (Memfault's
// "crash-free hours"). A build may install fine and then crash-loop (the
// device reboots: uptime resets, boot_count rises), drain the battery
// faster, or lose connectivity (the device goes quiet). Rates are per
// build and, optionally, per region, so a build can be bad in one region
// only (a radio stack that fails on one carrier).
type ReleaseHealth struct {
	// Firmware is the build the rule applies to; devices running it are
	// affected from their first reading on it.
	Firmware string
	// Region, when set, limits the rule to devices in that region.
	Region string
	// CrashesPerHour is the mean number of crash reboots per hour of
	// device time (the physical model's clock, Timing.TimeScale faster
	// than run time) while on the build, drawn as a Poisson process per
	// device. A crash loop is several an hour; a healthy build has none.
	CrashesPerHour float64
	// DrainFactor multiplies the battery drain of a device on the build
	// while it is off the charger: 2 drains twice as fast. 0 or 1 is
	// normal drain.
	DrainFactor float64
	// DropShare is the share of devices on the build that lose
	// connectivity after the install: from their first reading on it they
	// send nothing more.
	DropShare float64
}

// ErrHealth is wrapped by CheckHealth's errors.
var ErrHealth = errors.New("device: invalid release health")

// CheckHealth reports a rule that cannot apply: no firmware, a negative
// rate or factor, a share outside [0, 1].
func CheckHealth(rules []ReleaseHealth) error {
	for i, h := range rules {
		switch {
		case h.Firmware == "":
			return fmt.Errorf("%w: rule %d names no firmware", ErrHealth, i+1)
		case h.CrashesPerHour < 0 || h.DrainFactor < 0 || math.IsNaN(h.CrashesPerHour) || math.IsNaN(h.DrainFactor):
			return fmt.Errorf("%w: rule %d (%s): crash rate %g and drain factor %g must not be negative", ErrHealth, i+1, h.Firmware, h.CrashesPerHour, h.DrainFactor)
		case !(h.DropShare >= 0 && h.DropShare <= 1):
			return fmt.Errorf("%w: rule %d (%s): drop share %g outside [0, 1]", ErrHealth, i+1, h.Firmware, h.DropShare)
		}
	}
	return nil
}

// health is a device's release-health state: the rules of its region, its
// own random stream (apart from sensors and timing, so a fleet's install
// behaviour does not change when health rules are added), and what the
// rules did to it.
type health struct {
	rules     []ReleaseHealth
	rng       *rand.Rand
	firmware  string        // the build the state below is for
	nextCrash time.Duration // device time of the next crash on it
	dropped   bool
}

// SetHealth gives d the release-health rules that apply to its region.
// Call it before the first Advance; nil means a healthy device.
func (d *Device) SetHealth(rules []ReleaseHealth) {
	var mine []ReleaseHealth
	for _, h := range rules {
		if h.Region == "" || h.Region == d.p.Region {
			mine = append(mine, h)
		}
	}
	if len(mine) == 0 {
		d.health = nil
		return
	}
	d.health = &health{rules: mine, rng: rand.New(rand.NewPCG(d.p.Seed, 0x4ea17))}
}

// rule returns the rule for firmware fw, if any.
func (h *health) rule(fw string) (ReleaseHealth, bool) {
	for _, r := range h.rules {
		if r.Firmware == fw {
			return r, true
		}
	}
	return ReleaseHealth{}, false
}

// applyHealth runs the release-health rules over the device-time interval
// (at-dt, at] the sensors just moved through: extra drain, crashes, and
// the drop of connectivity on a device's first reading on the build.
func (d *Device) applyHealth(at, dt time.Duration) {
	h := d.health
	if h == nil || dt <= 0 {
		return
	}
	fw := d.m.Firmware()
	r, ok := h.rule(fw)
	if !ok || d.m.State() != proto.StateUpdated {
		return
	}
	if h.firmware != fw {
		h.firmware = fw
		h.dropped = h.rng.Float64() < r.DropShare
		h.nextCrash = at - dt + h.wait(r.CrashesPerHour)
	}
	if r.DrainFactor > 1 && !d.s.Charging {
		extra := -(r.DrainFactor - 1) * restCurrentMA / d.p.CapacityMAh * 100 * dt.Hours() // an updated device draws the rest current
		d.s.BatteryPct = math.Round(clamp(d.s.BatteryPct+extra, 0, 100)*100) / 100
	}
	for r.CrashesPerHour > 0 && h.nextCrash <= at {
		d.s.Reboot()
		d.s.Uptime = at - h.nextCrash
		h.nextCrash += h.wait(r.CrashesPerHour)
	}
}

// wait draws the device time to the next crash at rate per hour; never
// for a rate of zero.
func (h *health) wait(perHour float64) time.Duration {
	if perHour <= 0 {
		return never
	}
	return time.Duration(h.rng.ExpFloat64() / perHour * float64(time.Hour))
}

// quiet reports whether the device lost connectivity to a bad build: it
// sends nothing more.
func (d *Device) quiet() bool { return d.health != nil && d.health.dropped }
