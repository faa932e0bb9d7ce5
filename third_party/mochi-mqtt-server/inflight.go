// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co
// SPDX-FileContributor: mochi-co

package mqtt

import (
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Inflight is a map of InflightMessage keyed on packet id.
type Inflight struct {
	sync.RWMutex
	internal            map[uint16]packets.Packet // internal contains the inflight packets
	receiveQuota        int32                     // remaining inbound qos quota for flow control
	sendQuota           int32                     // remaining outbound qos quota for flow control
	maximumReceiveQuota int32                     // maximum allowed receive quota
	maximumSendQuota    int32                     // maximum allowed send quota
	immediate           []waitingID               // Sentinel patch: ids waiting for send quota, oldest first
	waiting             map[uint16]uint64         // Sentinel patch 17: id -> seq of the messages waiting for send quota, see SetWaiting
	seqs                map[uint16]uint64         // Sentinel patch 17: id -> order the message was stored in, see GetAll
	seq                 uint64                    // Sentinel patch 17: the last seq given
	used                *[1 << 16 / 64]uint64     // Sentinel patch 23: packet IDs in use, once the store holds bitmapFrom
}

// bitmapFrom is how many messages a store holds before it keeps a bitmap
// of the packet IDs in use (8 KiB) for NextFree; below it a scan of the
// map costs at most that many lookups, and an idle device's session pays
// nothing. Sentinel patch 23.
const bitmapFrom = 64

// waitingID is an entry of Inflight's queue of messages waiting for send
// quota: the packet ID and the seq it had when queued, so an ID deleted and
// reused is not taken for the old entry. Sentinel patch 17.
type waitingID struct {
	id  uint16
	seq uint64
}

// NewInflights returns a new instance of an Inflight packets map.
func NewInflights() *Inflight {
	return &Inflight{
		internal: map[uint16]packets.Packet{},
		waiting:  map[uint16]uint64{},
		seqs:     map[uint16]uint64{},
	}
}

// Set adds or updates an inflight packet by packet id.
//
// Sentinel patch 17: a message new to the store is given the next place in
// its order (GetAll), and an update keeps its place. Upstream marked a
// message to be sent when quota allows by setting its Expiry to -1, which
// lost the expiry [MQTT-3.3.2-5]; SetWaiting marks it instead.
func (i *Inflight) Set(m packets.Packet) bool {
	i.Lock()
	defer i.Unlock()
	return i.setLocked(m)
}

// setLocked is Set with the lock held.
func (i *Inflight) setLocked(m packets.Packet) bool {
	_, ok := i.internal[m.PacketID]
	i.internal[m.PacketID] = m
	if !ok {
		i.seq++
		i.seqs[m.PacketID] = i.seq
		if i.used != nil {
			i.used[m.PacketID/64] |= 1 << (m.PacketID % 64)
		} else if len(i.internal) >= bitmapFrom {
			i.used = new([1 << 16 / 64]uint64)
			for id := range i.internal {
				i.used[id/64] |= 1 << (id % 64)
			}
		}
	}
	return !ok
}

// NextFree returns the first packet ID after after, wrapping from max to
// 1, that no message in the store holds, and false when all of 1 to max
// are held. Sentinel patch 23: Client.NextPacketID looked each candidate
// up under its own lock, so with thousands in flight (a fleet's burst, a
// slow subscriber) every publish scanned them: 89 % of the broker's CPU
// in issue 14's 10,000-device burst. A bitmap finds the next free ID a
// word (64 IDs) at a time.
func (i *Inflight) NextFree(after uint16, max uint32) (uint16, bool) {
	i.RLock()
	defer i.RUnlock()
	id := uint32(after) + 1
	for scanned := uint32(0); scanned < max; {
		if id > max || id == 0 {
			id = 1
		}
		if i.used == nil {
			if _, ok := i.internal[uint16(id)]; !ok {
				return uint16(id), true
			}
			id++
			scanned++
			continue
		}
		free := ^i.used[id/64] >> (id % 64) // the free IDs from id to the end of its word
		if free == 0 {
			step := 64 - id%64
			id += step
			scanned += step
			continue
		}
		if next := id + uint32(bits.TrailingZeros64(free)); next <= max {
			return uint16(next), true
		}
		scanned += max - id + 1
		id = 1
	}
	return 0, false
}

// SetWaiting adds or updates an inflight packet, as Set does, and marks it
// to be sent when the client's send quota allows (NextImmediate), behind
// the messages stored before it. A message is marked when it could not be
// sent: out of send quota, its client disconnected, or its outbound queue
// full. Sentinel patch 17: upstream marked such a message with Expiry -1.
func (i *Inflight) SetWaiting(m packets.Packet) bool {
	i.Lock()
	defer i.Unlock()
	added := i.setLocked(m)
	seq := i.seqs[m.PacketID]
	if _, ok := i.waiting[m.PacketID]; ok {
		return added
	}
	i.waiting[m.PacketID] = seq
	// In store order: mostly appended at the end; a message sent once and
	// deferred again at a reconnect goes back to its place.
	at := len(i.immediate)
	for at > 0 && i.immediate[at-1].seq > seq {
		at--
	}
	i.immediate = append(i.immediate, waitingID{})
	copy(i.immediate[at+1:], i.immediate[at:])
	i.immediate[at] = waitingID{id: m.PacketID, seq: seq}
	return added
}

// Waiting reports whether the message under packet id is marked to be sent
// when quota allows (SetWaiting). Sentinel patch 17.
func (i *Inflight) Waiting(id uint16) bool {
	i.RLock()
	defer i.RUnlock()
	_, ok := i.waiting[id]
	return ok
}

// HasWaiting reports whether any message waits for send quota
// (SetWaiting). Sentinel patch 24.
func (i *Inflight) HasWaiting() bool {
	i.RLock()
	defer i.RUnlock()
	return len(i.waiting) > 0
}

// Unwait clears the mark SetWaiting set on the message under packet id: it
// is being sent. Sentinel patch 17.
func (i *Inflight) Unwait(id uint16) {
	i.Lock()
	defer i.Unlock()
	delete(i.waiting, id)
}

// Get returns an inflight packet by packet id.
func (i *Inflight) Get(id uint16) (packets.Packet, bool) {
	i.RLock()
	defer i.RUnlock()

	if m, ok := i.internal[id]; ok {
		return m, true
	}

	return packets.Packet{}, false
}

// Len returns the size of the inflight messages map.
func (i *Inflight) Len() int {
	i.RLock()
	defer i.RUnlock()
	return len(i.internal)
}

// Clone returns a new instance of Inflight with the same message data.
// This is used when transferring inflights from a taken-over session.
func (i *Inflight) Clone() *Inflight {
	c := NewInflights()
	i.RLock()
	defer i.RUnlock()
	for k, v := range i.internal {
		c.internal[k] = v
	}
	for k, v := range i.waiting {
		c.waiting[k] = v
	}
	for k, v := range i.seqs {
		c.seqs[k] = v
	}
	c.seq = i.seq
	if i.used != nil {
		used := *i.used
		c.used = &used
	}
	c.immediate = append([]waitingID(nil), i.immediate...)
	return c
}

// GetAll returns all the inflight messages, or with immediate only those
// waiting for send quota (SetWaiting).
//
// Sentinel patch 21: in the order they were stored. Upstream sorted them
// by uint16(Created), the creation second cut to 16 bits, so messages
// created within a second came back in map order, and a reconnecting
// client got its queued messages out of order [MQTT-4.6.0-6].
func (i *Inflight) GetAll(immediate bool) []packets.Packet {
	i.RLock()
	defer i.RUnlock()

	type entry struct {
		pk  packets.Packet
		seq uint64
	}
	m := make([]entry, 0, len(i.internal))
	for id, v := range i.internal {
		if _, waiting := i.waiting[id]; !immediate || waiting {
			m = append(m, entry{v, i.seqs[id]})
		}
	}
	sort.Slice(m, func(i, j int) bool { return m[i].seq < m[j].seq })

	out := make([]packets.Packet, len(m))
	for k, e := range m {
		out[k] = e.pk
	}
	return out
}

// NextImmediate returns the next inflight packet which is indicated to be sent immediately.
// This typically occurs when the quota has been exhausted, and we need to wait until new quota
// is free to continue sending.
//
// Sentinel patch: the packet returned stays in flight, no longer marked
// immediate, so its PUBACK returns the send quota and a reconnect resends
// it; the ids waiting are kept in a queue instead of sorting the whole map
// on every call. Patch 17: the mark is SetWaiting's, not Expiry -1, so the
// packet keeps its expiry.
func (i *Inflight) NextImmediate() (packets.Packet, bool) {
	i.Lock()
	defer i.Unlock()
	for len(i.immediate) > 0 {
		w := i.immediate[0]
		i.immediate = i.immediate[1:]
		if seq, ok := i.waiting[w.id]; ok && seq == w.seq {
			delete(i.waiting, w.id)
			return i.internal[w.id], true
		}
	}
	i.immediate = nil
	return packets.Packet{}, false
}

// Delete removes an in-flight message from the map. Returns true if the message existed.
func (i *Inflight) Delete(id uint16) bool {
	i.Lock()
	defer i.Unlock()

	_, ok := i.internal[id]
	delete(i.internal, id)
	if i.used != nil {
		i.used[id/64] &^= 1 << (id % 64) // Sentinel patch 23
	}
	delete(i.waiting, id) // Sentinel patch 17
	delete(i.seqs, id)

	return ok
}

// TakeRecieveQuota reduces the receive quota by 1.
func (i *Inflight) DecreaseReceiveQuota() {
	if atomic.LoadInt32(&i.receiveQuota) > 0 {
		atomic.AddInt32(&i.receiveQuota, -1)
	}
}

// TakeRecieveQuota increases the receive quota by 1.
func (i *Inflight) IncreaseReceiveQuota() {
	if atomic.LoadInt32(&i.receiveQuota) < atomic.LoadInt32(&i.maximumReceiveQuota) {
		atomic.AddInt32(&i.receiveQuota, 1)
	}
}

// ResetReceiveQuota resets the receive quota to the maximum allowed value.
func (i *Inflight) ResetReceiveQuota(n int32) {
	atomic.StoreInt32(&i.receiveQuota, n)
	atomic.StoreInt32(&i.maximumReceiveQuota, n)
}

// DecreaseSendQuota reduces the send quota by 1.
func (i *Inflight) DecreaseSendQuota() {
	if atomic.LoadInt32(&i.sendQuota) > 0 {
		atomic.AddInt32(&i.sendQuota, -1)
	}
}

// IncreaseSendQuota increases the send quota by 1.
func (i *Inflight) IncreaseSendQuota() {
	if atomic.LoadInt32(&i.sendQuota) < atomic.LoadInt32(&i.maximumSendQuota) {
		atomic.AddInt32(&i.sendQuota, 1)
	}
}

// ResetSendQuota resets the send quota to the maximum allowed value.
func (i *Inflight) ResetSendQuota(n int32) {
	atomic.StoreInt32(&i.sendQuota, n)
	atomic.StoreInt32(&i.maximumSendQuota, n)
}
