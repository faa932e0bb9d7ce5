package ingestor

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sentinel-iot/sentinel/warehouse"
)

// metrics are the ingestor's Prometheus series.
type metrics struct {
	reg         *prometheus.Registry
	consumed    *prometheus.CounterVec
	inserted    *prometheus.CounterVec
	failures    *prometheus.CounterVec
	batchRows   *prometheus.HistogramVec
	batchTime   *prometheus.HistogramVec
	commitLag   *prometheus.HistogramVec
	deadLetters *prometheus.CounterVec
	acked       prometheus.Counter
	acksDropped prometheus.Counter
	lagTelem    prometheus.Observer
	lagStatus   prometheus.Observer
}

const namespace, subsystem = "sentinel", "ingest"

// LagBuckets are the commit-lag histogram's buckets, in seconds: reading
// timestamp to warehouse commit, 5 ms to about 80 s.
var LagBuckets = prometheus.ExponentialBuckets(0.005, 1.5, 24)

func newMetrics(in *Ingestor) *metrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}
	}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts(opts("consumed_total",
			"Messages taken from the broker, by kind (telemetry, status, dead_letter).")), []string{"kind"}),
		inserted: prometheus.NewCounterVec(prometheus.CounterOpts(opts("inserted_rows_total",
			"Rows committed to the warehouse, by table.")), []string{"table"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts(opts("insert_failures_total",
			"Failed insert attempts (each retried), by table.")), []string{"table"}),
		batchRows: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem, Name: "batch_rows",
			Help: "Rows per committed batch, by table.", Buckets: prometheus.ExponentialBuckets(1, 2, 17)}, []string{"table"}),
		batchTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem, Name: "batch_seconds",
			Help: "Time of one committed insert, by table.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"table"}),
		commitLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Subsystem: subsystem, Name: "commit_lag_seconds",
			Help: "Reading timestamp to warehouse commit, by table.", Buckets: LagBuckets}, []string{"table"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts(opts("dead_letters_total",
			"Rejected messages stored in dead_letters, by reason.")), []string{"reason"}),
		acked: prometheus.NewCounter(prometheus.CounterOpts(opts("acked_total",
			"Messages acknowledged to the broker after their commit."))),
		acksDropped: prometheus.NewCounter(prometheus.CounterOpts(opts("acks_dropped_total",
			"Commits whose ack was not sent because their connection had gone; the broker redelivers them."))),
	}
	m.lagTelem = m.commitLag.WithLabelValues(warehouse.TableTelemetry)
	m.lagStatus = m.commitLag.WithLabelValues(warehouse.TableStatusEvents)
	unacked := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("inflight_unacked",
		"Messages taken from the broker and not yet acknowledged (or dropped at a reconnect).")), func() float64 {
		s := in.Stats()
		return float64(s.Received - s.Acked - s.AcksDropped)
	})
	degraded := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("degraded",
		"1 while the warehouse refuses writes (inserts retried, nothing acknowledged) or a commit has been outstanding longer than the bound (a warehouse that hangs), else 0.")), func() float64 {
		if in.Stats().Degraded {
			return 1
		}
		return 0
	})
	degradedFor := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("degraded_seconds",
		"How long the current warehouse outage has lasted; 0 when healthy.")), func() float64 {
		if since := in.Stats().DegradedSince; !since.IsZero() {
			return time.Since(since).Seconds()
		}
		return 0
	})
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("pending_rows",
		"Rows queued in the batch writers and not yet committed.")), func() float64 {
		return float64(in.Stats().Pending)
	})
	m.reg.MustRegister(m.consumed, m.inserted, m.failures, m.batchRows, m.batchTime, m.commitLag, m.deadLetters,
		m.acked, m.acksDropped, unacked, degraded, degradedFor, pending,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// onFlush records one insert attempt of a writer.
func (m *metrics) onFlush(f warehouse.FlushInfo) {
	if f.Err != nil {
		m.failures.WithLabelValues(f.Table).Inc()
		return
	}
	m.inserted.WithLabelValues(f.Table).Add(float64(f.Rows))
	m.batchRows.WithLabelValues(f.Table).Observe(float64(f.Rows))
	m.batchTime.WithLabelValues(f.Table).Observe(f.Took.Seconds())
}

// Handler serves the ingestor's metrics in the Prometheus text format,
// for a /metrics endpoint: consumed messages, inserted rows, batch size and
// time, commit lag, dead letters by reason, in-flight unacknowledged
// messages, degraded state, and the Go runtime and process series.
func (in *Ingestor) Handler() http.Handler {
	return promhttp.HandlerFor(in.metrics.reg, promhttp.HandlerOpts{})
}

// Registry returns the registry holding the ingestor's series, so a caller
// can gather them itself or serve them alongside its own.
func (in *Ingestor) Registry() *prometheus.Registry { return in.metrics.reg }
