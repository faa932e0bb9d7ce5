package device

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/brianvoe/gofakeit/v6"
	"github.com/sentinel-iot/sentinel/proto"
)

// Shares and thresholds of a generated fleet.
const (
	// LowBatteryShare is the share of devices generated with a battery
	// below 30 %.
	LowBatteryShare = 0.18
	// ChargingShare is the share of devices generated on mains power: they
	// charge all the time.
	ChargingShare = 0.12
	// CycledChargingShare is the share of the other devices that are put on
	// a charger on a daily schedule (a tracker docked overnight, a camera
	// on a desk charger during working hours).
	CycledChargingShare = 0.35
	// OvernightShare is the share of scheduled chargers that charge
	// overnight; the rest charge during working hours.
	OvernightShare = 0.7
	// PlugInShare is the share of battery-only devices a person plugs in
	// once, at a random time of the day, for a few hours; the rest only
	// drain.
	PlugInShare = 0.3
	// RunStartHour is the local hour of the day at which a run starts,
	// which places the charge schedules in it.
	RunStartHour = 12
	// MoverShare is the share of devices that move (vehicles, carried
	// trackers): their signal swings by up to 15 dB over a few hours.
	MoverShare = 0.15
	// BasementShare is the share of devices installed where the signal
	// is poor and stays so (a basement, a meter cabinet): 20 dB below their
	// region's usual, with little variation.
	BasementShare = 0.05
	// basementLossDB is how much weaker a basement device's signal is.
	basementLossDB = 20
	// WeakSignalDBm is the mean signal strength under which a device counts
	// as weak-signal: its downloads fail far more often and retries of a
	// failed download fail while the signal stays weak.
	WeakSignalDBm = -100
	// WeakDownloadFailShare is the share of weak-signal devices, among those
	// not already chosen to fail, whose first download fails.
	WeakDownloadFailShare = 0.4
	// DownloadFailShare is the same share for devices with a usable signal.
	DownloadFailShare = 0.01
	// UnrecoverableShare is the share of boot_failed devices whose boot
	// loader the update corrupted: neither a retry nor a rollback fixes
	// them, only a person with a cable.
	UnrecoverableShare = 0.25
	// DefaultBadBuildFactor multiplies the failure share of devices that
	// install the bad build.
	DefaultBadBuildFactor = 4.0
)

// failureKinds are the ways an injected install failure ends, with their
// relative weights. partial is the most common: it is the hard case.
var failureKinds = []struct {
	fate   Fate
	weight float64
}{
	{FatePartial, 0.35},
	{FateInstallFailed, 0.30},
	{FateVerifyFailed, 0.15},
	{FateBootFailed, 0.20},
}

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
	// FateDownloadFailed means the download fails, most often on a weak signal.
	FateDownloadFailed
	// FateVerifyFailed means the downloaded image fails its signature or
	// checksum check.
	FateVerifyFailed
	// FateBootFailed means the new image does not boot; the device falls
	// back to its previous slot and reports it.
	FateBootFailed
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
	case FateVerifyFailed:
		return proto.StateVerifyFailed
	case FateBootFailed:
		return proto.StateBootFailed
	}
	return proto.StateUpdated
}

// Power is how a device is powered.
type Power uint8

// The power sources.
const (
	// PowerBattery devices never charge during a run.
	PowerBattery Power = iota
	// PowerMains devices are always on external power.
	PowerMains
	// PowerCycled devices are on a charger for part of every charging period.
	PowerCycled
)

// Signal is how a device's radio signal behaves over time.
type Signal uint8

// The signal behaviours.
const (
	// SignalSteady devices sit still: their signal is noise around a mean.
	SignalSteady Signal = iota
	// SignalMover devices move: their mean swings slowly.
	SignalMover
	// SignalBasement devices sit where the signal is poor and stays poor.
	SignalBasement
)

// String names the behaviour.
func (s Signal) String() string {
	switch s {
	case SignalMover:
		return "mover"
	case SignalBasement:
		return "basement"
	}
	return "steady"
}

// String names the power source.
func (p Power) String() string {
	switch p {
	case PowerMains:
		return "mains"
	case PowerCycled:
		return "cycled"
	}
	return "battery"
}

// BadBuild is a firmware build that fails far more often than the rest,
// everywhere or in one region: the cohort the recoverer's breaker exists for.
type BadBuild struct {
	// Firmware is the bad version; devices installing it are affected.
	// Empty means no bad build.
	Firmware string
	// Region, when set, limits the effect to devices in that region.
	Region string
	// Factor multiplies the failure share of affected devices, and divides
	// their chance that a retry succeeds. Zero means DefaultBadBuildFactor.
	Factor float64
}

