package recoverer

import (
	"sync"
	"time"

	"github.com/sentinel-iot/sentinel/proto"
)

// readings coalesces telemetry between the MQTT client and the tracker.
// Every device reports every few seconds, so readings are most of what
// arrives (5,000 a second at 10,000 devices), and in one queue with the
// status events a status that calls for a command waited behind thousands
// of them. Only a device's latest reading matters to the policy, so the
// client's goroutine decodes each reading and keeps the latest per device
// here, and the tracker takes them in batches when no status waits.
type readings struct {
	mu     sync.Mutex
	latest map[string]reading // by region/device
	notify chan struct{}      // signalled when latest goes from empty to not
}

// reading is one decoded telemetry message and when it arrived.
type reading struct {
	region   string
	m        *proto.Telemetry
	received time.Time
}

func newReadings() *readings {
	return &readings{latest: make(map[string]reading), notify: make(chan struct{}, 1)}
}

// put keeps rd unless a later reading of its device (by seq) is already
// waiting. It reports whether rd replaced an earlier waiting reading, which
// the tracker then never sees.
func (r *readings) put(rd reading) (coalesced bool) {
	key := rd.region + "/" + rd.m.DeviceID
	r.mu.Lock()
	old, ok := r.latest[key]
	if !ok || rd.m.Seq > old.m.Seq {
		r.latest[key] = rd
	}
	n := len(r.latest)
	r.mu.Unlock()
	if n == 1 && !ok {
		signal(r.notify)
	}
	return ok
}

// take returns the waiting readings and empties the set.
func (r *readings) take() map[string]reading {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.latest) == 0 {
		return nil
	}
	out := r.latest
	r.latest = make(map[string]reading, len(out))
	return out
}

// takeDevice removes and returns the waiting reading of one device, so a
// status is decided on every reading that arrived before it.
func (r *readings) takeDevice(region, device string) (reading, bool) {
	key := region + "/" + device
	r.mu.Lock()
	defer r.mu.Unlock()
	rd, ok := r.latest[key]
	if ok {
		delete(r.latest, key)
	}
	return rd, ok
}
