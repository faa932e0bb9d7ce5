package device

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
)

// Battery rates, in percentage points per hour.
const (
	restDrainPerHour   = 1.0
	activeDrainPerHour = 15.0
	chargePerHour      = 25.0
)

// Sensors is a device's changing physical condition, what its telemetry
// reports.
type Sensors struct {
	// BatteryPct is the battery level, 0 to 100.
	BatteryPct float64
	// Charging is true while the device is on external power.
	Charging bool
	// RSSI is the latest signal strength in dBm.
	RSSI int
	// TemperatureC is the board temperature in degrees Celsius.
	TemperatureC float64
	// Uptime is the time since the last boot.
	Uptime time.Duration
}

// NewSensors returns the condition of the device p describes at start.
func NewSensors(p Profile) Sensors {
	return Sensors{
		BatteryPct:   p.BatteryPct,
		Charging:     p.Charging,
		RSSI:         int(math.Round(p.RSSIMean)),
		TemperatureC: p.TemperatureC,
		Uptime:       time.Duration(p.UptimeS) * time.Second,
	}
}

// Advance moves the condition on by dt, the device being in state: the
// battery drains (faster while an update or rollback runs) or charges, the
// board warms while it works and cools at rest, and the signal takes a new
// noisy reading around the device's mean. r supplies the noise.
func (s *Sensors) Advance(p Profile, state proto.State, dt time.Duration, r *rand.Rand) {
	if dt < 0 {
		dt = 0
	}
	hours := dt.Hours()
	active := Transient(state)
	switch {
	case s.Charging:
		s.BatteryPct += chargePerHour * hours
	case active:
		s.BatteryPct -= activeDrainPerHour * hours
	default:
		s.BatteryPct -= restDrainPerHour * hours
	}
	s.BatteryPct = math.Round(clamp(s.BatteryPct, 0, 100)*100) / 100

	target := p.TemperatureC
	if active {
		target += 8
	}
	k := math.Min(1, dt.Seconds()/60)
	s.TemperatureC += (target-s.TemperatureC)*k + r.NormFloat64()*0.2
	s.TemperatureC = math.Round(clamp(s.TemperatureC, proto.MinTemperature, proto.MaxTemperature)*10) / 10

	s.RSSI = int(math.Round(clamp(p.RSSIMean+r.NormFloat64()*3, -130, -30)))
	s.Uptime += dt
}

// Reboot restarts the uptime clock.
func (s *Sensors) Reboot() { s.Uptime = 0 }

// Conditions returns what the device knows about itself for the command rules.
func (s Sensors) Conditions() Conditions {
	return Conditions{BatteryPct: s.BatteryPct, Charging: s.Charging, RSSI: s.RSSI}
}
