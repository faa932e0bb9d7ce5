package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ErrBacklogClosed means a backlog operation came after Stop.
var ErrBacklogClosed = errors.New("store: backlog used after close")

// backlogPrefix starts the key of every backlog record:
// backlogPrefix + client ID + 0x00 + big-endian sequence number. MQTT
// strings never hold U+0000 [MQTT-1.5.4-2], so the separator cannot occur
// in a client ID, and a session's records sort in the order they were
// queued.
const backlogPrefix = "SENTINEL_BACKLOG_"

// backlog is the store's half of mochi's Backlog (a Sentinel patch): the
// messages of sessions whose inflight store is full, kept on disk in
// queue order under a byte budget, read back as the sessions' windows
// free. Records are written without a sync: the group commit that
// releases the publisher's acknowledgement syncs them first.
type backlog struct {
	budget int64        // Options.BacklogBytes
	bytes  atomic.Int64 // record bytes held, all sessions

	mu       sync.RWMutex
	sessions map[string]*queue // guarded by mu; the queues have their own fields
}

// queue is one session's backlog. head and tail are guarded by the
// server's per-session backlog lock (mochi calls Push and Drain for one
// session one at a time); n is read without it.
type queue struct {
	head, tail uint64 // next sequence to drain, next to push
	n          atomic.Int64
	bytes      atomic.Int64
}

