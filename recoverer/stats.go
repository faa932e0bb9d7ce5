package recoverer

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
)

// Stats are a Recoverer's counters since it was made. Ops read them to see
// the controller work; tests read them to wait for it.
type Stats struct {
	// Connected is true while the MQTT connection is up.
	Connected bool
	// ConnectFailures counts failed connection attempts; it climbing while
	// Connected stays false means the broker is unreachable or refuses us.
	ConnectFailures uint64
	// Devices is the number of devices the recoverer holds state for.
	Devices int
	// Status and Telemetry count the valid messages received of each kind.
	Status, Telemetry uint64
	// Duplicates counts messages dropped because their seq was not above
	// the last one seen from the device: redeliveries and reorderings.
	Duplicates uint64
	// Invalid counts messages that failed strict decoding.
	Invalid uint64
	// Coalesced counts readings replaced by a later reading of the same
	// device before the tracker took them (see readings): normal under
	// load, and why Telemetry can exceed what the tracker applied.
	Coalesced uint64
	// Results counts command results reported by devices, by outcome.
	Results map[proto.Outcome]uint64
	// Decisions counts decisions taken, by action (none included).
	Decisions map[proto.Action]uint64
	// Reasons counts decisions taken, by reason code.
	Reasons map[string]uint64
	// Commands counts commands sent, by action.
	Commands map[proto.Action]uint64
	// Published counts MQTT messages (commands and audit records) the
	// broker acknowledged.
	Published uint64
	// PublishFailures counts messages the broker refused; they are dropped.
	PublishFailures uint64
	// DecisionsStored and CommandsStored count rows committed to the warehouse.
	DecisionsStored, CommandsStored uint64
	// StoreFailures counts rows the warehouse writers would not take.
	StoreFailures uint64
	// Rebuilt is the number of devices whose state was rebuilt from the
	// warehouse at start.
	Rebuilt int
	// BreakerRuns counts cohort breaker queries; BreakerFailures those that failed.
	BreakerRuns, BreakerFailures uint64
	// Tripped lists the cohorts the breaker holds tripped, "firmware/region".
	Tripped []string
	// Latency holds decision latencies, status received to command
	// acknowledged by the broker, for commands caused by a status (the last
	// latencySamples of them).
	Latency []time.Duration
	// SendLatency is the same from status received to the command handed
	// to the MQTT client for sending, without the broker's round trip (and
	// without the inbound messages queued ahead of the PUBACK).
	SendLatency []time.Duration
}

// latencySamples bounds the decision latencies kept for Stats.
const latencySamples = 1 << 16

// statsCounter is the concurrency-safe store behind Stats.
type statsCounter struct {
	status, telemetry, duplicates, invalid, coalesced atomic.Uint64
	published, publishFailures                        atomic.Uint64
	decisionsStored, commandsStored, storeFailures    atomic.Uint64
	devices                                           atomic.Int64
	connected                                         atomic.Bool
	connectFailures                                   atomic.Uint64
	breakerRuns, breakerFailures                      atomic.Uint64
	rebuilt                                           atomic.Int64

	mu        sync.Mutex
	results   map[proto.Outcome]uint64
	decisions map[proto.Action]uint64
	reasons   map[string]uint64
	commands  map[proto.Action]uint64
	tripped   []string
	lat, send samples
}

// samples keeps the latest latencySamples durations, oldest overwritten.
type samples struct {
	d    []time.Duration
	next int
}

func (r *samples) add(d time.Duration) {
	if len(r.d) < latencySamples {
		r.d = append(r.d, d)
		return
	}
	r.d[r.next] = d
	r.next = (r.next + 1) % latencySamples
}

func (s *statsCounter) sendLatency(d time.Duration) {
	s.mu.Lock()
	s.send.add(d)
	s.mu.Unlock()
}

func (s *statsCounter) latency(d time.Duration) {
	s.mu.Lock()
	s.lat.add(d)
	s.mu.Unlock()
}

func (s *statsCounter) setTripped(c []string) {
	s.mu.Lock()
	s.tripped = c
	s.mu.Unlock()
}

func newStatsCounter() statsCounter {
	return statsCounter{
		results:   make(map[proto.Outcome]uint64),
		decisions: make(map[proto.Action]uint64),
		reasons:   make(map[string]uint64),
		commands:  make(map[proto.Action]uint64),
	}
}

func (s *statsCounter) result(o proto.Outcome) {
	s.mu.Lock()
	s.results[o]++
	s.mu.Unlock()
}

func (s *statsCounter) decision(a proto.Action, reason string) {
	s.mu.Lock()
	s.decisions[a]++
	s.reasons[reason]++
	s.mu.Unlock()
}

func (s *statsCounter) command(a proto.Action) {
	s.mu.Lock()
	s.commands[a]++
	s.mu.Unlock()
}

func (s *statsCounter) decisionStored()  { s.decisionsStored.Add(1) }
func (s *statsCounter) commandStored()   { s.commandsStored.Add(1) }
func (s *statsCounter) setDevices(n int) { s.devices.Store(int64(n)) }

// Stats returns a snapshot of the recoverer's counters. It is safe to call
// from any goroutine, during and after Run.
func (r *Recoverer) Stats() Stats {
	s := &r.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Connected:       s.connected.Load(),
		ConnectFailures: s.connectFailures.Load(),
		Devices:         int(s.devices.Load()),
		Status:          s.status.Load(),
		Telemetry:       s.telemetry.Load(),
		Duplicates:      s.duplicates.Load(),
		Invalid:         s.invalid.Load(),
		Coalesced:       s.coalesced.Load(),
		Results:         maps.Clone(s.results),
		Decisions:       maps.Clone(s.decisions),
		Reasons:         maps.Clone(s.reasons),
		Commands:        maps.Clone(s.commands),
		Published:       s.published.Load(),
		PublishFailures: s.publishFailures.Load(),
		DecisionsStored: s.decisionsStored.Load(),
		CommandsStored:  s.commandsStored.Load(),
		StoreFailures:   s.storeFailures.Load(),
		Rebuilt:         int(s.rebuilt.Load()),
		BreakerRuns:     s.breakerRuns.Load(),
		BreakerFailures: s.breakerFailures.Load(),
		Tripped:         slices.Clone(s.tripped),
		Latency:         slices.Clone(s.lat.d),
		SendLatency:     slices.Clone(s.send.d),
	}
}
