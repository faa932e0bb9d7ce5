package simulator

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/sentinel-iot/sentinel/proto"
	"github.com/sentinel-iot/sentinel/simulator/device"
)

const (
	// publishTimeout bounds the wait for a PUBACK or SUBACK.
	publishTimeout = 10 * time.Second
	// commandBuffer is how many received commands may wait for a device.
	commandBuffer = 8
	// keepAlive is the MQTT keep-alive, in seconds.
	keepAlive = 30
)

// node is one simulated device: its profile, its state machine and the
// goroutine that drives them over MQTT.
type node struct {
	f   *Fleet
	p   device.Profile
	log *slog.Logger

	telemetryTopic, statusTopic, commandTopic string

	// Shared with Stats and the MQTT callbacks.
	state     atomic.Value // proto.State
	online    atomic.Bool
	up        chan struct{} // a connection came up; capacity 1
	firstUp   chan struct{} // closed at the first connection
	firstOnce sync.Once
	connErr   chan error // connection attempt failures; capacity 1
	cmds      chan *proto.Command

	// Owned by the run goroutine.
	m         *device.Machine
	sensors   device.Sensors
	noise     *rand.Rand // sensor noise
	clock     *rand.Rand // step and telemetry jitter, a stream apart so timings do not depend on how often sensors are read
	seq       uint64
	lastSense time.Time
	walk      *walk
}

// walk is a path of states a device is moving along: its rollout, or the
// plan of a command.
type walk struct {
	path []proto.State
	cmd  *proto.Command // nil for the rollout
	plan device.Plan
}

func newNode(f *Fleet, p device.Profile) *node {
	n := &node{
		f:              f,
		p:              p,
		log:            f.log.With("device", p.ID, "region", p.Region),
		telemetryTopic: proto.TelemetryTopic(p.Region, p.ID),
		statusTopic:    proto.StatusTopic(p.Region, p.ID),
		commandTopic:   proto.CommandTopic(p.Region, p.ID),
		up:             make(chan struct{}, 1),
		firstUp:        make(chan struct{}),
		connErr:        make(chan error, 1),
		cmds:           make(chan *proto.Command, commandBuffer),
		m:              device.NewMachine(p),
		sensors:        device.NewSensors(p),
		noise:          rand.New(rand.NewPCG(p.Seed, 0x5e4707)),
		clock:          rand.New(rand.NewPCG(p.Seed, 0xc10c)),
	}
	n.state.Store(proto.StateIdle)
	return n
}

func (n *node) loadState() proto.State { return n.state.Load().(proto.State) }

func (n *node) rolloutOffset() time.Duration {
	return time.Duration(n.p.RolloutAt * float64(n.f.cfg.RolloutSpread))
}

// clientConfig returns the device's MQTT connection settings. The callbacks
// never block: they hand events to the run goroutine.
func (n *node) clientConfig(ctx context.Context) autopaho.ClientConfig {
	cfg := n.f.cfg
	cc := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{n.f.broker},
		KeepAlive:                     keepAlive,
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              autopaho.NewExponentialBackoff(time.Second, 30*time.Second, 2*time.Second, 2),
		ConnectTimeout:                10 * time.Second,
		OnConnectionUp: func(*autopaho.ConnectionManager, *paho.Connack) {
			n.online.Store(true)
			n.firstOnce.Do(func() { close(n.firstUp) })
			select {
			case n.up <- struct{}{}:
			default:
			}
		},
		OnConnectionDown: func() bool {
			n.online.Store(false)
			n.log.Debug("connection lost")
			return true
		},
		OnConnectError: func(err error) {
			n.log.Debug("connection attempt failed", "err", err)
			select {
			case n.connErr <- err:
			default:
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: n.p.ID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					n.receive(ctx, pr.Packet)
					return true, nil
				},
			},
		},
	}
	if cfg.Username != "" {
		cc.ConnectUsername = cfg.Username
		cc.ConnectPassword = []byte(cfg.Password)
	}
	return cc
}

// awaitFirstConnection waits until the device's first connection is up, its
// first attempt fails, or ctx ends (which is not an error).
func (n *node) awaitFirstConnection(ctx context.Context) error {
	select {
	case <-n.firstUp:
		return nil
	case err := <-n.connErr:
		return err
	case <-ctx.Done():
		return nil
	}
}