func backlogKey(id string, seq uint64) []byte {
	k := make([]byte, 0, len(backlogPrefix)+len(id)+9)
	k = append(k, backlogPrefix...)
	k = append(k, id...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// loadBacklog rebuilds the sessions' queues from their records, at Init.
func (h *Hook) loadBacklog() error {
	b := &backlog{budget: h.opts.BacklogBytes, sessions: map[string]*queue{}}
	it, err := h.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte(backlogPrefix),
		UpperBound: []byte(backlogPrefix[:len(backlogPrefix)-1] + "`"), // '`' follows '_'
	})
	if err != nil {
		return fmt.Errorf("store: scan backlog records: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()[len(backlogPrefix):]
		if len(k) < 9 || k[len(k)-9] != 0 {
			h.Log.Error("store: skip a backlog record with a malformed key", "key", string(it.Key()))
			continue
		}
		id, seq := string(k[:len(k)-9]), binary.BigEndian.Uint64(k[len(k)-8:])
		q := b.sessions[id]
		if q == nil {
			q = &queue{head: seq}
			b.sessions[id] = q
		}
		q.tail = seq + 1
		q.n.Add(1)
		q.bytes.Add(int64(len(it.Value())))
		b.bytes.Add(int64(len(it.Value())))
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("store: scan backlog records: %w", err)
	}
	h.backlog = b
	if len(b.sessions) > 0 {
		h.Log.Info("store: backlog restored", "sessions", len(b.sessions), "bytes", b.bytes.Load())
	}
	return nil
}

// BacklogBytes returns the bytes of backlog records held, over every
// session, and the budget they may use (Options.BacklogBytes).
func (h *Hook) BacklogBytes() (held, budget int64) {
	if h.backlog == nil {
		return 0, 0
	}
	return h.backlog.bytes.Load(), h.backlog.budget
}

// BacklogFits reports whether sessions more copies of pk fit the
// backlog's byte budget. It reserves nothing: publishers racing past the
// check can overshoot the budget by a message each, which bounds the
// overshoot by the number of connections.
func (h *Hook) BacklogFits(pk packets.Packet, sessions int) bool {
	if h.backlog == nil {
		return false
	}
	need := int64(sessions) * recordSizeEstimate(pk)
	return h.backlog.bytes.Load()+need <= h.backlog.budget
}

// recordSizeEstimate is about what a backlog record of pk takes: its
// topic and payload, base64 in the JSON record (4/3), plus the record's
// fixed fields (about 200 bytes measured in TestBacklogRecordSize).
func recordSizeEstimate(pk packets.Packet) int64 {
	return int64(len(pk.TopicName)) + int64(len(pk.Payload))*4/3 + 200
}

// BacklogLen returns how many messages wait in session id's backlog.
func (h *Hook) BacklogLen(id string) int {
	if h.backlog == nil {
		return 0
	}
	h.backlog.mu.RLock()
	q := h.backlog.sessions[id]
	h.backlog.mu.RUnlock()
	if q == nil {
		return 0
	}
	return int(q.n.Load())
}

// session returns id's queue, made if missing.
func (b *backlog) session(id string) *queue {
	b.mu.RLock()
	q := b.sessions[id]
	b.mu.RUnlock()
	if q != nil {
		return q
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if q = b.sessions[id]; q == nil {
		q = &queue{}
		b.sessions[id] = q
	}
	return q
}

// BacklogPush appends pk to session cl's backlog.
func (h *Hook) BacklogPush(cl *mqtt.Client, pk packets.Packet) error {
	if h.backlog == nil {
		return ErrBacklogClosed
	}
	m := message(pk)
	m.ID, m.T, m.Client = backlogPrefix+cl.ID, storage.InflightKey, cl.ID
	v, err := m.MarshalBinary()
	if err != nil {
		return fmt.Errorf("store: encode a backlog record for %s: %w", cl.ID, err)
	}
	q := h.backlog.session(cl.ID)
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return ErrBacklogClosed
	}
	if err := h.db.Set(backlogKey(cl.ID, q.tail), v, pebble.NoSync); err != nil {
		return fmt.Errorf("store: write a backlog record for %s: %w", cl.ID, err)
	}
	q.tail++
	q.n.Add(1)
	q.bytes.Add(int64(len(v)))
	h.backlog.bytes.Add(int64(len(v)))
	return nil
}

// BacklogDrain calls put with up to max of session id's oldest messages,
// oldest first, and deletes those put took (see mqtt.Backlog.Drain). The
// deletion is written after put has stored the message in flight, so the
// WAL never holds the one without the other.
func (h *Hook) BacklogDrain(id string, max int, put func(packets.Packet) bool) (int, error) {
	if h.backlog == nil {
		return 0, ErrBacklogClosed
	}
	q := h.backlog.session(id)
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return 0, ErrBacklogClosed
	}
	it, err := h.db.NewIter(&pebble.IterOptions{LowerBound: backlogKey(id, q.head), UpperBound: backlogKey(id, q.tail)})
	if err != nil {
		return 0, fmt.Errorf("store: read %s's backlog: %w", id, err)
	}
	var n int
	var size int64
	for it.First(); it.Valid() && n < max; it.Next() {
		var m storage.Message
		if err := m.UnmarshalBinary(it.Value()); err != nil {
			// Undecodable: skipped (and deleted with the range) rather
			// than blocking the session for good.
			h.Log.Error("store: skip a backlog record that does not decode", "client", id, "error", err)
		} else if !put(m.ToPacket()) {
			break
		}
		n++
		size += int64(len(it.Value()))
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("store: read %s's backlog: %w", id, err)
	}
	if n == 0 {
		return 0, nil
	}
	from := q.head
	q.head += uint64(n)
	q.n.Add(-int64(n))
	q.bytes.Add(-size)
	h.backlog.bytes.Add(-size)
	if err := h.db.DeleteRange(backlogKey(id, from), backlogKey(id, q.head), pebble.NoSync); err != nil {
		return n, fmt.Errorf("store: delete drained backlog records of %s: %w", id, err)
	}
	return n, nil
}

// BacklogDiscard deletes session id's backlog and returns how many
// messages it held. Like Push and Drain it runs under the server's lock
// for the session, so the queue is reset in place: its next record takes
// the next sequence number, never one a deleted record had.
func (h *Hook) BacklogDiscard(id string) int {
	if h.backlog == nil || h.BacklogLen(id) == 0 {
		return 0
	}
	q := h.backlog.session(id)
	n, size := q.n.Load(), q.bytes.Load()
	q.head = q.tail
	q.n.Add(-n)
	q.bytes.Add(-size)
	h.backlog.bytes.Add(-size)
	h.mu.RLock()
	defer h.mu.RUnlock()
	if !h.closed {
		lo, hi := []byte(backlogPrefix+id+"\x00"), []byte(backlogPrefix+id+"\x01")
		if err := h.db.DeleteRange(lo, hi, pebble.NoSync); err != nil {
			h.Log.Error("store: delete a discarded backlog", "client", id, "error", err)
		}
	}
	return int(n)
}
