package device

import (
	"math"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
)

// The device physics: a Li-ion cell's open-circuit voltage, its internal
// resistance as it ages and cools, the sag a flash write or a download
// puts on it, the brown-out that sag can cause mid-write, and the radio
// link's chance of carrying a download. PHYSICS.md gives the sources of
// every curve and constant; the table tests hold the code to them.

// ocvTable is the open-circuit voltage of a LiCoO2/NMC Li-ion or LiPo cell
// at rest, in volts, at 0, 5, ..., 100 % state of charge (PHYSICS.md,
// "Open-circuit voltage"): a steep knee under 10 %, a flat plateau around
// 3.7-3.9 V, and 4.20 V full.
var ocvTable = [21]float64{
	3.27, 3.61, 3.69, 3.71, 3.73, 3.75, 3.77, 3.79, 3.80, 3.82,
	3.84, 3.85, 3.87, 3.91, 3.95, 3.98, 4.02, 4.08, 4.11, 4.15, 4.20,
}

// OCV returns the open-circuit voltage, in volts, of a cell at pct percent
// state of charge, interpolated linearly in ocvTable.
func OCV(pct float64) float64 {
	x := clamp(pct, 0, 100) / 5
	i := int(x)
	if i >= len(ocvTable)-1 {
		return ocvTable[len(ocvTable)-1]
	}
	f := x - float64(i)
	return ocvTable[i]*(1-f) + ocvTable[i+1]*f
}

// Internal resistance model (PHYSICS.md, "Internal resistance").
const (
	// referenceTempK is 25 °C, where a model's RIntOhm is given.
	referenceTempK = 298.15
	// rIntActivationK is E_a/R of the cell's resistance, in kelvin: the
	// Arrhenius slope that makes a cell's resistance about 4 times its
	// 25 °C value at -20 °C (3-5x in the sources).
	rIntActivationK = 2325.0
	// rIntDoublingCycles is the number of full cycles over which the
	// resistance grows by its new value: about twice new at end of life
	// (80 % capacity, 500 cycles for a consumer Li-ion cell).
	rIntDoublingCycles = 500.0
	// rIntLowSoCRise and rIntLowSoCScalePct shape the rise of the
	// resistance near empty: +80 % at 0 %, fading with a 8 % scale.
	rIntLowSoCRise     = 0.8
	rIntLowSoCScalePct = 8.0
	// absoluteZeroC converts degrees Celsius to kelvin.
	absoluteZeroC = -273.15
)

// RInt returns the internal resistance, in ohms, of a cell whose new value
// at 25 °C is newOhm, after cycles full charge cycles, at tempC degrees
// Celsius and pct percent state of charge: it grows linearly with age,
// exponentially in the cold (Arrhenius) and near empty.
func RInt(newOhm float64, cycles int, tempC, pct float64) float64 {
	age := 1 + float64(max(cycles, 0))/rIntDoublingCycles
	tk := clamp(tempC, -40, 85) - absoluteZeroC
	cold := math.Exp(rIntActivationK * (1/tk - 1/referenceTempK))
	low := 1 + rIntLowSoCRise*math.Exp(-clamp(pct, 0, 100)/rIntLowSoCScalePct)
	return newOhm * age * cold * low
}

// Load, charger and brown-out constants (PHYSICS.md).
const (
	// restCurrentMA is what a device draws between operations: MCU and
	// modem mostly asleep, a reading now and then.
	restCurrentMA = 12.0
	// chargerMA is the current a charger supplies: a USB 2.0 port's
	// 500 mA. A power-path charger feeds the system first, so only a load
	// above it is drawn from the cell.
	chargerMA = 500.0
	// transientSigmaV is the standard deviation, in volts, of the extra
	// dip a load transient (a modem's transmit burst, an erase pulse)
	// adds to the I·R sag at the worst moment of an operation: brown-out
	// is the chance the sag plus that dip crosses the model's threshold.
	transientSigmaV = 0.04
	// activeWarmthC is how much a device warms while it works.
	activeWarmthC        = 8.0
	temperatureTimeConst = time.Minute
)

// Download link model (PHYSICS.md, "Radio link").
const (
	// LinkMidpointDBm is the signal at which half the download attempts
	// succeed.
	LinkMidpointDBm = -103.0
	// LinkSlopeDB is the logistic's scale, in dB: from 90 % to 10 %
	// success over about 11 dB.
	LinkSlopeDB = 2.5
	// minLinkThroughput bounds how slow a weak link makes a download:
	// retransmissions stretch it to at most 10 times its good-signal time.
	minLinkThroughput = 0.1
)

// DownloadSuccess returns the probability that one download attempt at
// rssi dBm completes: a logistic in the signal, not a cliff.
func DownloadSuccess(rssi float64) float64 {
	return 1 / (1 + math.Exp(-(rssi-LinkMidpointDBm)/LinkSlopeDB))
}

// Hardware is the electrical side of a hardware model: its battery, its
// loads and how its firmware is stored.
type Hardware struct {
	// Storage is the flash layout: proto.StorageAB or proto.StorageSingle.
	// Empty is treated as single bank, the layout that can brick.
	Storage proto.Storage
	// RIntOhm is the battery's internal resistance, new, at 25 °C and
	// mid charge, with its protection circuit and connector.
	RIntOhm float64
	// BrownoutV is the battery voltage under which the device resets:
	// its regulator's input minimum or its brown-out detector's level.
	BrownoutV float64
	// FlashMA is the device's current while it writes an image to flash.
	FlashMA float64
	// ImageKB is the firmware image's size.
	ImageKB float64
	// WriteKBps is the flash's sustained erase-and-program rate.
	WriteKBps float64
	// RadioMA is the device's current while it downloads.
	RadioMA float64
	// DownloadKBps is the download rate on a good signal.
	DownloadKBps float64
}