// receive handles a message on the device's command topic. It runs on the
// MQTT client's goroutine and waits only for room in the command buffer.
func (n *node) receive(ctx context.Context, p *paho.Publish) {
	cmd, err := proto.DecodeCommand(p.Payload)
	switch {
	case err != nil:
	case p.Topic != n.commandTopic:
		err = fmt.Errorf("command on topic %q, expected %q", p.Topic, n.commandTopic)
	case cmd.DeviceID != n.p.ID:
		err = fmt.Errorf("command for device %q", cmd.DeviceID)
	}
	if err != nil {
		n.f.invalidCommands.Add(1)
		n.log.Warn("invalid command ignored", "topic", p.Topic, "reason", proto.Reason(err), "err", err)
		return
	}
	n.f.commandsReceived.Add(1)
	select {
	case n.cmds <- cmd:
	case <-ctx.Done():
	}
}

// run drives the device until ctx ends, then waits for its connection
// manager to disconnect and exit.
func (n *node) run(ctx context.Context, cm *autopaho.ConnectionManager) {
	defer func() {
		<-cm.Done()
		n.online.Store(false)
	}()
	n.lastSense = time.Now()
	telemetry := stoppedTimer()
	defer telemetry.Stop()
	rollout := stoppedTimer()
	defer rollout.Stop()
	step := stoppedTimer()
	defer step.Stop()
	connected := false

	for {
		select {
		case <-ctx.Done():
			return
		case <-n.up:
			n.onConnect(ctx, cm)
			if !connected {
				connected = true
				rollout.Reset(n.rolloutOffset())
				interval := n.f.cfg.TelemetryInterval
				telemetry.Reset(interval/2 + time.Duration(n.p.TelemetryPhase*float64(interval)))
			}
		case <-telemetry.C:
			if n.m.State() == proto.StateBricked {
				continue // a bricked device says nothing more
			}
			n.publishTelemetry(ctx, cm)
			telemetry.Reset(n.jitter(n.f.cfg.TelemetryInterval, 0.1))
		case <-rollout.C:
			if n.m.State() == proto.StateIdle && n.walk == nil {
				n.log.Debug("update starting", "from", n.p.FromFirmware, "to", n.p.ToFirmware)
				n.walk = &walk{path: device.RolloutPath(n.p.Fate)}
				n.advance(ctx, cm, step)
			}
		case <-step.C:
			if n.walk != nil {
				n.advance(ctx, cm, step)
			}
		case cmd := <-n.cmds:
			n.handle(ctx, cm, step, cmd)
		}
	}
}

// onConnect subscribes to the device's command topic and reports its state
// and a reading, as a device does after every (re)connection.
func (n *node) onConnect(ctx context.Context, cm *autopaho.ConnectionManager) {
	sctx, cancel := context.WithTimeout(ctx, publishTimeout)
	_, err := cm.Subscribe(sctx, &paho.Subscribe{
		Subscriptions: []paho.SubscribeOptions{{Topic: n.commandTopic, QoS: 1}},
	})
	cancel()
	if err != nil && ctx.Err() == nil {
		n.log.Warn("subscribe to commands failed", "topic", n.commandTopic, "err", err)
	}
	if n.m.State() == proto.StateBricked {
		return
	}
	n.publishStatus(ctx, cm, "connected", nil)
	n.publishTelemetry(ctx, cm)
}

// handle applies the command rules to cmd and starts its plan.
func (n *node) handle(ctx context.Context, cm *autopaho.ConnectionManager, step *time.Timer, cmd *proto.Command) {
	n.sense()
	plan := n.m.Accept(cmd, n.sensors.Conditions())
	n.log.Info("command received", "command_id", cmd.CommandID, "action", cmd.Action,
		"state", n.m.State(), "planned_outcome", plan.Outcome, "steps", len(plan.Path), "silent", plan.Silent)
	switch {
	case plan.Silent:
		return
	case len(plan.Path) > 0 && n.walk != nil:
		// Accept rejects commands in transient states, and a walk only
		// rests in transient states; this is a bug, not a device behaviour.
		n.log.Error("command plan while another walk runs; rejecting", "command_id", cmd.CommandID)
		plan = device.Plan{Outcome: proto.OutcomeRejected, Detail: "busy"}
	case len(plan.Path) > 0:
		n.walk = &walk{path: plan.Path, cmd: cmd, plan: plan}
		n.advance(ctx, cm, step)
		return
	}
	n.publishStatus(ctx, cm, plan.Detail, result(cmd, plan))
}

