package inproc

import (
	"context"
	"fmt"
	"time"

	"github.com/sentinel-iot/sentinel/analytics/efficacy"
	"github.com/sentinel-iot/sentinel/recoverer"
	"github.com/sentinel-iot/sentinel/simulator"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// StoreTruth stores the simulator's ground truth of one run, what
// efficacy scores the run against.
func StoreTruth(ctx context.Context, db *warehouse.DB, run efficacy.Run, ts []simulator.Truth) error {
	return warehouse.Insert(ctx, db, warehouse.TableGroundTruth, truthRows(run, ts))
}

// truthRows maps the simulator's ground truth of one run onto warehouse rows.
// Waves count from 1 there, as on the wire and in status_events (the
// simulator's Truth counts from 0), so a join on wave matches.
func truthRows(run efficacy.Run, ts []simulator.Truth) []warehouse.GroundTruthRow {
	rows := make([]warehouse.GroundTruthRow, len(ts))
	for i, t := range ts {
		rows[i] = warehouse.GroundTruthRow{
			RunID: run.ID, Controller: run.Controller, RunStarted: run.Started, RunEnded: run.Ended, DeviceID: t.DeviceID, Region: t.Region, Model: t.Model, ToFirmware: t.ToFirmware,
			Wave: uint16(t.Wave + 1), BadBuild: t.BadBuild, Power: t.Power, WeakSignal: t.WeakSignal,
			Fate: string(t.Fate), Cause: t.Cause, Started: t.Started, Remedy: string(t.Remedy),
			RetriesToFix: uint16(t.RetriesToFix), BatteryAtFailure: float32(t.BatteryAtFailure),
			ChargingAtFailure: t.ChargingAtFailure, FinalState: string(t.FinalState), FinalFirmware: t.FinalFirmware,
			BatteryPct: float32(t.BatteryPct), Commands: uint32(t.Commands), Retries: uint32(t.Retries),
			Rollbacks: uint32(t.Rollbacks), Defers: uint32(t.Defers), Halts: uint32(t.Halts),
			UnsafeCommands: uint32(t.UnsafeCommands), BrickedBy: t.BrickedBy, Verdict: string(t.Verdict),
		}
	}
	return rows
}

// Trial runs the whole pipeline once with one controller, its fleet for
// d, and scores the run against the simulator's ground truth with the
// guards g, as `sentinel bench recover` does for each controller. It
// returns the recoverer's counters too, for the decision latency.
func Trial(ctx context.Context, db *warehouse.DB, controller string, cfg Config, d time.Duration, g efficacy.Guards) (efficacy.Score, recoverer.Stats, error) {
	p, err := Start(ctx, db, cfg)
	if err != nil {
		return efficacy.Score{}, recoverer.Stats{}, err
	}
	fleetCtx, stop := context.WithTimeout(ctx, d)
	defer stop()
	p.RunFleet(fleetCtx)
	<-fleetCtx.Done()
	if err := p.Drain(30 * time.Second); err != nil {
		p.log.Warn("drain", "err", err)
	}
	shutdownErr := p.Shutdown()
	st := p.recov.Stats()
	run := p.Run(controller)
	if err := StoreTruth(context.WithoutCancel(ctx), db, run, p.fleet.GroundTruth()); err != nil {
		return efficacy.Score{}, st, fmt.Errorf("store ground truth: %w", err)
	}
	e, err := efficacy.Compute(context.WithoutCancel(ctx), db, run, g)
	if err != nil {
		return e, st, err
	}
	if shutdownErr != nil {
		p.log.Warn("pipeline shutdown", "err", shutdownErr)
	}
	return e, st, nil
}
