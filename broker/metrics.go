package broker

import (
	"errors"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sentinel-iot/sentinel/broker/hooks/acl"
	"github.com/sentinel-iot/sentinel/broker/hooks/auth"
	"github.com/sentinel-iot/sentinel/broker/hooks/limits"
)

// Reasons the broker refuses a connection or a packet, the label values of
// sentinel_broker_rejected_total. Each is counted once per refusal.
const (
	ReasonPacketTooLarge = "packet_too_large" // a packet past Config.MaxPacketSize: connection closed
	ReasonMaxConnections = "max_connections"  // past Limits.MaxConnections: CONNACK 0x89
	ReasonMalformed      = "malformed_packet" // undecodable packet: connection closed
	ReasonProtocol       = "protocol_error"   // packet that breaks the protocol: DISCONNECT 0x82
	ReasonReceiveMaximum = "receive_maximum"  // more unacknowledged QoS 1/2 publishes than Limits.ReceiveMaximum: DISCONNECT 0x93
	ReasonACLPublish     = "acl_publish"      // PUBLISH to a topic the ACL denies: PUBACK 0x87
	ReasonACLSubscribe   = "acl_subscribe"    // SUBSCRIBE (or a delivery) the ACL denies: SUBACK 0x87
)

// reasons lists every reason, so each series exists from the start.
var reasons = []string{
	auth.ReasonClientID, auth.ReasonDeviceClientID, auth.ReasonBadCredentials, auth.ReasonAnonymous, auth.ReasonWill,
	auth.ReasonNoCertificate, auth.ReasonBadCertificate, auth.ReasonRevoked,
	limits.ReasonRate, limits.ReasonWildcard, limits.ReasonReserved,
	ReasonPacketTooLarge, ReasonMaxConnections, ReasonMalformed, ReasonProtocol, ReasonReceiveMaximum,
	ReasonACLPublish, ReasonACLSubscribe,
}

// Reasons messages are dropped, the label values of sentinel_broker_dropped_total.
const (
	// DropSlowClient: a client's pending writes were full (mochi
	// MaximumClientWritesPending).
	DropSlowClient = "slow_client"
	// DropInflight: a QoS 1/2 message found its session out of packet IDs
	// with no backlog to queue it in, and was never stored for it (mochi's
	// Info.InflightDropped, told through OnInflightDropped). A full
	// in-flight store (Limits.MaxInflight) queues in the backlog instead,
	// or the publish is refused (ReasonQuotaExceeded).
	DropInflight = "inflight_full"
	// DropDiscarded: a QoS 1/2 message left a session's in-flight store
	// unacknowledged: it expired (Limits.MaxMessageExpiry), the client
	// refused it (a PUBREC or PUBREL error code), or its session ended.
	DropDiscarded = "discarded"
)

// metrics counts what the broker refuses and drops, and serves those counts
// and mochi's own $SYS numbers to Prometheus.
type metrics struct {
	reg *prometheus.Registry
	mu  sync.Mutex
	// counts are keyed by label values joined with a tab.
	rejected map[string]*atomic.Uint64
	dropped  map[string]*atomic.Uint64
	acl      map[string]*atomic.Uint64 // role \t access
	info     func() *system.Info
	// inflight counts the messages in the sessions' in-flight stores.
	inflight func() int64
}

