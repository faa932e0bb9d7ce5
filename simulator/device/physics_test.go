package device

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/proto"
)

// TestOCVCurve holds OCV to the documented curve (PHYSICS.md, "Open-circuit
// voltage"): its points, linear between them, increasing.
func TestOCVCurve(t *testing.T) {
	for _, tc := range []struct{ pct, volts float64 }{
		{0, 3.27}, {5, 3.61}, {10, 3.69}, {20, 3.73}, {50, 3.84}, {80, 4.02}, {100, 4.20},
		{2.5, (3.27 + 3.61) / 2}, {97.5, (4.15 + 4.20) / 2},
		{-5, 3.27}, {120, 4.20},
	} {
		require.InDelta(t, tc.volts, OCV(tc.pct), 1e-9, "OCV(%g)", tc.pct)
	}
	for pct := 0.5; pct <= 100; pct += 0.5 {
		require.Greater(t, OCV(pct), OCV(pct-0.5), "OCV increases at %g %%", pct)
	}
}

// TestInternalResistance holds RInt to the documented factors: about 2x
// new after rIntDoublingCycles, about 4x at -20 °C, lower when warm, and
// higher near empty.
func TestInternalResistance(t *testing.T) {
	const r0 = 0.1
	mid := RInt(r0, 0, 25, 50)
	require.InDelta(t, r0, mid, r0*0.01, "new, 25 °C, mid charge")
	require.InDelta(t, 2, RInt(r0, 500, 25, 50)/mid, 1e-9, "end of life doubles it")
	require.InDelta(t, 4, RInt(r0, 0, -20, 50)/mid, 0.05, "-20 °C quadruples it")
	require.InDelta(t, 2.0, RInt(r0, 0, 0, 50)/mid, 0.1, "0 °C about doubles it")
	require.Less(t, RInt(r0, 0, 45, 50), mid, "warm is lower")
	require.InDelta(t, 1.8, RInt(r0, 0, 25, 0)/RInt(r0, 0, 25, 100), 0.01, "empty is 80 % higher")
}

// TestSag: the terminal voltage is the OCV minus I·R, on the documented
// curves; a charger carries the load it can, so the cell sags only by the
// rest.
func TestSag(t *testing.T) {
	h := Hardware{RIntOhm: 0.2}
	for _, tc := range []struct {
		name string
		c    Cell
		ma   float64
	}{
		{"new, mid charge, flash", Cell{Pct: 50, TempC: 25}, 120},
		{"worn, cold, near empty", Cell{Pct: 8, Cycles: 700, TempC: -10}, 120},
		{"full, radio", Cell{Pct: 100, Cycles: 100, TempC: 40}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := OCV(tc.c.Pct) - tc.ma/1000*RInt(0.2, tc.c.Cycles, tc.c.TempC, tc.c.Pct)
			require.InDelta(t, want, h.TerminalVolts(tc.c, tc.ma), 1e-12)
			require.InDelta(t, OCV(tc.c.Pct), h.TerminalVolts(tc.c, 0), 1e-12, "no load, no sag")
			charging := tc.c
			charging.Charging = true
			require.InDelta(t, OCV(tc.c.Pct), h.TerminalVolts(charging, tc.ma), 1e-12, "the charger carries a load under its current")
			want = OCV(tc.c.Pct) - (tc.ma+chargerMA-chargerMA)/1000*RInt(0.2, tc.c.Cycles, tc.c.TempC, tc.c.Pct)
			require.InDelta(t, want, h.TerminalVolts(charging, tc.ma+chargerMA), 1e-12, "and the cell the rest")
		})
	}
	// 120 mA on a new 0.2 Ω cell at 25 °C and 50 %: 24 mV.
	require.InDelta(t, 0.024, OCV(50)-h.TerminalVolts(Cell{Pct: 50, TempC: 25}, 120), 0.0005)
}