// advance enters the next state of the current walk, reports it, and
// schedules the following step, or reports the walk's result when it was
// the last.
func (n *node) advance(ctx context.Context, cm *autopaho.ConnectionManager, step *time.Timer) {
	w := n.walk
	next := w.path[0]
	w.path = w.path[1:]
	n.sense()
	if err := n.m.Enter(next); err != nil {
		n.log.Error("walk abandoned", "err", err)
		n.walk = nil
		return
	}
	n.state.Store(next)
	if next == proto.StateRebooting {
		n.sensors.Reboot()
	}
	detail := ""
	var res *proto.CommandResult
	if len(w.path) == 0 {
		n.walk = nil
		if w.cmd != nil {
			detail, res = w.plan.Detail, result(w.cmd, w.plan)
		} else {
			detail = n.rolloutDetail(next)
		}
		n.log.Debug("walk done", "state", next, "firmware", n.m.Firmware())
	} else {
		step.Reset(n.jitter(n.f.cfg.StepDuration, 0.5))
	}
	n.publishStatus(ctx, cm, detail, res)
}

// rolloutDetail explains the end of the first update.
func (n *node) rolloutDetail(s proto.State) string {
	switch s {
	case proto.StatePartial:
		return "boot partition written, data partition incomplete"
	case proto.StateInstallFailed:
		return "flash write error"
	case proto.StateDownloadFailed:
		return fmt.Sprintf("download timed out at %d dBm", n.sensors.RSSI)
	}
	return ""
}

func result(cmd *proto.Command, plan device.Plan) *proto.CommandResult {
	return &proto.CommandResult{CommandID: cmd.CommandID, Action: cmd.Action, Outcome: plan.Outcome}
}

// sense moves the device's sensors on to now.
func (n *node) sense() {
	now := time.Now()
	n.sensors.Advance(n.p, n.m.State(), now.Sub(n.lastSense), n.noise)
	n.lastSense = now
}

// jitter returns d scaled by a factor drawn uniformly from [1-spread, 1+spread).
func (n *node) jitter(d time.Duration, spread float64) time.Duration {
	return time.Duration(float64(d) * (1 - spread + 2*spread*n.clock.Float64()))
}

func (n *node) header() proto.Header {
	n.seq++
	return proto.NewHeader(n.p.ID, time.Now(), n.seq)
}

func (n *node) publishTelemetry(ctx context.Context, cm *autopaho.ConnectionManager) {
	n.sense()
	s := n.sensors
	n.publish(ctx, cm, n.telemetryTopic, &proto.Telemetry{
		Header:       n.header(),
		Region:       n.p.Region,
		Firmware:     n.m.Firmware(),
		State:        n.m.State(),
		BatteryPct:   s.BatteryPct,
		Charging:     s.Charging,
		RSSI:         s.RSSI,
		TemperatureC: s.TemperatureC,
		UptimeS:      int64(s.Uptime / time.Second),
	})
}

func (n *node) publishStatus(ctx context.Context, cm *autopaho.ConnectionManager, detail string, res *proto.CommandResult) {
	n.publish(ctx, cm, n.statusTopic, &proto.StatusEvent{
		Header:         n.header(),
		Region:         n.p.Region,
		State:          n.m.State(),
		Firmware:       n.m.Firmware(),
		TargetFirmware: n.m.Target(),
		Detail:         detail,
		Result:         res,
	})
}

// publish encodes m and publishes it at QoS 1, waiting for the broker's
// acknowledgement. A failure is counted and logged, not retried: the device
// reports its state again when it reconnects.
func (n *node) publish(ctx context.Context, cm *autopaho.ConnectionManager, topic string, m proto.Message) {
	payload, err := proto.Encode(m)
	if err != nil {
		n.f.publishErrors.Add(1)
		n.log.Error("encode message", "topic", topic, "err", err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if _, err := cm.Publish(pctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload}); err != nil {
		n.f.publishErrors.Add(1)
		if ctx.Err() == nil {
			n.log.Debug("publish failed", "topic", topic, "err", err)
		}
		return
	}
	n.f.published.Add(1)
}

// stoppedTimer returns a timer that has not been started.
func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
