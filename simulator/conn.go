package simulator

import (
	"container/heap"
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/sentinel-iot/sentinel/mqttconn"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/simulator/device"
)

const (
	// publishTimeout bounds the wait for a PUBACK or SUBACK.
	publishTimeout = 10 * time.Second
	// keepAlive is the MQTT keep-alive, in seconds.
	keepAlive = 30
	// muxWorkers is how many publishes a shared connection keeps in flight:
	// one goroutine each, a device always on the same one so its messages
	// keep their order.
	muxWorkers = 16
	// queueLen is how many messages wait for each publishing goroutine
	// before the device clock of the connection waits for them.
	queueLen = 1024
	// subscribeChunk is how many command topics one SUBSCRIBE carries.
	subscribeChunk = 500
)

// slot is one device inside the runtime: its model, topics and place on
// its connection.
type slot struct {
	d       *device.Device // guarded by its conn's mu
	due     time.Duration  // d.Due(), guarded by its conn's mu
	heapIdx int            // guarded by its conn's mu
	worker  int

	profile device.Profile // immutable copies, for Devices
	timing  device.Timing

	telemetryTopic, statusTopic, commandTopic string
}

func newSlot(d *device.Device) *slot {
	p := d.Profile()
	return &slot{
		d:              d,
		due:            d.Due(),
		profile:        p,
		timing:         d.Timing(),
		telemetryTopic: proto.TelemetryTopic(p.Region, p.ID),
		statusTopic:    proto.StatusTopic(p.Region, p.ID),
		commandTopic:   proto.CommandTopic(p.Region, p.ID),
	}
}

// outbound is a message on its way to a publishing goroutine.
type outbound struct {
	s *slot
	m device.Msg
}

// inbound is a command on its way to the device clock.
type inbound struct {
	s   *slot
	cmd *proto.Command
}

// conn is one MQTT connection and the devices that share it: one device
// by default, many with Config.Conns. Its clock goroutine (run) owns the
// devices' timelines; its publishing goroutines (work) send what they say.
type conn struct {
	f       *Fleet
	id      string
	slots   []*slot
	byTopic map[string]*slot
	dialAt  time.Duration
	cred    Credential
	hasCred bool
	will    bool // one device on the connection: arm its Last Will

	mu      sync.Mutex // guards the slots' devices and the heap
	heap    slotHeap
	pending []outbound // owned by run
	msgs    []device.Msg

	online    atomic.Bool
	up        *mqttconn.ConnUp // connections that came up, for the clock
	firstUp   chan struct{}    // closed at the first connection
	firstOnce sync.Once
	connErr   chan error // connection attempt failures; capacity 1

	inMu  sync.Mutex
	inbox []inbound
	inSig chan struct{} // capacity 1

	queues []chan outbound
}

// buildConns spreads the fleet's devices over its connections, round-robin.
func (f *Fleet) buildConns() []*conn {
	k := f.cfg.Conns
	if k == 0 {
		k = len(f.slots)
	}
	conns := make([]*conn, k)
	for i := range conns {
		conns[i] = &conn{
			f:       f,
			byTopic: make(map[string]*slot),
			up:      mqttconn.NewConnUp(),
			firstUp: make(chan struct{}),
			connErr: make(chan error, 1),
			inSig:   make(chan struct{}, 1),
		}
	}
	for i, sl := range f.slots {
		c := conns[i%k]
		c.slots = append(c.slots, sl)
		c.byTopic[sl.commandTopic] = sl
	}
	for i, c := range conns {
		c.dialAt = c.slots[0].timing.Join
		c.queues = make([]chan outbound, min(len(c.slots), muxWorkers))
		for j := range c.queues {
			c.queues[j] = make(chan outbound, queueLen)
		}
		for j, sl := range c.slots {
			sl.worker = j % len(c.queues)
			sl.heapIdx = j
		}
		c.heap = append(slotHeap(nil), c.slots...)
		heap.Init(&c.heap)
		if f.cfg.Conns == 0 {
			c.id, c.will = c.slots[0].profile.ID, true
			c.cred, c.hasCred = f.credFor(c.id)
		} else {
			c.id = fmt.Sprintf("sim-%d-%04d", f.cfg.Seed, i)
			if c.cred, c.hasCred = f.creds["*"]; !c.hasCred {
				c.cred, c.hasCred = f.creds.For(c.slots[0].profile.ID)
			}
		}
	}
	return conns
}

// start dials the connection and starts its goroutines, which wg tracks
// and ctx stops.
func (c *conn) start(ctx context.Context, wg *sync.WaitGroup, start time.Time) error {
	cm, err := autopaho.NewConnection(ctx, c.clientConfig())
	if err != nil {
		return err
	}
	wg.Add(1 + len(c.queues))
	go func() {
		defer wg.Done()
		c.run(ctx, cm, start)
	}()
	for _, q := range c.queues {
		go func() {
			defer wg.Done()
			c.work(ctx, cm, q)
		}()
	}
	return nil
}