// newMetrics returns the broker's metrics, reading mochi's counters from
// info and the in-flight messages from inflight, with the Go runtime and
// process collectors registered beside them.
func newMetrics(info func() *system.Info, inflight func() int64) *metrics {
	m := &metrics{
		reg:      prometheus.NewRegistry(),
		rejected: map[string]*atomic.Uint64{},
		dropped:  map[string]*atomic.Uint64{},
		acl:      map[string]*atomic.Uint64{},
		info:     info,
		inflight: inflight,
	}
	for _, r := range reasons {
		m.rejected[r] = new(atomic.Uint64)
	}
	for _, r := range []string{DropSlowClient, DropInflight, DropDiscarded} {
		m.dropped[r] = new(atomic.Uint64)
	}
	m.reg.MustRegister(m,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) inc(set map[string]*atomic.Uint64, key string) {
	m.mu.Lock()
	c, ok := set[key]
	if !ok {
		c = new(atomic.Uint64)
		set[key] = c
	}
	m.mu.Unlock()
	c.Add(1)
}

// reject counts one refusal.
func (m *metrics) reject(reason string) { m.inc(m.rejected, reason) }

// authDenied counts a refused CONNECT.
func (m *metrics) authDenied(reason string) { m.reject(reason) }

// aclDenied counts an ACL denial, by role and access, and as a rejection.
func (m *metrics) aclDenied(role auth.Role, access acl.Access) {
	if role == "" {
		role = "unknown"
	}
	m.inc(m.acl, string(role)+"\t"+access.String())
	if access == acl.Write {
		m.reject(ReasonACLPublish)
	} else {
		m.reject(ReasonACLSubscribe)
	}
}

// connectionEnded counts what ended a connection, when it was a refusal no
// hook saw: a packet too large, the connection limit, a malformed packet or
// a protocol error (err is what mochi's EstablishConnection returned).
func (m *metrics) connectionEnded(err error) {
	var code packets.Code
	switch {
	case err == nil:
	case errors.Is(err, packets.ErrPacketTooLarge):
		m.reject(ReasonPacketTooLarge)
	case errors.Is(err, packets.ErrServerBusy):
		m.reject(ReasonMaxConnections)
	case errors.Is(err, packets.ErrRejectPacket):
		// A hook refused the packet and counted it.
	case errors.As(err, &code) && code.Code == packets.ErrMalformedPacket.Code:
		m.reject(ReasonMalformed)
	case errors.As(err, &code) && code.Code == packets.ErrProtocolViolation.Code:
		m.reject(ReasonProtocol)
	case errors.As(err, &code) && code.Code == packets.ErrReceiveMaximum.Code:
		m.reject(ReasonReceiveMaximum)
	}
}

func snapshot(m *metrics, set map[string]*atomic.Uint64) map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]uint64, len(set))
	for k, c := range set {
		out[k] = c.Load()
	}
	return out
}

var (
	descRejected  = prometheus.NewDesc("sentinel_broker_rejected_total", "Connections and packets the broker refused, by reason.", []string{"reason"}, nil)
	descDropped   = prometheus.NewDesc("sentinel_broker_dropped_total", "Messages the broker dropped on the way to a subscriber, by reason.", []string{"reason"}, nil)
	descACL       = prometheus.NewDesc("sentinel_broker_acl_denied_total", "ACL denials by the client's role and the access refused (read: subscribe or delivery; write: publish).", []string{"role", "access"}, nil)
	descConnected = prometheus.NewDesc("sentinel_broker_clients_connected", "Clients connected now.", nil, nil)
	descMsgIn     = prometheus.NewDesc("sentinel_broker_messages_received_total", "PUBLISH packets received from clients.", nil, nil)
	descMsgOut    = prometheus.NewDesc("sentinel_broker_messages_sent_total", "PUBLISH packets sent to clients.", nil, nil)
	descBytesIn   = prometheus.NewDesc("sentinel_broker_received_bytes_total", "Bytes received from clients.", nil, nil)
	descBytesOut  = prometheus.NewDesc("sentinel_broker_sent_bytes_total", "Bytes sent to clients.", nil, nil)
	descInflight  = prometheus.NewDesc("sentinel_broker_inflight_messages", "QoS 1 and 2 messages in the sessions' in-flight stores, awaiting acknowledgement.", nil, nil)
	descSubs      = prometheus.NewDesc("sentinel_broker_subscriptions", "Subscriptions held.", nil, nil)
	descRetained  = prometheus.NewDesc("sentinel_broker_retained_messages", "Retained messages held.", nil, nil)
	descClients   = prometheus.NewDesc("sentinel_broker_clients_maximum", "Most clients connected at once since start, resumed sessions included.", nil, nil)
)