// TestBrickRiskMonotone: for every default model, the chance that a flash
// write loses power, and so a single-bank retry's and rollback's brick
// risk, never rises with more charge or a warmer cell, and never falls
// with more wear; it is near certain on an empty cell and negligible on a
// full, warm one.
func TestBrickRiskMonotone(t *testing.T) {
	for _, m := range DefaultModels() {
		h := m.Hardware
		h.Storage = proto.StorageSingle
		loss := func(pct, temp float64, cycles int) float64 {
			return h.PowerLoss(Cell{Pct: pct, TempC: temp, Cycles: cycles}, m.CapacityMAh, h.FlashMA, h.FlashTime())
		}
		t.Run(m.Name, func(t *testing.T) {
			for _, cycles := range []int{0, 300, 900} {
				for temp := -30.0; temp <= 60; temp += 5 {
					for pct := 1.0; pct <= 100; pct++ {
						here := loss(pct, temp, cycles)
						require.LessOrEqual(t, here, loss(pct-1, temp, cycles), "more charge is no riskier (%g %%, %g °C, %d cycles)", pct, temp, cycles)
						require.LessOrEqual(t, loss(pct, temp+5, cycles), here, "warmer is no riskier (%g %%, %g °C)", pct, temp)
						require.GreaterOrEqual(t, loss(pct, temp, cycles+100), here, "wear is no safer (%g %%, %g °C)", pct, temp)
						z := Hazards{FlashLoss: here}
						require.Equal(t, here, RiskOf(proto.ActionRetry, proto.StatePartial, h.Storage, z, RetrySuccess).Brick)
						require.Equal(t, here, RiskOf(proto.ActionRollback, proto.StatePartial, h.Storage, z, RetrySuccess).Brick)
					}
				}
			}
			require.Greater(t, loss(0, 25, 0), 0.99, "an empty cell browns out")
			require.Less(t, loss(100, 40, 0), 1e-12, "a full warm cell does not")
		})
	}
}

// TestBrickRiskCalibration pins the documented operating points of the
// single-bank models (PHYSICS.md, "What the model says"), so a change to a
// constant that moves them shows.
func TestBrickRiskCalibration(t *testing.T) {
	models := map[string]Model{}
	for _, m := range DefaultModels() {
		models[m.Name] = m
	}
	for _, tc := range []struct {
		model    string
		pct      float64
		temp     float64
		cycles   int
		lo, hi   float64
		describe string
	}{
		{"meter-m2", 20, 25, 300, 0, 1e-9, "a meter at 20 % is safe"},
		{"meter-m2", 5, 25, 300, 1e-5, 1e-2, "at 5 % it is a gamble"},
		{"meter-m2", 5, -5, 900, 0.05, 1, "worn and freezing at 5 %, a likely brick"},
		{"camera-c1", 30, 45, 300, 0, 1e-6, "a warm camera at 30 % is safe"},
		{"camera-c1", 10, 45, 900, 1e-4, 0.1, "a worn one at 10 % is over the budget"},
	} {
		t.Run(tc.describe, func(t *testing.T) {
			m := models[tc.model]
			got := m.PowerLoss(Cell{Pct: tc.pct, TempC: tc.temp, Cycles: tc.cycles}, m.CapacityMAh, m.FlashMA, m.FlashTime())
			require.True(t, got >= tc.lo && got <= tc.hi, "%s: %g not in [%g, %g]", tc.describe, got, tc.lo, tc.hi)
		})
	}
}