// Spec describes the fleet Generate builds.
type Spec struct {
	// Devices is the number of devices.
	Devices int
	// Seed selects the fleet: the same Spec gives the same fleet.
	Seed int64
	// FailureShare is the share of devices whose install fails (partial,
	// install_failed, verify_failed or boot_failed), before the regional
	// bias and the bad build multiply it.
	FailureShare float64
	// FromFirmware is the version every device runs before the rollout.
	FromFirmware string
	// ToFirmware is the version the rollout installs.
	ToFirmware string
	// Regions are the regions devices are spread over; nil means DefaultRegions.
	Regions []Region
	// Models are the hardware models; nil means DefaultModels.
	Models []Model
	// Waves are the cumulative shares of the fleet, in percent, that have
	// started updating once each wave of the rollout has begun, ending at
	// 100; nil means one wave. Profile.Wave follows from them.
	Waves []float64
	// BadBuild is the build that fails far more often; zero means none.
	BadBuild BadBuild
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
	// Hardware is the model's battery, loads and flash layout.
	Hardware
	// FromFirmware is the version the device runs before the rollout.
	FromFirmware string
	// ToFirmware is the version the rollout installs.
	ToFirmware string
	// BatteryPct is the battery level at start, 0 to 100.
	BatteryPct float64
	// CapacityMAh is the battery's capacity now, after wear.
	CapacityMAh float64
	// ChargeCycles is the number of full charge cycles the battery has
	// been through before the run; each costs a little capacity.
	ChargeCycles int
	// Power is how the device is powered.
	Power Power
	// ChargePeriod is, for a PowerCycled device, the length of its charging
	// cycle in device time: a day for the generated schedules.
	ChargePeriod time.Duration
	// ChargeOn is the fraction of ChargePeriod the device spends on the
	// charger, at the start of each period.
	ChargeOn float64
	// ChargePhase is the fraction of ChargePeriod the cycle has run at
	// the start of the run.
	ChargePhase float64
	// Overnight is true for a PowerCycled device charged overnight, false
	// for one charged during working hours.
	Overnight bool
	// PlugInAt and PlugInFor are, for a PowerBattery device a person plugs
	// in once, when (device time after the start of the run) and for how
	// long; PlugInFor is 0 for a device nobody plugs in.
	PlugInAt, PlugInFor time.Duration
	// Signal is how the device's signal behaves over time.
	Signal Signal
	// SignalSwingDB, SignalPeriod and SignalPhase shape a mover's mean
	// signal: RSSIMean plus SignalSwingDB times a sine of period
	// SignalPeriod (device time), SignalPhase of a period in at the start.
	SignalSwingDB float64
	SignalPeriod  time.Duration
	SignalPhase   float64
	// Charging is true when the device is on external power at start.
	Charging bool
	// RSSIMean is the device's mean signal strength in dBm.
	RSSIMean float64
	// RSSINoise is the standard deviation of one signal reading, in dB.
	RSSINoise float64
	// TemperatureC is the device's board temperature at rest.
	TemperatureC float64
	// UptimeS is the device's uptime at start, in seconds.
	UptimeS int64
	// BootCount is how many times the device has booted before the run.
	BootCount int
	// Wave is the rollout wave the device belongs to, from 0.
	Wave int
	// RolloutAt is when, as a fraction in [0, 1) of its wave's spread, the
	// device starts its update.
	RolloutAt float64
	// TelemetryPhase is the fraction in [0, 1) of a telemetry interval the
	// device's readings are offset by, so the fleet does not publish in step.
	TelemetryPhase float64
	// Fate is how the device's first update ends.
	Fate Fate
	// BadBuild is true when the device installs the bad build.
	BadBuild bool
	// Unrecoverable is true for a boot_failed device whose boot loader the
	// update corrupted: no command fixes it.
	Unrecoverable bool
	// Seed seeds the device's own random draws: sensor noise, step
	// durations and the success of each retry.
	Seed uint64
}

// WeakSignal reports whether the device's mean signal is below WeakSignalDBm.
func (p Profile) WeakSignal() bool { return p.RSSIMean < WeakSignalDBm }

// ChargingAt reports whether the device is on external power at device
// time t after the start of the run.
func (p Profile) ChargingAt(t time.Duration) bool {
	switch p.Power {
	case PowerMains:
		return true
	case PowerCycled:
		if p.ChargePeriod <= 0 {
			return false
		}
		pos := math.Mod(p.ChargePhase+float64(t)/float64(p.ChargePeriod), 1)
		return pos < p.ChargeOn
	}
	return p.PlugInFor > 0 && t >= p.PlugInAt && t < p.PlugInAt+p.PlugInFor
}

