package device

import (
	"errors"
	"fmt"
	"math"

	"github.com/brianvoe/gofakeit/v6"
	"github.com/sentinel-iot/sentinel/proto"
)

// Shares and thresholds of a generated fleet.
const (
	// LowBatteryShare is the share of devices generated with a battery
	// below 30 %.
	LowBatteryShare = 0.18
	// ChargingShare is the share of devices generated on external power.
	ChargingShare = 0.12
	// WeakSignalDBm is the mean signal strength under which a device counts
	// as weak-signal: its downloads may fail and retries of them do fail.
	WeakSignalDBm = -100
	// WeakDownloadFailShare is the share of weak-signal devices, among those
	// not already chosen to fail, whose first download fails.
	WeakDownloadFailShare = 0.4
)

// ErrSpec is wrapped by every error Generate returns for an unusable Spec.
var ErrSpec = errors.New("device: invalid fleet spec")

// Fate is how a device's first attempt at the rollout ends. It is drawn
// once, when the fleet is generated.
type Fate uint8

// The fates.
const (
	// FateUpdated means the rollout succeeds.
	FateUpdated Fate = iota
	// FatePartial means the install writes some partitions and the device
	// boots incomplete.
	FatePartial
	// FateInstallFailed means the install fails before the reboot.
	FateInstallFailed
	// FateDownloadFailed means the download fails on a weak signal.
	FateDownloadFailed
)

// String returns the state the fate ends in.
func (f Fate) String() string { return string(f.Final()) }

// Final returns the OTA state a rollout with this fate ends in.
func (f Fate) Final() proto.State {
	switch f {
	case FatePartial:
		return proto.StatePartial
	case FateInstallFailed:
		return proto.StateInstallFailed
	case FateDownloadFailed:
		return proto.StateDownloadFailed
	}
	return proto.StateUpdated
}

// Spec describes the fleet Generate builds.
type Spec struct {
	// Devices is the number of devices.
	Devices int
	// Seed selects the fleet: the same Spec gives the same fleet.
	Seed int64
	// FailureShare is the share of devices whose install ends partial or
	// install_failed, before the regional bias multiplies it.
	FailureShare float64
	// FromFirmware is the version every device runs before the rollout.
	FromFirmware string
	// ToFirmware is the version the rollout installs.
	ToFirmware string
	// Regions are the regions devices are spread over; nil means DefaultRegions.
	Regions []Region
	// Models are the hardware models; nil means DefaultModels.
	Models []Model
}

// Profile is one device's static identity and the draws that fix its
// behaviour. Everything in it follows from the Spec.
type Profile struct {
	// Index is the device's position in the fleet, from 0.
	Index int
	// ID is the device ID, unique in the fleet and valid per proto.ValidateID.
	ID string
	// Region is the name of the device's region.
	Region string
	// Model is the name of the device's hardware model.
	Model string
	// FromFirmware is the version the device runs before the rollout.
	FromFirmware string
	// ToFirmware is the version the rollout installs.
	ToFirmware string
	// BatteryPct is the battery level at start, 0 to 100.
	BatteryPct float64
	// Charging is true when the device is on external power.
	Charging bool
	// RSSIMean is the device's mean signal strength in dBm.
	RSSIMean float64
	// TemperatureC is the device's board temperature at rest.
	TemperatureC float64
	// UptimeS is the device's uptime at start, in seconds.
	UptimeS int64
	// RolloutAt is when, as a fraction in [0, 1) of the rollout spread, the
	// device starts its update.
	RolloutAt float64
	// TelemetryPhase is the fraction in [0, 1) of a telemetry interval the
	// device's readings are offset by, so the fleet does not publish in step.
	TelemetryPhase float64
	// Fate is how the device's first update ends.
	Fate Fate
	// Seed seeds the device's own random draws: sensor noise, step
	// durations and the success of each retry.
	Seed uint64
}

// WeakSignal reports whether the device's mean signal is below WeakSignalDBm.
func (p Profile) WeakSignal() bool { return p.RSSIMean < WeakSignalDBm }