// clientConfig returns the connection's MQTT settings: a persistent session
// (clean on the first connection of a run, resumed after), and for a
// device on its own connection, its Last Will. The callbacks never block.
func (c *conn) clientConfig() autopaho.ClientConfig {
	cc := autopaho.ClientConfig{
		AttemptConnection:             mqttconn.Dialer(c.f.broker, mqttconn.DialConfig{}), // a device receives little: no read buffer
		ServerUrls:                    []*url.URL{c.f.broker},
		KeepAlive:                     keepAlive,
		CleanStartOnInitialConnection: true,
		SessionExpiryInterval:         uint32(SessionExpiry / time.Second),
		ReconnectBackoff:              autopaho.NewExponentialBackoff(time.Second, 30*time.Second, 2*time.Second, 2),
		ConnectTimeout:                10 * time.Second,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ack *paho.Connack) {
			c.online.Store(true)
			c.firstOnce.Do(func() { close(c.firstUp) })
			c.up.OnConnectionUp(cm, ack) // the clock subscribes and reports (run)
		},
		OnConnectionDown: func() bool {
			c.online.Store(false)
			c.f.log.Debug("connection lost", "client", c.id)
			return true
		},
		OnConnectError: func(err error) {
			c.f.log.Debug("connection attempt failed", "client", c.id, "err", err)
			select {
			case c.connErr <- err:
			default:
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: c.id,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					c.receive(pr.Packet)
					return true, nil
				},
			},
		},
	}
	if c.hasCred {
		cc.ConnectUsername = c.cred.Username
		cc.ConnectPassword = []byte(c.cred.Password)
	}
	if c.will {
		cc.ConnectPacketBuilder = c.armWill
	}
	return cc
}

// armWill puts the device's offline status in the CONNECT packet as its
// Last Will, with a seq reserved above its counter (device.WillSeqGap).
func (c *conn) armWill(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
	sl := c.slots[0]
	c.mu.Lock()
	will := sl.d.Will(time.Now())
	c.mu.Unlock()
	payload, err := proto.Encode(will)
	if err != nil {
		return nil, fmt.Errorf("encode last will: %w", err)
	}
	cp.WillMessage = &paho.WillMessage{Topic: sl.statusTopic, QoS: 1, Payload: payload}
	c.f.willsArmed.Add(1)
	return cp, nil
}

// awaitFirstConnection waits until the first connection is up, its first
// attempt fails, or ctx ends (which is not an error).
func (c *conn) awaitFirstConnection(ctx context.Context) error {
	select {
	case <-c.firstUp:
		return nil
	case err := <-c.connErr:
		return err
	case <-ctx.Done():
		return nil
	}
}

// receive handles a message on a command topic. It runs on the MQTT
// client's goroutine and never blocks: commands queue for the clock.
func (c *conn) receive(p *paho.Publish) {
	sl := c.byTopic[p.Topic]
	cmd, err := proto.DecodeCommand(p.Payload)
	switch {
	case sl == nil:
		err = fmt.Errorf("message on topic %q, which no device here listens to", p.Topic)
	case err != nil:
	case cmd.DeviceID != sl.profile.ID:
		err = fmt.Errorf("command for device %q on the topic of %q", cmd.DeviceID, sl.profile.ID)
	}
	if err != nil {
		c.f.invalidCommands.Add(1)
		c.f.log.Warn("invalid command ignored", "topic", p.Topic, "reason", proto.Reason(err), "err", err)
		return
	}
	c.f.commandsReceived.Add(1)
	c.inMu.Lock()
	c.inbox = append(c.inbox, inbound{s: sl, cmd: cmd})
	c.inMu.Unlock()
	select {
	case c.inSig <- struct{}{}:
	default:
	}
}

// run is the connection's device clock: once the connection is first up,
// it runs every device event when due, applies commands as they arrive,
// and reports the devices again after every reconnection, until ctx ends.
// Then it waits for the connection to close.
func (c *conn) run(ctx context.Context, cm *autopaho.ConnectionManager, start time.Time) {
	defer func() {
		<-cm.Done()
		c.online.Store(false)
	}()
	select {
	case <-ctx.Done():
		return
	case <-c.up.Ready():
		c.connectionUp(ctx)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.tick(ctx, start)
		c.mu.Lock()
		next := c.heap[0].due
		c.mu.Unlock()
		timer.Reset(max(time.Until(start.Add(next)), 0))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-c.up.Ready():
			c.connectionUp(ctx)
		case <-c.inSig:
			c.commands(ctx, start)
		}
	}
}

