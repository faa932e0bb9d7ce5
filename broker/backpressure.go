package broker

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sentinel-iot/sentinel/broker/hooks/store"
)

// ReasonQuotaExceeded counts QoS 1/2 publishes refused with PUBACK 0x97
// (quota exceeded) because a subscriber's session could only queue them
// and the backlog budget (StoreConfig.BacklogBytes) was spent, or the
// broker has no store to queue them in. The publisher keeps the message
// and resends it.
const ReasonQuotaExceeded = "quota_exceeded"

// Reasons messages the broker had accepted are dropped from a session's
// backlog, the label values of sentinel_broker_dropped_total beside
// DropSlowClient and DropInflight. None happens with the defaults unless
// a session ends or the disk fails.
const (
	// DropSessionEnded: the session ended (clean start, or it expired
	// with its connection), and MQTT discards its messages.
	DropSessionEnded = "session_ended"
	// DropBacklogWrite: writing the message to the store failed.
	DropBacklogWrite = "backlog_write_failed"
)

// errNoStore means a message had to be queued in a backlog and the broker
// has no store to hold one.
var errNoStore = errors.New("broker: no store to queue a session's backlog in")

// alarmEvery is the least time between two alarm log lines of one kind:
// under an outage a refusal comes with every publish, and one line per
// second per kind (with the count since the last) says as much.
const alarmEvery = time.Second

// spool is the store's side of a backlog (store.Hook implements it).
type spool interface {
	BacklogFits(pk packets.Packet, sessions int) bool
	BacklogLen(id string) int
	BacklogPush(cl *mqtt.Client, pk packets.Packet) error
	BacklogDrain(id string, max int, put func(packets.Packet) bool) (int, error)
	BacklogDiscard(id string) int
	BacklogBytes() (held, budget int64)
}

// backpressure is the broker's mqtt.Backlog (a Sentinel patch to mochi):
// a session whose inflight store is full queues its messages in the
// store's backlog, and past its budget (or without a store) publishes
// for it are refused with 0x97 instead of acknowledged and dropped. It
// counts every refusal and every loss, and logs them as rate-limited
// alarms.
type backpressure struct {
	spool spool // nil without a store: nothing can be queued
	m     *metrics
	log   *slog.Logger

	refusals alarm
	losses   alarm
}

// newBackpressure returns the backlog for a broker whose store is st (nil
// for none), counting in m.
func newBackpressure(st *store.Hook, m *metrics, log *slog.Logger) *backpressure {
	bp := &backpressure{m: m, log: log}
	if st != nil {
		bp.spool = st
	}
	m.mu.Lock()
	for _, r := range []string{DropSessionEnded, DropBacklogWrite} {
		m.dropped[r] = new(atomic.Uint64)
	}
	m.rejected[ReasonQuotaExceeded] = new(atomic.Uint64)
	m.mu.Unlock()
	m.reg.MustRegister(backlogCollector{bp})
	return bp
}

// Admit lets a publish in while the backlog's budget holds its copies.
func (b *backpressure) Admit(cl *mqtt.Client, pk packets.Packet, sessions int) bool {
	if b.spool != nil && b.spool.BacklogFits(pk, sessions) {
		return true
	}
	b.m.reject(ReasonQuotaExceeded)
	if n, ok := b.refusals.due(); ok {
		held, budget := b.held()
		b.log.Error("ALARM: publishes refused with 0x97 (quota exceeded): subscribers' in-flight windows are full and their backlog budget is spent",
			"refused_since_last", n, "client", cl.ID, "topic", pk.TopicName, "sessions_full", sessions,
			"backlog_bytes", held, "budget_bytes", budget)
	}
	return false
}

// Len returns how many messages wait in session id's backlog.
func (b *backpressure) Len(id string) int {
	if b.spool == nil {
		return 0
	}
	return b.spool.BacklogLen(id)
}

// Push queues pk in cl's backlog; a failure is counted as a loss.
func (b *backpressure) Push(cl *mqtt.Client, pk packets.Packet) error {
	err := errNoStore
	if b.spool != nil {
		err = b.spool.BacklogPush(cl, pk)
	}
	if err != nil {
		b.lost(DropBacklogWrite, 1, cl.ID, err)
	}
	return err
}

// Drain moves up to max of session id's oldest messages in flight.
func (b *backpressure) Drain(id string, max int, put func(packets.Packet) bool) (int, error) {
	if b.spool == nil {
		return 0, nil
	}
	return b.spool.BacklogDrain(id, max, put)
}

// Discard deletes an ended session's backlog, counting what it held.
func (b *backpressure) Discard(cl *mqtt.Client) {
	if b.spool == nil {
		return
	}
	if n := b.spool.BacklogDiscard(cl.ID); n > 0 {
		b.lost(DropSessionEnded, n, cl.ID, nil)
	}
}

// lost counts n messages dropped for reason and raises the alarm.
func (b *backpressure) lost(reason string, n int, client string, err error) {
	b.m.mu.Lock()
	c := b.m.dropped[reason]
	b.m.mu.Unlock()
	c.Add(uint64(n))
	if since, ok := b.losses.due(); ok {
		b.log.Error("ALARM: accepted messages dropped from a session's backlog",
			"reason", reason, "dropped_since_last", since, "client", client, "error", err)
	}
}

// held returns the backlog's bytes and budget, zero without a store.
func (b *backpressure) held() (held, budget int64) {
	if b.spool == nil {
		return 0, 0
	}
	return b.spool.BacklogBytes()
}

// alarm rate-limits one kind of alarm log line.
type alarm struct {
	mu    sync.Mutex
	last  time.Time
	count int // events since the last line
}

// due counts an event and reports whether a line is due, with the events
// it covers.
func (a *alarm) due() (int, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.count++
	now := time.Now()
	if !a.last.IsZero() && now.Sub(a.last) < alarmEvery {
		return 0, false
	}
	n := a.count
	a.last, a.count = now, 0
	return n, true
}

var (
	descBacklogBytes  = prometheus.NewDesc("sentinel_broker_backlog_bytes", "Bytes of messages queued on disk for sessions whose in-flight window is full.", nil, nil)
	descBacklogBudget = prometheus.NewDesc("sentinel_broker_backlog_budget_bytes", "The backlog's byte budget; past it publishes for full sessions are refused with 0x97.", nil, nil)
)

// backlogCollector exports the backlog's size and budget.
type backlogCollector struct{ b *backpressure }

// Describe sends the backlog metrics' descriptions.
func (c backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBacklogBytes
	ch <- descBacklogBudget
}

// Collect reads the backlog's size and budget.
func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	held, budget := c.b.held()
	ch <- prometheus.MustNewConstMetric(descBacklogBytes, prometheus.GaugeValue, float64(held))
	ch <- prometheus.MustNewConstMetric(descBacklogBudget, prometheus.GaugeValue, float64(budget))
}
