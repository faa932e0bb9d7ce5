package recoverer_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/require"

	"github.com/sentinel-iot/sentinel/broker/brokertest"
	"github.com/sentinel-iot/sentinel/recoverer"
	"github.com/sentinel-iot/sentinel/recoverer/policy"
	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/warehousetest"
)

// watcher counts the messages published on a topic after it subscribed:
// the advisories the recoverer sent, not the one the broker retained.
type watcher struct {
	mu   sync.Mutex
	live [][]byte
}

func (w *watcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.live)
}

func watch(t *testing.T, broker *brokertest.Broker, topic string) *watcher {
	t.Helper()
	u, err := url.Parse(broker.URL())
	require.NoError(t, err)
	login := broker.Ops() // a person watching: sentinel/#, read-only
	w := &watcher{}
	ctx, cancel := context.WithCancel(context.Background())
	subscribed := make(chan struct{})
	var once sync.Once
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
		ConnectUsername: login.Username, ConnectPassword: []byte(login.Password),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1, RetainHandling: 2}}}); err == nil {
				once.Do(func() { close(subscribed) })
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: "advisory-watcher",
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				w.mu.Lock()
				w.live = append(w.live, pr.Packet.Payload)
				w.mu.Unlock()
				return true, nil
			}},
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { cancel(); <-cm.Done() })
	select {
	case <-subscribed:
	case <-time.After(wait):
		t.Fatal("watcher did not subscribe")
	}
	return w
}

// retained reads the retained message on topic with mosquitto_sub, the
// way a rollout manager's script would: --retained-only -C 1 prints the
// retained advisory and exits. Empty when there is none: it times out
// after 10 s (-W), which also bounds a slow connection under load.
func retained(t *testing.T, broker *brokertest.Broker, topic string) []byte {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("mosquitto_sub is required in CI (apt-get install mosquitto-clients)")
		}
		t.Skip("mosquitto_sub not installed (apt-get install mosquitto-clients)")
	}
	u, err := url.Parse(broker.URL())
	require.NoError(t, err)
	login := broker.Ops()
	out, err := exec.Command(bin, "-V", "mqttv5", "-h", u.Hostname(), "-p", u.Port(), "-i", "advisory-reader",
		"-u", login.Username, "-P", login.Password,
		"-t", topic, "--retained-only", "-C", "1", "-W", "10").Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 27 { // -W timed out: nothing retained
		return nil
	}
	require.NoError(t, err)
	return []byte(strings.TrimSpace(string(out)))
}

// startBreaker starts a recoverer whose breaker looks every 100 ms.
func startBreaker(t *testing.T, broker *brokertest.Broker, db *warehouse.DB) *run {
	t.Helper()
	login := broker.Service()
	r, err := recoverer.New(recoverer.Config{
		Broker: broker.URL(), Username: login.Username, Password: login.Password,
		ClientID: "recoverer-breaker", BreakerInterval: 100 * time.Millisecond,
		Policy: policy.Config{BackoffBase: 20 * time.Millisecond, BackoffMax: 100 * time.Millisecond},
		Logger: discard,
	}, db)
	require.NoError(t, err)
	return launch(t, r)
}

// halted is the regions of the retained halt advisory of 1.1.0, read with
// mosquitto_sub, and the advisory.
func halted(t *testing.T, broker *brokertest.Broker) ([]string, recoverer.Advisory) {
	t.Helper()
	var a recoverer.Advisory
	b := retained(t, broker, recoverer.AdvisoryTopic("1.1.0"))
	if len(b) == 0 {
		return nil, a
	}
	require.NoError(t, json.Unmarshal(b, &a), "%s", b)
	var regions []string
	for _, c := range a.Cohorts {
		regions = append(regions, c.Region)
	}
	slices.Sort(regions)
	return regions, a
}

// drained waits until the broker has acknowledged every audit record and
// command rn decided (the trip re-decides the cohort's failed devices),
// so a stop has nothing left to deliver.
func drained(t *testing.T, rn *run) {
	t.Helper()
	require.Eventually(t, func() bool {
		s := rn.r.Stats()
		var n uint64
		for _, c := range s.Decisions {
			n += c
		}
		for _, c := range s.Commands {
			n += c
		}
		return s.Published >= n
	}, wait, 20*time.Millisecond, "the recoverer's messages were not all delivered")
}