// tick runs the events of every device that are due.
func (c *conn) tick(ctx context.Context, start time.Time) {
	now, wall := time.Since(start), time.Now()
	c.mu.Lock()
	for c.heap[0].due <= now {
		sl := c.heap[0]
		c.msgs = sl.d.Advance(now, wall, c.msgs[:0])
		c.queue(sl)
	}
	c.mu.Unlock()
	c.flush(ctx)
}

// queue moves c.msgs of sl to the pending messages and re-sorts sl in the
// heap. The caller holds c.mu.
func (c *conn) queue(sl *slot) {
	for _, m := range c.msgs {
		c.pending = append(c.pending, outbound{s: sl, m: m})
	}
	sl.due = sl.d.Due()
	heap.Fix(&c.heap, sl.heapIdx)
}

// commands applies the queued commands.
func (c *conn) commands(ctx context.Context, start time.Time) {
	c.inMu.Lock()
	in := c.inbox
	c.inbox = nil
	c.inMu.Unlock()
	for _, ib := range in {
		c.mu.Lock()
		state := ib.s.d.State()
		c.msgs = ib.s.d.Command(time.Since(start), time.Now(), ib.cmd, c.msgs[:0])
		after := ib.s.d.State()
		c.queue(ib.s)
		c.mu.Unlock()
		c.f.log.Info("command received", "device", ib.s.profile.ID, "command_id", ib.cmd.CommandID,
			"action", ib.cmd.Action, "state", state, "now", after)
	}
	c.flush(ctx)
}

// connectionUp takes the connection that came up and runs onUp on it.
func (c *conn) connectionUp(ctx context.Context) {
	if up, ok := c.up.Take(); ok {
		c.onUp(ctx, up.CM)
	}
}

// onUp subscribes to the devices' command topics and reports every device
// that is online, as a device does after every (re)connection.
func (c *conn) onUp(ctx context.Context, cm *autopaho.ConnectionManager) {
	for i := 0; i < len(c.slots); i += subscribeChunk {
		chunk := c.slots[i:min(i+subscribeChunk, len(c.slots))]
		subs := make([]paho.SubscribeOptions, len(chunk))
		for j, sl := range chunk {
			subs[j] = paho.SubscribeOptions{Topic: sl.commandTopic, QoS: 1}
		}
		sctx, cancel := context.WithTimeout(ctx, publishTimeout)
		_, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: subs})
		cancel()
		if err != nil && ctx.Err() == nil {
			c.f.log.Warn("subscribe to commands failed", "client", c.id, "topics", len(subs), "err", err)
		}
	}
	wall := time.Now()
	c.mu.Lock()
	for _, sl := range c.slots {
		c.msgs = sl.d.Connected(wall, c.msgs[:0])
		for _, m := range c.msgs {
			c.pending = append(c.pending, outbound{s: sl, m: m})
		}
	}
	c.mu.Unlock()
	c.flush(ctx)
}

// flush hands the pending messages to the publishing goroutines, waiting
// for room (the device clock slows to what the broker takes).
func (c *conn) flush(ctx context.Context) {
	for i, o := range c.pending {
		select {
		case c.queues[o.s.worker] <- o:
		case <-ctx.Done():
			c.pending = c.pending[:0]
			return
		}
		c.pending[i] = outbound{}
	}
	c.pending = c.pending[:0]
}

// publish encodes a message and publishes it at QoS 1, waiting for the
// broker's acknowledgement, and reports whether the broker refused it with
// 0x97 (quota exceeded): the caller keeps it to send again (see work). Any
// other failure is counted and logged, not retried: the device reports its
// state again when it reconnects.
func (c *conn) publish(ctx context.Context, cm *autopaho.ConnectionManager, o outbound) (refused bool) {
	topic := o.s.telemetryTopic
	if o.m.Kind == proto.KindStatus {
		topic = o.s.statusTopic
	}
	payload, err := proto.Encode(o.m.Message)
	if err != nil {
		c.f.publishErrors.Add(1)
		c.f.log.Error("encode message", "topic", topic, "err", err)
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	pr, err := cm.Publish(pctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if err != nil && pr != nil && pr.ReasonCode == reasonQuotaExceeded {
		c.f.refused.Add(1)
		return true
	}
	if err != nil {
		c.f.publishErrors.Add(1)
		if ctx.Err() == nil {
			c.f.log.Debug("publish failed", "topic", topic, "err", err)
		}
		return false
	}
	c.f.published.Add(1)
	return false
}

// slotHeap orders a connection's devices by their next event, then by
// their place in the fleet.
type slotHeap []*slot

func (h slotHeap) Len() int { return len(h) }
func (h slotHeap) Less(i, j int) bool {
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].profile.Index < h[j].profile.Index
}
func (h slotHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *slotHeap) Push(x any) {
	s := x.(*slot)
	s.heapIdx = len(*h)
	*h = append(*h, s)
}
func (h *slotHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}
