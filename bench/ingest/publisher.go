package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/sentinel-iot/sentinel/broker/rawclient"
	"github.com/sentinel-iot/sentinel/proto"
)

// stream is what both publishers share: the next message number, and how
// many messages the broker acknowledged with success (only those count as
// published).
type stream struct {
	devices   int
	next      atomic.Int64
	published atomic.Int64
}

// publisher is a load generator: publish sends n messages at rate msg/s
// (0: as fast as acknowledged) and returns once every one is acknowledged.
type publisher interface {
	publish(ctx context.Context, n, rate int) error
	close()
}

// rawPublisher is the lean load generator. The paho publisher spends about
// as much CPU per message as the broker or the ingestor (fmt,
// encoding/json, one goroutine blocked on every PUBACK), which on a
// two-core machine is CPU the pipeline under test does not get. This one
// builds payloads by hand (appendPayload) and sends them through
// broker/rawclient's buffered publishes: packets go out in batches, up to
// a window of them in flight per connection (the broker's receive maximum
// at most), each PUBACK checked for its reason code.
type rawPublisher struct {
	s     *stream
	conns []*rawclient.Client
}

func dialRaw(ctx context.Context, addr string, conns, window int, s *stream) (*rawPublisher, error) {
	p := &rawPublisher{s: s}
	for i := range conns {
		c, err := rawclient.Dial(ctx, addr, rawclient.Options{ClientID: fmt.Sprintf("bench-raw-%d-%d", os.Getpid(), i), CleanStart: true,
			KeepAlive:   600, // no PINGREQ: a bench pauses for seconds, not minutes
			MaxInflight: window, WriteBufferSize: 32 << 10})
		if err != nil {
			p.close()
			return nil, fmt.Errorf("raw publisher: %w", err)
		}
		p.conns = append(p.conns, c)
	}
	return p, nil
}

// publish gives each connection its share of n and of rate.
func (p *rawPublisher) publish(ctx context.Context, n, rate int) error {
	var wg sync.WaitGroup
	errs := make([]error, len(p.conns))
	k := len(p.conns)
	for i, c := range p.conns {
		share := n / k
		if i < n%k {
			share++
		}
		r := float64(rate) * float64(share) / float64(max(n, 1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.publishOn(ctx, c, share, r)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// publishOn sends n messages on c at rate msg/s and waits for their PUBACKs.
func (p *rawPublisher) publishOn(ctx context.Context, c *rawclient.Client, n int, rate float64) error {
	var (
		acks   sync.WaitGroup
		failed atomic.Pointer[error]
	)
	done := func(err error) {
		defer acks.Done()
		if err != nil {
			failed.CompareAndSwap(nil, &err)
			return
		}
		p.s.published.Add(1)
	}
	var topic, ts []byte
	var tsMilli int64 = -1
	start := time.Now()
	err := func() error {
		for sent := 0; sent < n; {
			due := n
			if rate > 0 {
				if due = min(n, int(time.Since(start).Seconds()*rate)); due <= sent {
					if err := c.Flush(); err != nil {
						return err
					}
					time.Sleep(time.Millisecond) // pacing a load generator, not synchronisation
					continue
				}
			}
			for ; sent < due; sent++ {
				now := time.Now()
				if ms := now.UnixMilli(); ms != tsMilli {
					tsMilli = ms
					ts = now.UTC().AppendFormat(ts[:0], proto.TimeFormat)
				}
				id := p.s.next.Add(1) - 1
				topic = appendTopic(topic[:0], id, p.s.devices)
				acks.Add(1)
				if err := c.PublishBuffered(ctx, string(topic), appendPayload(nil, id, p.s.devices, ts), done); err != nil {
					acks.Done()
					return err
				}
			}
		}
		return c.Flush()
	}()
	if err != nil {
		c.Abort() // fails what is in flight, so the wait below ends
	}
	acked := make(chan struct{})
	go func() { acks.Wait(); close(acked) }()
	select {
	case <-acked:
	case <-ctx.Done():
		c.Abort()
		<-acked
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("raw publisher: %w", err)
	}
	if e := failed.Load(); e != nil {
		return fmt.Errorf("raw publisher: %w", *e)
	}
	return nil
}

func (p *rawPublisher) close() {
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// pahoPublisher publishes through autopaho, as the services do: 64
// goroutines per connection, each awaiting its PUBACK.
type pahoPublisher struct {
	s   *stream
	cms []*autopaho.ConnectionManager
}

func dialPaho(ctx context.Context, brokerURL string, conns int, s *stream) (*pahoPublisher, error) {
	u, err := url.Parse(brokerURL)
	if err != nil {
		return nil, fmt.Errorf("paho publisher: %w", err)
	}
	p := &pahoPublisher{s: s}
	for i := range conns {
		cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
			ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
			ClientConfig: paho.ClientConfig{ClientID: fmt.Sprintf("bench-pub-%d-%d", os.Getpid(), i)},
		})
		if err != nil {
			p.close()
			return nil, fmt.Errorf("paho publisher: %w", err)
		}
		p.cms = append(p.cms, cm)
		if err := cm.AwaitConnection(ctx); err != nil {
			p.close()
			return nil, fmt.Errorf("paho publisher: %w", err)
		}
	}
	return p, nil
}

func (p *pahoPublisher) publish(ctx context.Context, n, rate int) error {
	const perConn = 64
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tokens := make(chan struct{}, 4096)
	var wg sync.WaitGroup
	if rate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for sent := 0; sent < n; {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				for due := min(n, int(time.Since(start).Seconds()*float64(rate))); sent < due; sent++ {
					select {
					case tokens <- struct{}{}:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	var left atomic.Int64
	left.Store(int64(n))
	var failed atomic.Pointer[error]
	var workers sync.WaitGroup
	for _, cm := range p.cms {
		for range perConn {
			workers.Add(1)
			go func() {
				defer workers.Done()
				for left.Add(-1) >= 0 {
					if rate > 0 {
						select {
						case <-tokens:
						case <-ctx.Done():
							return
						}
					}
					m := message(p.s.next.Add(1)-1, p.s.devices, time.Now())
					b, err := proto.Encode(m)
					if err == nil {
						_, err = cm.Publish(ctx, &paho.Publish{Topic: proto.TelemetryTopic(m.Region, m.DeviceID), QoS: 1, Payload: b})
					}
					if err != nil {
						failed.CompareAndSwap(nil, &err)
						return
					}
					p.s.published.Add(1)
				}
			}()
		}
	}
	workers.Wait()
	cancel() // the pacer, if the workers stopped early
	wg.Wait()
	if e := failed.Load(); e != nil {
		return fmt.Errorf("paho publisher: %w", *e)
	}
	return nil
}

func (p *pahoPublisher) close() {
	for _, cm := range p.cms {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = cm.Disconnect(dctx)
		cancel()
	}
	p.cms = nil
}
