package broker

import "github.com/prometheus/client_golang/prometheus"

var (
	descStoreSyncs      = prometheus.NewDesc("sentinel_broker_store_syncs_total", "Group commits of the store: one fsync each.", nil, nil)
	descStoreSyncErrors = prometheus.NewDesc("sentinel_broker_store_sync_errors_total", "Group commits whose fsync failed.", nil, nil)
	descStoreSync       = prometheus.NewDesc("sentinel_broker_store_sync_seconds", "How long each fsync of the store took: its write latency.", nil, nil)
	descStoreAckDelay   = prometheus.NewDesc("sentinel_broker_store_ack_delay_seconds", "How long a publish acknowledgement waited for durability.", nil, nil)
	descStoreBatch      = prometheus.NewDesc("sentinel_broker_store_batch_size", "Acknowledgements released by each fsync.", nil, nil)
)

// storeCollector exports the store's statistics (Broker.StoreStats), when
// the broker has a store.
type storeCollector struct{ b *Broker }

// Describe sends the store metrics' descriptions.
func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStoreSyncs, descStoreSyncErrors, descStoreSync, descStoreAckDelay, descStoreBatch} {
		ch <- d
	}
}

// Collect reads a snapshot of the store's statistics.
func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.b.StoreStats()
	if !ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(descStoreSyncs, prometheus.CounterValue, float64(st.Syncs))
	ch <- prometheus.MustNewConstMetric(descStoreSyncErrors, prometheus.CounterValue, float64(st.SyncErrors))
	ch <- prometheus.MustNewConstHistogram(descStoreSync, st.SyncSeconds.Count, st.SyncSeconds.Sum, st.SyncSeconds.Buckets())
	ch <- prometheus.MustNewConstHistogram(descStoreAckDelay, st.AckDelaySeconds.Count, st.AckDelaySeconds.Sum, st.AckDelaySeconds.Buckets())
	ch <- prometheus.MustNewConstHistogram(descStoreBatch, st.BatchSize.Count, st.BatchSize.Sum, st.BatchSize.Buckets())
}