// TestAdvisoryListsEveryTrippedCohort trips eu, then us four seconds of
// breaker looks later, and reads the retained advisory with mosquitto_sub:
// it lists both, each with its rule, estimate, bound and sample.
func TestAdvisoryListsEveryTrippedCohort(t *testing.T) {
	db := warehousetest.Open(t)
	broker := startBroker(t)
	now := time.Now()
	// The previous rollout, to 1.0.0: the baseline, 10 % failed.
	recoverer.StoreRollout(t, db, "eu", "0.9.0", "1.0.0", 0, 400, 40, now.Add(-2*time.Hour))
	recoverer.StoreRollout(t, db, "us", "0.9.0", "1.0.0", 1000, 400, 40, now.Add(-2*time.Hour))
	recoverer.StoreRollout(t, db, "eu", "1.0.0", "1.1.0", 2000, 30, 25, now)
	recoverer.StoreRollout(t, db, "us", "1.0.0", "1.1.0", 3000, 30, 3, now)
	rn := startBreaker(t, broker, db)

	require.Eventually(t, func() bool { return slices.Equal(rn.r.Stats().Tripped, []string{"1.1.0/eu"}) }, wait, 20*time.Millisecond)
	require.Eventually(t, func() bool { r, _ := halted(t, broker); return slices.Equal(r, []string{"eu"}) }, wait, 50*time.Millisecond)

	recoverer.StoreRollout(t, db, "us", "1.0.0", "1.1.0", 4000, 40, 35, time.Now())
	require.Eventually(t, func() bool {
		return slices.Equal(rn.r.Stats().Tripped, []string{"1.1.0/eu", "1.1.0/us"})
	}, wait, 20*time.Millisecond)
	var a recoverer.Advisory
	require.Eventually(t, func() bool {
		var r []string
		r, a = halted(t, broker)
		return slices.Equal(r, []string{"eu", "us"})
	}, wait, 50*time.Millisecond, "the retained advisory lists both cohorts")
	require.Equal(t, 2, a.V)
	require.Equal(t, "halt", string(a.Verdict))
	for _, c := range a.Cohorts {
		require.Equal(t, recoverer.RuleV2, c.Rule)
		require.Equal(t, "install_failures", c.Signal)
		require.Greater(t, c.Bound, c.Limit, "%+v", c)
		require.Greater(t, c.Sample, 0.0)
		require.Equal(t, "1.0.0", c.BaselineFirmware)
		require.InDelta(t, 0.1, c.Baseline, 1e-9)
	}
	require.InDelta(t, 25.0/30, a.Cohorts[0].Estimate, 1e-9)
	require.InDelta(t, 38.0/70, a.Cohorts[1].Estimate, 1e-9)
	drained(t, rn)
	rn.stop(t)
}

// TestRestartKeepsTrip trips a cohort, restarts the recoverer on the same
// warehouse, and checks that the second run holds the trip from its first
// look, publishes no second advisory and stores no second verdict.
func TestRestartKeepsTrip(t *testing.T) {
	db := warehousetest.Open(t)
	broker := startBroker(t)
	w := watch(t, broker, recoverer.AdvisoryTopic("1.1.0"))
	now := time.Now()
	recoverer.StoreRollout(t, db, "eu", "0.9.0", "1.0.0", 0, 400, 40, now.Add(-2*time.Hour))
	recoverer.StoreRollout(t, db, "eu", "1.0.0", "1.1.0", 2000, 30, 25, now)

	rn := startBreaker(t, broker, db)
	require.Eventually(t, func() bool { return w.count() == 1 }, wait, 20*time.Millisecond, "one advisory")
	require.Equal(t, []string{"1.1.0/eu"}, rn.r.Stats().Tripped)
	drained(t, rn)
	rn.stop(t) // flushes the verdict to breaker_verdicts

	// Healthy devices dilute the cohort while the recoverer is down.
	recoverer.StoreRollout(t, db, "eu", "1.0.0", "1.1.0", 5000, 400, 20, time.Now())
	rn = startBreaker(t, broker, db)
	require.Equal(t, []string{"1.1.0/eu"}, rn.r.Stats().Tripped, "the trip is rebuilt before the first look")
	runs := rn.r.Stats().BreakerRuns
	require.Eventually(t, func() bool { return rn.r.Stats().BreakerRuns >= runs+5 }, wait, 20*time.Millisecond)
	require.Equal(t, []string{"1.1.0/eu"}, rn.r.Stats().Tripped, "still tripped after five looks")
	require.Equal(t, 1, w.count(), "no second advisory")
	drained(t, rn)
	rn.stop(t)
	n, err := db.QueryInt(context.Background(), "SELECT count() FROM breaker_verdicts WHERE verdict = 'halt'")
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "one halt verdict across the restart")
	regions, _ := halted(t, broker)
	require.Equal(t, []string{"eu"}, regions)
}