// Generate builds the fleet spec describes. It is deterministic: the same
// spec always gives the same profiles, in the same order. The draws a device
// makes do not depend on FailureShare, so changing it changes who fails but
// not the devices' identities.
func Generate(spec Spec) ([]Profile, error) {
	regions, models, err := spec.check()
	if err != nil {
		return nil, err
	}
	f := gofakeit.NewUnlocked(spec.Seed)
	regionPick := picker(len(regions), func(i int) float64 { return regions[i].Weight })
	modelPick := picker(len(models), func(i int) float64 { return models[i].Weight })

	out := make([]Profile, spec.Devices)
	for i := range out {
		// The order of the draws below is part of the fleet's definition:
		// changing it changes every fleet.
		suffix := f.IntRange(0, 1<<24-1)
		r := regions[pick(f, regionPick)]
		m := models[pick(f, modelPick)]
		var battery float64
		if f.Rand.Float64() < LowBatteryShare {
			battery = f.Float64Range(2, 30)
		} else {
			battery = f.Float64Range(30, 100)
		}
		charging := f.Rand.Float64() < ChargingShare
		rssi := clamp(r.RSSIMean+f.Rand.NormFloat64()*7, -125, -45)
		temp := m.TemperatureC + f.Rand.NormFloat64()*3
		uptime := int64(f.IntRange(600, 30*86400))
		rolloutAt := f.Rand.Float64()
		phase := f.Rand.Float64()
		failDraw, kindDraw, downloadDraw := f.Rand.Float64(), f.Rand.Float64(), f.Rand.Float64()
		seed := f.Uint64()

		p := Profile{
			Index:          i,
			ID:             fmt.Sprintf("dev-%05d-%06x", i, suffix),
			Region:         r.Name,
			Model:          m.Name,
			FromFirmware:   spec.FromFirmware,
			ToFirmware:     spec.ToFirmware,
			BatteryPct:     math.Round(battery*10) / 10,
			Charging:       charging,
			RSSIMean:       math.Round(rssi*10) / 10,
			TemperatureC:   math.Round(temp*10) / 10,
			UptimeS:        uptime,
			RolloutAt:      rolloutAt,
			TelemetryPhase: phase,
			Seed:           seed,
		}
		switch {
		case failDraw < clamp(spec.FailureShare*r.FailureBias, 0, 1):
			p.Fate = FatePartial
			if kindDraw >= 0.5 {
				p.Fate = FateInstallFailed
			}
		case p.WeakSignal() && downloadDraw < WeakDownloadFailShare:
			p.Fate = FateDownloadFailed
		default:
			p.Fate = FateUpdated
		}
		out[i] = p
	}
	return out, nil
}

func (s Spec) check() ([]Region, []Model, error) {
	regions, models := s.Regions, s.Models
	if regions == nil {
		regions = DefaultRegions()
	}
	if models == nil {
		models = DefaultModels()
	}
	switch {
	case s.Devices < 0:
		return nil, nil, fmt.Errorf("%w: %d devices", ErrSpec, s.Devices)
	case len(regions) == 0:
		return nil, nil, fmt.Errorf("%w: no regions", ErrSpec)
	case len(models) == 0:
		return nil, nil, fmt.Errorf("%w: no models", ErrSpec)
	case s.FromFirmware == "" || s.ToFirmware == "":
		return nil, nil, fmt.Errorf("%w: firmware versions are required", ErrSpec)
	}
	for _, r := range regions {
		if err := proto.ValidateID(r.Name); err != nil {
			return nil, nil, fmt.Errorf("%w: region name: %w", ErrSpec, err)
		}
		if !(r.Weight > 0) || r.FailureBias < 0 || r.RSSIMean < proto.MinRSSI || r.RSSIMean > proto.MaxRSSI {
			return nil, nil, fmt.Errorf("%w: region %q: weight must be positive, bias non-negative, RSSI mean in %d..%d dBm",
				ErrSpec, r.Name, proto.MinRSSI, proto.MaxRSSI)
		}
	}
	for _, m := range models {
		if m.Name == "" || !(m.Weight > 0) {
			return nil, nil, fmt.Errorf("%w: model %q needs a name and a positive weight", ErrSpec, m.Name)
		}
	}
	return regions, models, nil
}

// picker returns the cumulative weights of n options.
func picker(n int, weight func(int) float64) []float64 {
	cdf := make([]float64, n)
	sum := 0.0
	for i := range cdf {
		sum += weight(i)
		cdf[i] = sum
	}
	return cdf
}

// pick draws an index from cumulative weights cdf.
func pick(f *gofakeit.Faker, cdf []float64) int {
	x := f.Float64Range(0, cdf[len(cdf)-1])
	for i, c := range cdf {
		if x < c {
			return i
		}
	}
	return len(cdf) - 1
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
