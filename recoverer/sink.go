package recoverer

import (
	"context"
	"log/slog"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/warehouse"
)

// sink is the one place where what the tracker decided leaves the
// recoverer: it publishes each decision's command and audit record and
// stores their rows. The tracker's goroutine calls it. For a batch of
// outputs it works in this order, which the guarantees need:
//
//  1. Every command, into the outbox's priority lane. Pushing never blocks
//     (see outbox), so a command goes out first, within milliseconds of
//     the status that caused it, whatever the warehouse is doing.
//  2. Every audit record, into the outbox's audit lane. The outbox sends
//     it only once no command waits, so a decision's command reaches the
//     device before the audit record that explains it is published.
//  3. Then the command and decision rows, into the warehouse writers.
//     Add blocks while a writer's queue is full (a slow or stopped
//     warehouse), so storing last keeps a warehouse outage from holding
//     back a command that is already decided. The rows are stored under
//     the context apply is given, which the loop makes to outlive Run's
//     by ShutdownTimeout: a stop that begins now still stores every row
//     whose message was published (a cancelled context used to drop rows
//     whose audit was already out), which is what a restart rebuilds from
//     to send no command twice and lose no attempt.
//
// The two writers commit independently, so nothing orders a command's row
// against its decision's; rebuild reads each table on its own. A row is as
// durable as its writer's batch: a kill before the batch commits (up to
// the writer's MaxDelay after publishing) loses the rows of messages
// already sent.
type sink struct {
	out       *outbox
	decisions *warehouse.Writer[warehouse.DecisionRow]
	commands  *warehouse.Writer[warehouse.CommandRow]
	// verdictRows takes the cohort breaker's verdicts (breaker_verdicts).
	verdictRows *warehouse.Writer[warehouse.BreakerVerdictRow]
	stats       *statsCounter
	log         *slog.Logger
}

// sent is one output whose messages are in the outbox, with what is left
// to store of it.
type sent struct {
	o        output
	log      *slog.Logger
	command  bool // its command was published: store its row
	decision bool // its audit record was published: store its row
}

// apply publishes, then stores, the tracker's outputs, in the order the
// sink's doc gives. ctx bounds storing only: publishing never waits.
func (s *sink) apply(ctx context.Context, outs []output) {
	if len(outs) == 0 {
		return
	}
	done := make([]sent, 0, len(outs))
	for _, o := range outs {
		if x, ok := s.publishCommand(o); ok {
			done = append(done, x)
		}
	}
	for i := range done {
		s.publishDecision(&done[i])
	}
	for _, x := range done {
		s.store(ctx, x)
	}
}

// publishCommand queues o's command, if it has one. It reports false when
// the command cannot be encoded: then nothing of o is published or stored.
func (s *sink) publishCommand(o output) (sent, bool) {
	d := o.decision
	x := sent{o: o, log: s.log.With("device", d.DeviceID, "region", o.region, "state", d.State, "action", d.Action, "reason", d.Reason)}
	c := o.command
	if c == nil {
		x.log.Debug("decision", "attempt", d.Attempt)
		return x, true
	}
	payload, err := proto.Encode(c)
	if err != nil {
		// A bug in the tracker, not in the input: say so loudly.
		x.log.Error("cannot encode command; not sent", "err", err)
		return sent{}, false
	}
	s.out.pushUrgent(&paho.Publish{Topic: proto.CommandTopic(o.region, c.DeviceID), QoS: 1, Payload: payload}, o.received)
	s.stats.command(c.Action)
	x.command = true
	x.log.Info("command sent", "command_id", c.CommandID, "target_firmware", c.TargetFirmware, "attempt", d.Attempt)
	return x, true
}

// publishDecision queues x's audit record.
func (s *sink) publishDecision(x *sent) {
	d := x.o.decision
	payload, err := proto.Encode(d)
	if err != nil {
		x.log.Error("cannot encode decision; not published", "err", err)
		return
	}
	s.stats.decision(d.Action, d.Reason)
	s.out.push(&paho.Publish{Topic: proto.RecoveryTopic(x.o.region, d.DeviceID), QoS: 1, Payload: payload}, time.Time{})
	x.decision = true
}

// store hands x's rows to the warehouse writers; a row they will not take
// (ctx ended, or the writer stopped) is counted and logged.
func (s *sink) store(ctx context.Context, x sent) {
	if c := x.o.command; x.command {
		if err := s.commands.Add(ctx, warehouse.CommandRowOf(c, x.o.region), s.stats.commandStored); err != nil {
			s.stats.storeFailures.Add(1)
			x.log.Warn("command not stored", "command_id", c.CommandID, "err", err)
		}
	}
	if x.decision {
		if err := s.decisions.Add(ctx, warehouse.DecisionRowOf(x.o.decision), s.stats.decisionStored); err != nil {
			s.stats.storeFailures.Add(1)
			x.log.Warn("decision not stored", "err", err)
		}
	}
}

// verdicts hands the breaker's verdict rows to their writer; a row it will
// not take is counted and logged.
func (s *sink) verdicts(ctx context.Context, rows []warehouse.BreakerVerdictRow) {
	for _, row := range rows {
		if err := s.verdictRows.Add(ctx, row, nil); err != nil {
			s.stats.storeFailures.Add(1)
			s.log.Warn("breaker verdict not stored", "firmware", row.Firmware, "region", row.Region, "err", err)
		}
	}
}

// advise queues the breaker's retained advisories (an empty payload
// clears one) in the priority lane; nothing of them is stored.
func (s *sink) advise(pubs []*paho.Publish, tripped []string) {
	for _, p := range pubs {
		s.out.pushUrgent(p, time.Time{})
		s.log.Warn("cohort breaker advisory", "topic", p.Topic, "cleared", len(p.Payload) == 0, "tripped", tripped)
	}
}

// storeContext returns the context the sink stores under: it ends grace
// after ctx does, or at cancel, so what was decided before a stop is
// stored, and a warehouse that stays down cannot hold the stop forever.
func storeContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	store, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return store, func() { stop(); cancel() }
}
