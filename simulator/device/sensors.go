package device

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
)

// Sensors is a device's changing physical condition: what its telemetry
// reports, and the battery details only the ground truth sees.
type Sensors struct {
	// BatteryPct is the battery's state of charge, 0 to 100.
	BatteryPct float64
	// VoltageV is the battery's terminal voltage at rest (the rest current
	// drawn), what the device reports as battery_mv.
	VoltageV float64
	// ChargeCycles counts full charge cycles, including those of the run:
	// every 100 percentage points charged make one.
	ChargeCycles int
	// Charging is true while the device is on external power.
	Charging bool
	// RSSI is the latest signal strength in dBm.
	RSSI int
	// TemperatureC is the board temperature in degrees Celsius.
	TemperatureC float64
	// Uptime is the time since the last boot.
	Uptime time.Duration
	// BootCount is how many times the device has booted.
	BootCount int
	// DrainFactor multiplies the device's rest current: 1 (or 0, unset)
	// is the model's own; a release that keeps the radio awake raises it.
	// Release-health simulations set it.
	DrainFactor float64

	charged float64 // percentage points charged since the last full cycle
}

// NewSensors returns the condition of the device p describes at start.
func NewSensors(p Profile) Sensors {
	s := Sensors{
		BatteryPct:   p.BatteryPct,
		ChargeCycles: p.ChargeCycles,
		Charging:     p.Charging,
		RSSI:         int(math.Round(p.RSSIMean)),
		TemperatureC: p.TemperatureC,
		Uptime:       time.Duration(p.UptimeS) * time.Second,
		BootCount:    p.BootCount,
	}
	s.VoltageV = s.restVolts(p)
	return s
}

// Cell returns the battery's condition now.
func (s Sensors) Cell() Cell {
	return Cell{Pct: s.BatteryPct, Cycles: s.ChargeCycles, TempC: s.TemperatureC, Charging: s.Charging}
}

// restVolts is the terminal voltage at the rest current, to the millivolt.
func (s Sensors) restVolts(p Profile) float64 {
	return math.Round(p.TerminalVolts(s.Cell(), restCurrentMA)*1000) / 1000
}

// restMA is the device's current between operations.
func (s Sensors) restMA() float64 {
	if s.DrainFactor > 0 {
		return restCurrentMA * s.DrainFactor
	}
	return restCurrentMA
}

// chargeMA is the current a charger puts into a battery of capacityMAh:
// the charger's, at most half the capacity per hour (0.5 C, a consumer
// cell's standard charge rate).
func chargeMA(capacityMAh float64) float64 { return math.Min(chargerMA, 0.5*capacityMAh) }

// Advance moves the condition on by dt of device time, the device being in
// state, ending at device time at after the start of the run: the charger
// follows the device's power schedule, the battery drains by the rest
// current (the charge an operation spends is taken by Spend, as the
// operation's physical time does not scale with the run), or charges, the
// board warms while it works and cools at rest, and the signal takes a
// new noisy reading around the device's mean at that time. r supplies the
// noise.
func (s *Sensors) Advance(p Profile, state proto.State, at, dt time.Duration, r *rand.Rand) {
	if dt < 0 {
		dt = 0
	}
	hours := dt.Hours()
	s.Charging = p.ChargingAt(at)
	delta := -s.restMA() / p.CapacityMAh * 100 * hours
	if s.Charging {
		delta += chargeMA(p.CapacityMAh) / p.CapacityMAh * 100 * hours
	}
	s.addCharge(delta)

	target := p.TemperatureC
	if Transient(state) {
		target += activeWarmthC
	}
	k := math.Min(1, float64(dt)/float64(temperatureTimeConst))
	s.TemperatureC += (target-s.TemperatureC)*k + r.NormFloat64()*0.2
	s.TemperatureC = math.Round(clamp(s.TemperatureC, proto.MinTemperature, proto.MaxTemperature)*10) / 10

	s.RSSI = int(math.Round(clamp(p.RSSIMeanAt(at)+r.NormFloat64()*p.RSSINoise, -130, -30)))
	s.Uptime += dt
	s.VoltageV = s.restVolts(p)
}

// Spend takes the charge of an operation drawing loadMA for d from the
// battery (the part a charger does not supply).
func (s *Sensors) Spend(p Profile, loadMA float64, d time.Duration) {
	if !(p.CapacityMAh > 0) {
		return
	}
	s.addCharge(-s.Cell().batteryMA(loadMA) * d.Hours() / p.CapacityMAh * 100)
	s.VoltageV = s.restVolts(p)
}

// addCharge changes the state of charge by delta percentage points,
// counting charge cycles.
func (s *Sensors) addCharge(delta float64) {
	before := s.BatteryPct
	s.BatteryPct = math.Round(clamp(s.BatteryPct+delta, 0, 100)*100) / 100
	if gained := s.BatteryPct - before; gained > 0 {
		s.charged += gained
		for s.charged >= 100 {
			s.charged -= 100
			s.ChargeCycles++
		}
	}
}

// Reboot restarts the uptime clock and counts a boot.
func (s *Sensors) Reboot() {
	s.Uptime = 0
	s.BootCount++
}

// Conditions returns what the device knows about itself for the command
// rules, with the hazards of device p's operations now.
func (s Sensors) Conditions(p Profile) Conditions {
	return Conditions{BatteryPct: s.BatteryPct, Charging: s.Charging, RSSI: s.RSSI,
		Hazards: HazardsOf(p.Hardware, p.CapacityMAh, s.Cell(), float64(s.RSSI))}
}
