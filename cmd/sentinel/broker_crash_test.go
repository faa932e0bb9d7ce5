package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker/rawclient"
)

// TestBrokerCrash is issue 3's durability acceptance: `sentinel broker`
// with a store runs as a separate process and receives a numbered QoS 1
// stream from pipelining publishers; it is SIGKILLed mid-stream, twice,
// and restarted on the same store each time. A persistent-session
// subscriber (clean start off, a long session expiry), offline for the
// whole stream so that everything it gets comes from the store, then
// connects to the last broker: every message a publisher saw PUBACKed must
// reach it. Logs acked-but-lost (must be 0) and the restart times.
func TestBrokerCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three broker processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	dir := t.TempDir()
	addr := freeAddr(t)
	const (
		rounds    = 2    // SIGKILLs
		perRound  = 2500 // acks before each kill
		conns     = 4    // publisher connections, each pipelining up to the receive maximum
		topicRoot = "fleet/crash/"
	)

	b := startBrokerProcess(t, ctx, addr, dir)
	t.Logf("first start: listening after %v", b.ready)

	sub, err := rawclient.Dial(ctx, addr, rawclient.Options{ClientID: "crash-sub", CleanStart: true, SessionExpiry: 3600})
	require.NoError(t, err)
	require.NoError(t, sub.Subscribe(ctx, topicRoot+"#", 1))
	require.NoError(t, sub.Close()) // offline from here on; the broker keeps its session

	var (
		next   atomic.Int64 // message numbers handed out
		ackMu  sync.Mutex
		acked  = map[int64]bool{}
		nAcked atomic.Int64
	)
	var restarts []time.Duration
	for round := 1; round <= rounds; round++ {
		killAt := nAcked.Load() + perRound
		var killOnce sync.Once
		kill := func() { killOnce.Do(func() { b.kill() }) }
		var wg sync.WaitGroup
		for c := range conns {
			pub, err := rawclient.Dial(ctx, addr, rawclient.Options{ClientID: fmt.Sprintf("crash-pub-%d", c), CleanStart: true})
			require.NoError(t, err)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer pub.Abort()
				topic := fmt.Sprintf("%sdev-%d/telemetry", topicRoot, c)
				for ctx.Err() == nil {
					n := next.Add(1)
					err := pub.Publish(ctx, topic, strconv.AppendInt(nil, n, 10), 1, func(err error) {
						if err != nil {
							return // refused or cut off by the kill: not acknowledged
						}
						ackMu.Lock()
						acked[n] = true
						ackMu.Unlock()
						if nAcked.Add(1) >= killAt {
							kill() // mid-stream: publishes are in flight on every connection
						}
					})
					if err != nil {
						return // the broker is gone
					}
				}
			}()
		}
		wg.Wait()
		require.NoError(t, ctx.Err(), "round %d: the broker was not killed in time (%d acked)", round, nAcked.Load())
		require.ErrorContains(t, b.wait(ctx), "signal: killed", "round %d", round)
		b = startBrokerProcess(t, ctx, addr, dir)
		restarts = append(restarts, b.ready)
		t.Logf("round %d: killed after %d acks (%d published), restarted on the same store: listening after %v",
			round, nAcked.Load(), next.Load(), b.ready)
	}

	// The subscriber comes back for its session.
	var (
		recvMu   sync.Mutex
		received = map[int64]bool{}
		dups     int
	)
	allIn := make(chan struct{})
	var allOnce sync.Once
	ackMu.Lock()
	want := len(acked)
	ackMu.Unlock()
	sub, err = rawclient.Dial(ctx, addr, rawclient.Options{ClientID: "crash-sub", SessionExpiry: 3600,
		OnMessage: func(_ string, p []byte, _ bool) {
			n, err := strconv.ParseInt(string(p), 10, 64)
			if err != nil {
				return
			}
			recvMu.Lock()
			defer recvMu.Unlock()
			if received[n] {
				dups++
				return
			}
			received[n] = true
			ackMu.Lock()
			covered := acked[n]
			ackMu.Unlock()
			if covered {
				want--
				if want == 0 {
					allOnce.Do(func() { close(allIn) })
				}
			}
		}})
	require.NoError(t, err)
	defer sub.Close()
	recvMu.Lock()
	pending := want
	recvMu.Unlock()
	if pending > 0 {
		select {
		case <-allIn:
		case <-ctx.Done():
		}
	}
	ackMu.Lock()
	defer ackMu.Unlock()
	recvMu.Lock()
	defer recvMu.Unlock()
	lost := 0
	for n := range acked {
		if !received[n] {
			lost++
		}
	}
	t.Logf("published %d, acked %d, received after the restarts %d (%d duplicates), acked-but-lost %d; restarts took %v",
		next.Load(), len(acked), len(received), dups, lost, restarts)
	require.Zero(t, lost, "messages acknowledged to a publisher and lost by the broker")
	require.NoError(t, b.stop(ctx))
}

// brokerProcess is `sentinel broker --store-dir` (this test binary as
// main, durable acks by default) in a child process.
type brokerProcess struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan error
	ready  time.Duration // from start to listening: process start, store open, sessions loaded
}

func startBrokerProcess(t *testing.T, ctx context.Context, addr, dir string) *brokerProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "broker", "--listen", addr, "--store-dir", dir, "--allow-anonymous", "--log-level", "info")
	cmd.Env = append(os.Environ(), envRunAsMain+"=1")
	p := &brokerProcess{cmd: cmd, out: &lockedBuffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	start := time.Now()
	require.NoError(t, cmd.Start())
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	for !strings.Contains(p.out.String(), "MQTT broker listening") {
		select {
		case err := <-p.exited:
			t.Fatalf("broker exited before listening (%v):\n%s", err, p.out)
		case <-ctx.Done():
			t.Fatalf("broker not listening in time:\n%s", p.out)
		case <-time.After(2 * time.Millisecond): // poll the output
		}
	}
	p.ready = time.Since(start)
	return p
}

func (p *brokerProcess) kill() { p.cmd.Process.Signal(syscall.SIGKILL) }

// wait returns the process's exit error once it has exited.
func (p *brokerProcess) wait(ctx context.Context) error {
	select {
	case err := <-p.exited:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop interrupts the broker and requires a clean exit.
func (p *brokerProcess) stop(ctx context.Context) error {
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return err
	}
	if err := p.wait(ctx); err != nil {
		return errors.Join(err, fmt.Errorf("broker output:\n%s", p.out))
	}
	return nil
}

// freeAddr returns a loopback address no one listens on, for a broker
// that must come back on the same port.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}