// TestABNeverBricksOnPowerLoss: on A/B storage no action bricks, whatever
// the chance of power loss, in any state; the state machine agrees on
// every draw.
func TestABNeverBricksOnPowerLoss(t *testing.T) {
	for _, loss := range []float64{0, 1e-4, 0.5, 1} {
		z := Hazards{FlashLoss: loss, DownloadFail: loss}
		for _, state := range []proto.State{proto.StatePartial, proto.StateInstallFailed, proto.StateBootFailed, proto.StateDownloadFailed, proto.StateVerifyFailed, proto.StateRolledBack} {
			for _, a := range []proto.Action{proto.ActionRetry, proto.ActionRollback} {
				r := RiskOf(a, state, proto.StorageAB, z, RetrySuccess)
				require.Zero(t, r.Brick, "%s from %s with loss %g", a, state, loss)
				single := RiskOf(a, state, proto.StorageSingle, z, RetrySuccess)
				require.GreaterOrEqual(t, single.Brick, r.Brick)
			}
		}
	}
	for seed := uint64(0); seed < 200; seed++ {
		for _, state := range []proto.State{proto.StatePartial, proto.StateInstallFailed, proto.StateDownloadFailed} {
			for _, a := range []proto.Action{proto.ActionRetry, proto.ActionRollback} {
				m := machineIn(t, state, seed)
				m.storage = proto.StorageAB
				plan := m.Accept(&proto.Command{CommandID: fmt.Sprint("c-", seed), Action: a}, Conditions{BatteryPct: 1, Hazards: Hazards{FlashLoss: 1}})
				require.NotContains(t, plan.Path, proto.StateBricked, "seed %d %s from %s", seed, a, state)
			}
		}
	}
}

// TestDownloadSuccessLogistic: half the attempts succeed at the midpoint,
// the curve falls smoothly (no cliff), 90 % to 10 % over about 11 dB, and
// a weak link stretches the download and so its charge.
func TestDownloadSuccessLogistic(t *testing.T) {
	require.InDelta(t, 0.5, DownloadSuccess(LinkMidpointDBm), 1e-12)
	require.Greater(t, DownloadSuccess(-90), 0.99)
	require.Less(t, DownloadSuccess(-115), 0.01)
	span := 2 * LinkSlopeDB * math.Log(9)
	require.InDelta(t, 11, span, 0.1)
	for rssi := -130.0; rssi < -40; rssi++ {
		step := DownloadSuccess(rssi+1) - DownloadSuccess(rssi)
		require.Positive(t, step)
		require.Less(t, step, 0.11, "no cliff at %g dBm", rssi)
	}
	h := DefaultModels()[0].Hardware
	require.Greater(t, h.DownloadTime(-108), h.DownloadTime(-80))
}

// TestFirstWindow: a single-bank device at 3 % on an overnight charger has
// a safe window once the charger comes on (in the evening, hours into a
// run that starts at noon); the same device on battery alone has none in a
// day; an A/B device has one at once.
func TestFirstWindow(t *testing.T) {
	meter := DefaultModels()[1]
	p := Profile{Model: meter.Name, Hardware: meter.Hardware, CapacityMAh: meter.CapacityMAh, TemperatureC: 20,
		BatteryPct: 3, ChargeCycles: 300, RSSIMean: -80}
	p.Power, p.ChargePeriod, p.ChargeOn, p.ChargePhase = PowerCycled, 24*time.Hour, 8.0/24, math.Mod((RunStartHour-22.0)/24+1, 1)
	s := NewSensors(p)
	at, ok := FirstWindow(p, s, proto.StatePartial, proto.ActionRetry, TruthRiskBudget, TruthMinSuccess, 0, 24*time.Hour)
	require.True(t, ok)
	require.InDelta(t, 10, at.Hours(), 0.2, "the charger comes on at 22:00, 10 h after noon")

	battery := p
	battery.Power = PowerBattery
	_, ok = FirstWindow(battery, NewSensors(battery), proto.StatePartial, proto.ActionRetry, TruthRiskBudget, TruthMinSuccess, 0, 24*time.Hour)
	require.False(t, ok, "draining, it never gets safer")

	ab := battery
	ab.Storage = proto.StorageAB
	at, ok = FirstWindow(ab, NewSensors(ab), proto.StatePartial, proto.ActionRollback, TruthRiskBudget, TruthMinSuccess, 0, 24*time.Hour)
	require.True(t, ok)
	require.Zero(t, at)
}