// RSSIMeanAt returns the device's mean signal at device time t after the
// start of the run: RSSIMean, swinging for a mover.
func (p Profile) RSSIMeanAt(t time.Duration) float64 {
	if p.Signal != SignalMover || p.SignalPeriod <= 0 {
		return p.RSSIMean
	}
	return p.RSSIMean + p.SignalSwingDB*math.Sin(2*math.Pi*(p.SignalPhase+float64(t)/float64(p.SignalPeriod)))
}

// RetryOK is the probability that a retry of the device's update
// succeeds when nothing physical gets in its way.
func (p Profile) RetryOK() float64 {
	switch {
	case p.Unrecoverable:
		return 0
	case p.BadBuild:
		return RetrySuccessBadBuild
	}
	return RetrySuccess
}

// Generate builds the fleet spec describes. It is deterministic: the same
// spec always gives the same profiles, in the same order, and a smaller
// fleet is a prefix of a larger one. The draws a device makes do not depend
// on FailureShare or the bad build, so changing them changes who fails but
// not the devices' identities.
func Generate(spec Spec) ([]Profile, error) {
	regions, models, err := spec.check()
	if err != nil {
		return nil, err
	}
	factor := spec.BadBuild.Factor
	if factor == 0 {
		factor = DefaultBadBuildFactor
	}
	f := gofakeit.NewUnlocked(spec.Seed)
	regionPick := picker(len(regions), func(i int) float64 { return regions[i].Weight })
	modelPick := picker(len(models), func(i int) float64 { return models[i].Weight })

	out := make([]Profile, spec.Devices)
	for i := range out {
		// The order of the draws below is part of the fleet's definition:
		// changing it changes every fleet. New draws go at the end.
		suffix := f.IntRange(0, 1<<24-1)
		r := regions[pick(f, regionPick)]
		m := models[pick(f, modelPick)]
		var battery float64
		if f.Rand.Float64() < LowBatteryShare {
			battery = f.Float64Range(2, 30)
		} else {
			battery = f.Float64Range(30, 100)
		}
		mains := f.Rand.Float64() < ChargingShare
		rssi := clamp(r.RSSIMean+f.Rand.NormFloat64()*7, -125, -45)
		temp := m.TemperatureC + r.TemperatureOffsetC + f.Rand.NormFloat64()*3
		uptime := int64(f.IntRange(600, 30*86400))
		rolloutAt := f.Rand.Float64()
		phase := f.Rand.Float64()
		failDraw, kindDraw, downloadDraw := f.Rand.Float64(), f.Rand.Float64(), f.Rand.Float64()
		seed := f.Uint64()
		waveDraw, cycledDraw, unrecoverDraw := f.Rand.Float64(), f.Rand.Float64(), f.Rand.Float64()
		cycles := f.IntRange(0, 900)
		// The draws of the old 2-12 h charge schedules, kept so the draws
		// after them stay where they were.
		_, _, _ = f.IntRange(2, 12), f.Float64Range(0.2, 0.5), f.Rand.Float64()
		boots := f.IntRange(1, 400)
		signalDraw, swing, signalHours, signalPhase := f.Rand.Float64(), f.Float64Range(8, 15), f.Float64Range(2, 8), f.Rand.Float64()
		overnightDraw, startHour, onHours := f.Rand.Float64(), f.Float64Range(0, 2), f.Float64Range(6, 9)
		plugDraw, plugAt, plugFor := f.Rand.Float64(), f.Float64Range(0, 24), f.Float64Range(2, 6)

		p := Profile{
			Index:          i,
			ID:             fmt.Sprintf("dev-%05d-%06x", i, suffix),
			Region:         r.Name,
			Model:          m.Name,
			Hardware:       m.Hardware,
			FromFirmware:   spec.FromFirmware,
			ToFirmware:     spec.ToFirmware,
			BatteryPct:     math.Round(battery*10) / 10,
			CapacityMAh:    math.Round(m.CapacityMAh * (1 - 0.0003*float64(cycles))),
			ChargeCycles:   cycles,
			RSSIMean:       math.Round(rssi*10) / 10,
			RSSINoise:      r.RSSINoise,
			TemperatureC:   math.Round(temp*10) / 10,
			UptimeS:        uptime,
			BootCount:      boots,
			Wave:           waveOf(spec.Waves, waveDraw),
			RolloutAt:      rolloutAt,
			TelemetryPhase: phase,
			Seed:           seed,
		}
		switch {
		case mains:
			p.Power = PowerMains
		case cycledDraw < CycledChargingShare:
			// A daily charger: overnight from 21:00-23:00 local, or during
			// working hours from 08:00-10:00, for 6 to 9 hours.
			start := 8 + startHour
			p.Overnight = overnightDraw < OvernightShare
			if p.Overnight {
				start = 21 + startHour
			}
			p.Power, p.ChargePeriod, p.ChargeOn = PowerCycled, 24*time.Hour, onHours/24
			p.ChargePhase = math.Mod((RunStartHour-start)/24+1, 1)
		case plugDraw < PlugInShare:
			p.PlugInAt, p.PlugInFor = hours(plugAt), hours(plugFor)
		}
		switch {
		case signalDraw < BasementShare:
			p.Signal = SignalBasement
			p.RSSIMean = math.Round(clamp(rssi-basementLossDB, -125, -45)*10) / 10
			p.RSSINoise = r.RSSINoise / 2
		case signalDraw < BasementShare+MoverShare:
			p.Signal, p.SignalSwingDB, p.SignalPeriod, p.SignalPhase = SignalMover, math.Round(swing*10)/10, hours(signalHours), signalPhase
		}
		p.Charging = p.ChargingAt(0)
		bb := spec.BadBuild
		p.BadBuild = bb.Firmware != "" && bb.Firmware == p.ToFirmware && (bb.Region == "" || bb.Region == p.Region)
		share := spec.FailureShare * r.FailureBias
		if p.BadBuild {
			share *= factor
		}
		downloadShare := DownloadFailShare
		if p.WeakSignal() {
			downloadShare = WeakDownloadFailShare
		}
		switch {
		case failDraw < clamp(share, 0, 0.95):
			p.Fate = failureKind(kindDraw)
			p.Unrecoverable = p.Fate == FateBootFailed && unrecoverDraw < UnrecoverableShare
		case downloadDraw < downloadShare:
			p.Fate = FateDownloadFailed
		default:
			p.Fate = FateUpdated
		}
		out[i] = p
	}
	return out, nil
}

