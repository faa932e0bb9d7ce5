package broker_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sentinel-iot/sentinel/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func connect(t *testing.T, ctx context.Context, brokerURL, id string, onMsg func(*paho.Publish)) *autopaho.ConnectionManager {
	t.Helper()
	u, err := url.Parse(brokerURL)
	require.NoError(t, err)
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ClientConfig:                  paho.ClientConfig{ClientID: id},
	}
	if onMsg != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			onMsg(pr.Packet)
			return true, nil
		}}
	}
	cm, err := autopaho.NewConnection(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, cm.AwaitConnection(ctx))
	return cm
}

func TestPublishSubscribe(t *testing.T) {
	b, err := broker.New(broker.Config{Addr: "127.0.0.1:0", Auth: broker.AuthConfig{AllowAnonymous: true}})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	defer b.Close()
	require.NotEmpty(t, b.Addr())

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan *paho.Publish, 1)
	sub := connect(t, ctx, b.URL(), "sub", func(p *paho.Publish) { got <- p })
	_, err = sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "fleet/+/+/telemetry", QoS: 1}}})
	require.NoError(t, err)
	pub := connect(t, ctx, b.URL(), "pub", nil)
	_, err = pub.Publish(ctx, &paho.Publish{Topic: "fleet/eu/d1/telemetry", QoS: 1, Payload: []byte("hi")})
	require.NoError(t, err)
	select {
	case p := <-got:
		require.Equal(t, "fleet/eu/d1/telemetry", p.Topic)
		require.Equal(t, "hi", string(p.Payload))
	case <-ctx.Done():
		t.Fatal("no message delivered")
	}
	require.Eventually(t, func() bool { return b.Clients() == 2 }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, pub.Disconnect(ctx))
	require.NoError(t, sub.Disconnect(ctx))
	<-pub.Done()
	<-sub.Done()
}

func TestRunStopsOnCancel(t *testing.T) {
	b, err := broker.New(broker.Config{Addr: "127.0.0.1:0", Auth: broker.AuthConfig{AllowAnonymous: true}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	require.Eventually(t, func() bool { return b.Addr() != "" }, 5*time.Second, 5*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	require.NoError(t, b.Close(), "Close after Run is a no-op")
}

func TestListenError(t *testing.T) {
	a, err := broker.New(broker.Config{Addr: "127.0.0.1:0", Auth: broker.AuthConfig{AllowAnonymous: true}})
	require.NoError(t, err)
	require.NoError(t, a.Start())
	defer a.Close()
	b, err := broker.New(broker.Config{Addr: a.Addr()})
	require.NoError(t, err)
	require.ErrorContains(t, b.Start(), "is another broker running there?")
	require.ErrorIs(t, a.Start(), broker.ErrStarted)
}
