package device

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
)

// Battery model: currents in milliamperes. A device's drain in percent per
// hour is its current over its battery's capacity, so a tracker with a
// small battery loses more charge to the same download than a gateway.
const (
	restCurrentMA        = 12.0
	downloadCurrentMA    = 160.0 // radio on
	verifyCurrentMA      = 90.0
	flashCurrentMA       = 260.0 // writing flash: installing, rolling back
	rebootCurrentMA      = 120.0
	chargeCurrentMA      = 600.0
	emptyVolts           = 3.3
	fullVolts            = 4.2
	loadSagVoltsPerAmp   = 0.6 // internal resistance: the voltage sags under load
	activeWarmthC        = 8.0
	temperatureTimeConst = time.Minute
)

// Sensors is a device's changing physical condition: what its telemetry
// reports, and the battery details only the ground truth sees.
type Sensors struct {
	// BatteryPct is the battery level, 0 to 100.
	BatteryPct float64
	// VoltageV is the battery's terminal voltage under the current load.
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
	s.VoltageV = Voltage(s.BatteryPct, restCurrentMA)
	return s
}

// Current returns the current, in mA, a device draws in state.
func Current(state proto.State) float64 {
	switch state {
	case proto.StateDownloading:
		return downloadCurrentMA
	case proto.StateVerifying:
		return verifyCurrentMA
	case proto.StateInstalling, proto.StateRollingBack:
		return flashCurrentMA
	case proto.StateRebooting:
		return rebootCurrentMA
	}
	return restCurrentMA
}

// Voltage returns the terminal voltage of a lithium cell at pct percent
// while it supplies loadMA: a flat middle with steep ends, minus the sag
// of the load.
func Voltage(pct, loadMA float64) float64 {
	x := clamp(pct, 0, 100) / 100
	open := emptyVolts + (fullVolts-emptyVolts)*(0.5*x+0.5*(1-math.Pow(1-x, 3)))
	return math.Round((open-loadSagVoltsPerAmp*loadMA/1000)*1000) / 1000
}

// Advance moves the condition on by dt of device time, the device being in
// state, ending at device time at after the start of the run: the charger
// follows the device's power schedule, the battery drains by the state's
// current (or charges), the board warms while it works and cools at rest,
// and the signal takes a new noisy reading around the device's mean. r
// supplies the noise.
func (s *Sensors) Advance(p Profile, state proto.State, at, dt time.Duration, r *rand.Rand) {
	if dt < 0 {
		dt = 0
	}
	hours := dt.Hours()
	load := Current(state)
	s.Charging = p.ChargingAt(at)
	delta := -load / p.CapacityMAh * 100 * hours
	if s.Charging {
		delta += chargeCurrentMA / p.CapacityMAh * 100 * hours
	}
	before := s.BatteryPct
	s.BatteryPct = math.Round(clamp(s.BatteryPct+delta, 0, 100)*100) / 100
	if gained := s.BatteryPct - before; gained > 0 {
		s.charged += gained
		for s.charged >= 100 {
			s.charged -= 100
			s.ChargeCycles++
		}
	}
	s.VoltageV = Voltage(s.BatteryPct, load)

	target := p.TemperatureC
	if Transient(state) {
		target += activeWarmthC
	}
	k := math.Min(1, float64(dt)/float64(temperatureTimeConst))
	s.TemperatureC += (target-s.TemperatureC)*k + r.NormFloat64()*0.2
	s.TemperatureC = math.Round(clamp(s.TemperatureC, proto.MinTemperature, proto.MaxTemperature)*10) / 10

	s.RSSI = int(math.Round(clamp(p.RSSIMean+r.NormFloat64()*p.RSSINoise, -130, -30)))
	s.Uptime += dt
}

// Reboot restarts the uptime clock and counts a boot.
func (s *Sensors) Reboot() {
	s.Uptime = 0
	s.BootCount++
}

// Conditions returns what the device knows about itself for the command rules.
func (s Sensors) Conditions() Conditions {
	return Conditions{BatteryPct: s.BatteryPct, Charging: s.Charging, RSSI: s.RSSI}
}
