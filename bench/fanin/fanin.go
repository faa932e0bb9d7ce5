// Package fanin measures an MQTT broker under a device fleet's load: QoS 1
// fan-in from many device connections into one persistent-session
// subscriber (the ingestor's place), on loopback. It drives any MQTT v5
// broker at an address, so `sentinel bench broker` (Run) runs the same load
// against Sentinel's broker (durable acks on and off) and Mosquitto, each in
// a child process (bench/proc) whose CPU time and resident memory it reads
// from /proc.
package fanin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sentinel-iot/sentinel/broker/rawclient"
	"github.com/sentinel-iot/sentinel/quantile"
)

// ErrIncomplete means a run ended (its timeout) before every message was
// acknowledged or delivered; the Result says how far it got.
var ErrIncomplete = errors.New("fanin: run incomplete")

// Topic of device i's telemetry; SubscriberFilter matches every device's.
func Topic(i int) string { return "fleet/bench/dev-" + strconv.Itoa(i) + "/telemetry" }

// SubscriberFilter is the subscriber's filter.
const SubscriberFilter = "fleet/+/+/telemetry"

// payloadSize is about a Sentinel telemetry message's JSON.
const payloadSize = 240

// Fleet is a set of connected devices and one subscriber. Its connections'
// goroutines are owned by the Fleet: Close ends them all.
type Fleet struct {
	devices   []*rawclient.Client
	sub       *rawclient.Client
	delivered atomic.Int64
	// ConnectTime is how long the devices took to connect.
	ConnectTime time.Duration
}

// Connect connects a persistent-session subscriber to SubscriberFilter and
// then n device connections (clean sessions), parallel at a time.
func Connect(ctx context.Context, addr string, n, parallel int) (*Fleet, error) {
	f := &Fleet{}
	sub, err := rawclient.Dial(ctx, addr, rawclient.Options{ClientID: "bench-subscriber", CleanStart: true, SessionExpiry: 3600,
		ReceiveMaximum: 1024, KeepAlive: 600,
		OnMessage: func(string, []byte, bool) { f.delivered.Add(1) }})
	if err != nil {
		return nil, fmt.Errorf("fanin: connect the subscriber: %w", err)
	}
	f.sub = sub
	if err := sub.Subscribe(ctx, SubscriberFilter, 1); err != nil {
		f.Close()
		return nil, fmt.Errorf("fanin: subscribe: %w", err)
	}
	if parallel < 1 {
		parallel = 1
	}
	f.devices = make([]*rawclient.Client, n)
	start := time.Now()
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		errMu sync.Mutex
		first error
	)
	for range min(parallel, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				c, err := rawclient.Dial(ctx, addr, rawclient.Options{ClientID: "bench-dev-" + strconv.Itoa(i), CleanStart: true, KeepAlive: 600})
				if err != nil {
					errMu.Lock()
					if first == nil {
						first = fmt.Errorf("fanin: connect device %d of %d: %w", i, n, err)
					}
					errMu.Unlock()
					next.Store(int64(n)) // stop the others
					return
				}
				f.devices[i] = c
			}
		}()
	}
	wg.Wait()
	f.ConnectTime = time.Since(start)
	if first == nil && ctx.Err() != nil {
		first = fmt.Errorf("fanin: connect %d devices: %w", n, ctx.Err())
	}
	if first != nil {
		f.Close()
		return nil, first
	}
	return f, nil
}

// Result is one fan-in run.
type Result struct {
	// Devices publishing, and Messages each was to publish.
	Devices, Messages int
	// Acked counts PUBACKs with success, Delivered the messages the
	// subscriber received (acknowledged ones included when Delivered >=
	// Acked).
	Acked, Delivered int64
	// Elapsed is from the first publish to the last PUBACK; MsgPerSec is
	// Acked over it: the fan-in rate.
	Elapsed   time.Duration
	MsgPerSec float64
	// DeliveredAfter is from the first publish until the subscriber had
	// received as many messages as were acknowledged.
	DeliveredAfter time.Duration
	// AckP50 and AckP99 are publish-to-PUBACK latencies.
	AckP50, AckP99 time.Duration
}

// Publish has every device publish perDevice QoS 1 messages, with up to
// window of them awaiting their PUBACK (1: a device sends its next reading
// once the previous one is acknowledged), then waits for the subscriber to
// have received as many messages as were acknowledged. It returns
// ErrIncomplete, with the partial Result, if timeout passes first.
func (f *Fleet) Publish(ctx context.Context, perDevice, window int, timeout time.Duration) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if window < 1 {
		window = 1
	}
	payload := make([]byte, payloadSize)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	res := Result{Devices: len(f.devices), Messages: perDevice}
	var (
		acked    atomic.Int64
		latMu    sync.Mutex
		lat      = make([]time.Duration, 0, len(f.devices)*perDevice)
		wg       sync.WaitGroup
		lastAck  atomic.Int64 // unix nanos
		failures atomic.Int64
	)
	delivered0 := f.delivered.Load()
	start := time.Now()
	for i, c := range f.devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := Topic(i)
			slots := make(chan struct{}, window)
			var inner sync.WaitGroup
			for range perDevice {
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					inner.Wait()
					return
				}
				sent := time.Now()
				inner.Add(1)
				err := c.Publish(ctx, topic, payload, 1, func(err error) {
					defer inner.Done()
					<-slots
					if err != nil {
						failures.Add(1)
						return
					}
					now := time.Now()
					acked.Add(1)
					lastAck.Store(now.UnixNano())
					latMu.Lock()
					lat = append(lat, now.Sub(sent))
					latMu.Unlock()
				})
				if err != nil { // done will not run
					inner.Done()
					<-slots
					failures.Add(1)
					break
				}
			}
			inner.Wait()
		}()
	}
	wg.Wait()
	res.Acked = acked.Load()
	if la := lastAck.Load(); la > 0 {
		res.Elapsed = time.Unix(0, la).Sub(start)
		res.MsgPerSec = float64(res.Acked) / res.Elapsed.Seconds()
	}
	slices.Sort(lat)
	res.AckP50, res.AckP99 = quantile.Sorted(lat, 0.5), quantile.Sorted(lat, 0.99)
	// Delivery: wait for the subscriber to catch up with the acks.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for f.delivered.Load()-delivered0 < res.Acked && ctx.Err() == nil {
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	res.Delivered = f.delivered.Load() - delivered0
	res.DeliveredAfter = time.Since(start)
	if res.Acked < int64(len(f.devices)*perDevice) || res.Delivered < res.Acked {
		return res, fmt.Errorf("%w: %d of %d acknowledged (%d failed), %d delivered, in %s", ErrIncomplete,
			res.Acked, len(f.devices)*perDevice, failures.Load(), res.Delivered, timeout)
	}
	return res, nil
}

// Close disconnects every connection and waits for their goroutines.
func (f *Fleet) Close() {
	var wg sync.WaitGroup
	for _, c := range f.devices {
		if c != nil {
			wg.Add(1)
			go func() { defer wg.Done(); c.Close() }()
		}
	}
	wg.Wait()
	if f.sub != nil {
		f.sub.Close()
	}
}