// Describe sends the metrics' descriptions.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRejected, descDropped, descACL, descConnected, descMsgIn, descMsgOut,
		descBytesIn, descBytesOut, descInflight, descSubs, descRetained, descClients} {
		ch <- d
	}
}

// Collect reads the counters and mochi's system info.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	emit := func(d *prometheus.Desc, set map[string]*atomic.Uint64) {
		snap := snapshot(m, set)
		keys := make([]string, 0, len(snap))
		for k := range snap {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(snap[k]), splitTab(k)...)
		}
	}
	emit(descRejected, m.rejected)
	emit(descDropped, m.dropped)
	emit(descACL, m.acl)
	in := m.info()
	for _, g := range []struct {
		d *prometheus.Desc
		t prometheus.ValueType
		v int64
	}{
		{descConnected, prometheus.GaugeValue, in.ClientsConnected},
		{descMsgIn, prometheus.CounterValue, in.MessagesReceived},
		{descMsgOut, prometheus.CounterValue, in.MessagesSent},
		{descBytesIn, prometheus.CounterValue, in.BytesReceived},
		{descBytesOut, prometheus.CounterValue, in.BytesSent},
		{descInflight, prometheus.GaugeValue, m.inflight()},
		{descSubs, prometheus.GaugeValue, in.Subscriptions},
		{descRetained, prometheus.GaugeValue, in.Retained},
		{descClients, prometheus.GaugeValue, in.ClientsMaximum},
	} {
		ch <- prometheus.MustNewConstMetric(g.d, g.t, float64(g.v))
	}
}

func splitTab(k string) []string {
	for i := 0; i < len(k); i++ {
		if k[i] == '\t' {
			return []string{k[:i], k[i+1:]}
		}
	}
	return []string{k}
}

// metricsHook counts messages mochi drops.
type metricsHook struct {
	mqtt.HookBase
	m *metrics
}

// ID returns the ID of the hook.
func (h *metricsHook) ID() string { return "sentinel-metrics" }

// Provides says which hook methods the hook implements.
func (h *metricsHook) Provides(b byte) bool {
	return b == mqtt.OnPublishDropped || b == mqtt.OnQosDropped || b == mqtt.OnInflightDropped
}

// OnPublishDropped counts a message dropped because the subscriber's
// pending writes were full.
func (h *metricsHook) OnPublishDropped(*mqtt.Client, packets.Packet) {
	h.m.inc(h.m.dropped, DropSlowClient)
}

// OnQosDropped counts a QoS 1/2 message discarded from a session's
// in-flight store.
func (h *metricsHook) OnQosDropped(*mqtt.Client, packets.Packet) {
	h.m.inc(h.m.dropped, DropDiscarded)
}

// OnInflightDropped counts a QoS 1/2 message its session's full in-flight
// store could not take (mqtt.InflightDropObserver).
func (h *metricsHook) OnInflightDropped(*mqtt.Client, packets.Packet) {
	h.m.inc(h.m.dropped, DropInflight)
}

// Handler serves the broker's metrics in the Prometheus text format.
func (b *Broker) Handler() http.Handler {
	return promhttp.HandlerFor(b.sec.metrics.reg, promhttp.HandlerOpts{})
}

// Registry returns the registry holding the broker's series, so a caller
// (or another hook, such as the store's latency histograms) can register
// more collectors beside them.
func (b *Broker) Registry() *prometheus.Registry { return b.sec.metrics.reg }

// Rejected returns how many refusals the broker has counted, by reason
// (the Reason* constants, and those of the auth and limits hooks).
func (b *Broker) Rejected() map[string]uint64 { return snapshot(b.sec.metrics, b.sec.metrics.rejected) }

// ACLDenied returns the ACL denials, keyed "role\taccess".
func (b *Broker) ACLDenied() map[string]uint64 { return snapshot(b.sec.metrics, b.sec.metrics.acl) }

// Dropped returns the messages dropped, by reason.
func (b *Broker) Dropped() map[string]uint64 { return snapshot(b.sec.metrics, b.sec.metrics.dropped) }
