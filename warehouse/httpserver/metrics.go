package httpserver

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus series, on /metrics.
type metrics struct {
	queries       *prometheus.CounterVec
	errors        *prometheus.CounterVec
	insertedRows  prometheus.Counter
	insertedBytes prometheus.Counter
	duration      *prometheus.HistogramVec
	inFlight      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "sentinel", "warehouse_http"
	m := &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "queries_total",
			Help: "Queries received, by kind (select, insert, other)."}, []string{"kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "errors_total",
			Help: "Requests answered with an error, by ClickHouse error code."}, []string{"code"}),
		insertedRows: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "inserted_rows_total",
			Help: "Rows inserted through INSERT requests."}),
		insertedBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "inserted_bytes_total",
			Help: "Bytes of INSERT data received, after decompression."}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "query_duration_seconds",
			Help: "Time from request to response, by kind.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, []string{"kind"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "queries_in_flight",
			Help: "Queries admitted and not yet answered."}),
	}
	for _, c := range []prometheus.Collector{m.queries, m.errors, m.insertedRows, m.insertedBytes, m.duration, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