// failureKind maps a uniform draw to an install failure, by failureKinds' weights.
func failureKind(u float64) Fate {
	total := 0.0
	for _, k := range failureKinds {
		total += k.weight
	}
	x := u * total
	for _, k := range failureKinds {
		if x < k.weight {
			return k.fate
		}
		x -= k.weight
	}
	return failureKinds[len(failureKinds)-1].fate
}

// waveOf returns the wave a device with uniform draw u belongs to, given
// the waves' cumulative percentages.
func waveOf(waves []float64, u float64) int {
	for i, w := range waves {
		if u*100 < w {
			return i
		}
	}
	return max(len(waves)-1, 0)
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
	case s.BadBuild.Factor < 0:
		return nil, nil, fmt.Errorf("%w: bad build factor %g is negative", ErrSpec, s.BadBuild.Factor)
	}
	if err := CheckWaves(s.Waves); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrSpec, err)
	}
	for _, r := range regions {
		if err := proto.ValidateID(r.Name); err != nil {
			return nil, nil, fmt.Errorf("%w: region name: %w", ErrSpec, err)
		}
		if !(r.Weight > 0) || r.FailureBias < 0 || r.RSSINoise < 0 || r.RSSIMean < proto.MinRSSI || r.RSSIMean > proto.MaxRSSI {
			return nil, nil, fmt.Errorf("%w: region %q: weight must be positive, bias and noise non-negative, RSSI mean in %d..%d dBm",
				ErrSpec, r.Name, proto.MinRSSI, proto.MaxRSSI)
		}
	}
	if b := s.BadBuild.Region; b != "" && !hasRegion(regions, b) {
		return nil, nil, fmt.Errorf("%w: bad build region %q is not a region of the fleet", ErrSpec, b)
	}
	for _, m := range models {
		if m.Name == "" || !(m.Weight > 0) || !(m.CapacityMAh > 0) {
			return nil, nil, fmt.Errorf("%w: model %q needs a name, a positive weight and a positive capacity", ErrSpec, m.Name)
		}
		if m.Storage != "" && !m.Storage.Valid() {
			return nil, nil, fmt.Errorf("%w: model %q: storage %q is not %q or %q", ErrSpec, m.Name, m.Storage, proto.StorageAB, proto.StorageSingle)
		}
	}
	return regions, models, nil
}

// CheckWaves reports whether waves is a usable rollout plan: cumulative
// percentages, strictly increasing, above 0, ending at exactly 100. Nil is
// usable (one wave).
func CheckWaves(waves []float64) error {
	prev := 0.0
	for i, w := range waves {
		if !(w > prev) || w > 100 {
			return fmt.Errorf("wave %d at %g%%: waves must be cumulative percentages, increasing, in (0, 100]", i+1, w)
		}
		prev = w
	}
	if len(waves) > 0 && prev != 100 {
		return fmt.Errorf("the last wave is at %g%%: it must reach 100", prev)
	}
	return nil
}

func hasRegion(regions []Region, name string) bool {
	for _, r := range regions {
		if r.Name == name {
			return true
		}
	}
	return false
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

// hours is h hours as a duration, to the second.
func hours(h float64) time.Duration {
	return time.Duration(math.Round(h*3600)) * time.Second
}
