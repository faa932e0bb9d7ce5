package recoverer

import (
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/require"
)

// TestOutboxOrderWithinTopic: urgent messages leave many at a time, but
// one per topic, so a retained advisory's clear never overtakes its trip
// and two commands to one device keep their order.
func TestOutboxOrderWithinTopic(t *testing.T) {
	o := newOutbox()
	pub := func(topic, payload string) *paho.Publish {
		return &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)}
	}
	o.pushUrgent(pub("sentinel/rollout/1.5.0/halt", "trip"), time.Time{})
	o.pushUrgent(pub("sentinel/rollout/1.5.0/halt", ""), time.Time{})
	o.pushUrgent(pub("fleet/eu/d1/cmd", "retry"), time.Time{})
	o.push(pub("sentinel/recovery/eu/d1", "decision"), time.Time{})

	m, ok := o.takeUrgent()
	require.True(t, ok)
	require.Equal(t, "trip", string(m.p.Payload))
	_, ok = o.takeUrgent()
	require.False(t, ok, "the clear waits while the trip is in flight")
	require.Nil(t, o.peekAudit().p, "audit records wait for the commands")
	require.Equal(t, 4, o.len(), "in flight counts as not delivered")

	o.urgentDone(m.p.Topic)
	m, ok = o.takeUrgent()
	require.True(t, ok)
	require.Empty(t, m.p.Payload, "then the clear")
	c, ok := o.takeUrgent()
	require.True(t, ok, "another topic goes beside it")
	require.Equal(t, "retry", string(c.p.Payload))
	o.urgentDone(m.p.Topic)
	require.Nil(t, o.peekAudit().p, "the command is still in flight")
	o.urgentDone(c.p.Topic)
	require.Equal(t, "decision", string(o.peekAudit().p.Payload))
}