// FlashTime is how long writing one image takes.
func (h Hardware) FlashTime() time.Duration {
	if !(h.WriteKBps > 0) {
		return 0
	}
	return time.Duration(h.ImageKB / h.WriteKBps * float64(time.Second))
}

// DownloadTime is how long one download attempt at rssi dBm takes:
// longer on a weak link, whose retransmissions lower the throughput.
func (h Hardware) DownloadTime(rssi float64) time.Duration {
	if !(h.DownloadKBps > 0) {
		return 0
	}
	rate := h.DownloadKBps * math.Max(DownloadSuccess(rssi), minLinkThroughput)
	return time.Duration(h.ImageKB / rate * float64(time.Second))
}

// Cell is a battery's condition at one moment, what its voltage depends on.
type Cell struct {
	// Pct is the state of charge in percent.
	Pct float64
	// Cycles is the number of full charge cycles.
	Cycles int
	// TempC is the cell's temperature in degrees Celsius.
	TempC float64
	// Charging is true while a charger supplies the device.
	Charging bool
}

// batteryMA is the part of a load of loadMA the cell supplies: all of it,
// or what exceeds the charger's current while charging.
func (c Cell) batteryMA(loadMA float64) float64 {
	if c.Charging {
		return math.Max(0, loadMA-chargerMA)
	}
	return loadMA
}

// TerminalVolts returns the cell's terminal voltage while the device
// draws loadMA: the open-circuit voltage minus the I·R sag.
func (h Hardware) TerminalVolts(c Cell, loadMA float64) float64 {
	return OCV(c.Pct) - c.batteryMA(loadMA)/1000*RInt(h.RIntOhm, c.Cycles, c.TempC, c.Pct)
}

// PowerLoss returns the probability that an operation drawing loadMA for
// d, started in condition c of a battery of capacityMAh, browns the device
// out before it ends: the sag at its end (the charge it spends lowers the
// open-circuit voltage) plus a normal transient dip crosses BrownoutV.
// On a charger that carries the whole load it is 0.
func (h Hardware) PowerLoss(c Cell, capacityMAh, loadMA float64, d time.Duration) float64 {
	if c.Charging && c.batteryMA(loadMA) == 0 {
		// A power-path charger holds the system rail from its input,
		// whatever the cell's voltage.
		return 0
	}
	if capacityMAh > 0 {
		c.Pct -= c.batteryMA(loadMA) * d.Hours() / capacityMAh * 100
	}
	if c.Pct <= 0 {
		return 1
	}
	margin := h.TerminalVolts(c, loadMA) - h.BrownoutV
	return normalTail(margin / transientSigmaV)
}

// normalTail is P(Z > z) for a standard normal Z.
func normalTail(z float64) float64 { return 0.5 * math.Erfc(z/math.Sqrt2) }

// Risk is what an action would do to a device if it started now: the
// ground truth the controller's estimates are scored against.
type Risk struct {
	// Brick is the probability the action bricks the device.
	Brick float64
	// Success is the probability it ends with the device working on the
	// action's firmware (the target for a retry, the previous for a
	// rollback).
	Success float64
}

// Hazards are the chances of the physical events a command can meet,
// judged at the moment it starts; the state machine draws against them.
type Hazards struct {
	// FlashLoss is the probability that power is lost while an image is
	// written.
	FlashLoss float64
	// DownloadFail is the probability that a download attempt fails: the
	// link drops it, or the radio's current browns the device out.
	DownloadFail float64
}

// HazardsOf returns the hazards of a device of model h with battery
// capacityMAh, in condition c, at rssi dBm.
func HazardsOf(h Hardware, capacityMAh float64, c Cell, rssi float64) Hazards {
	flash := h.PowerLoss(c, capacityMAh, h.FlashMA, h.FlashTime())
	radioLoss := h.PowerLoss(c, capacityMAh, h.RadioMA, h.DownloadTime(rssi))
	return Hazards{FlashLoss: flash, DownloadFail: 1 - DownloadSuccess(rssi)*(1-radioLoss)}
}

// RiskOf returns the ground-truth risk of action on a device in state
// with hazards z, layout storage, installing a build whose retries
// succeed with probability retryOK (RetrySuccess, or less for the bad
// build; 0 for an unrecoverable device). A retry from a failed download
// or verify downloads first; a retry writes the image, which on a single
// bank bricks the device if power is lost and on A/B falls back to the old
// slot; a rollback on A/B switches slots and writes nothing, on a single
// bank rewrites the old image with the flash's risk.
func RiskOf(action proto.Action, state proto.State, storage proto.Storage, z Hazards, retryOK float64) Risk {
	single := storage != proto.StorageAB
	switch action {
	case proto.ActionRetry:
		reach := 1.0
		if state == proto.StateDownloadFailed || state == proto.StateVerifyFailed {
			reach = 1 - z.DownloadFail
		}
		r := Risk{Success: reach * (1 - z.FlashLoss) * retryOK}
		if single {
			r.Brick = reach * z.FlashLoss
		}
		return r
	case proto.ActionRollback:
		if !single {
			return Risk{Success: 1}
		}
		return Risk{Brick: z.FlashLoss, Success: 1 - z.FlashLoss}
	}
	return Risk{}
}
