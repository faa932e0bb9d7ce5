// SPDX-License-Identifier: MIT

package mqtt

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// maxSharedTurns bounds how many shared subscription groups sharedTurns
// remembers a turn for; past it they all start again from the first member,
// so clients inventing group names cannot grow it without bound.
const maxSharedTurns = 4096

// sharedTurns holds, for each shared subscription group (by filter), the
// index in client ID order of the member whose turn is next.
type sharedTurns struct {
	mu   sync.Mutex
	next map[string]int
}

// How much room a shared subscription member has for one more message, from
// least to most.
const (
	sharedRoomNone   = iota // inflight store full or a backlog waiting (see mustQueue), or no such client
	sharedRoomQueued        // room in the inflight store, but it waits there: no connection, or no send quota
	sharedRoomNow           // connected, with send quota and room: sent at once
)

// selectShared picks one member of each shared subscription group in subs
// to receive a message, into subs.SharedSelected, as
// Subscribers.SelectShared does, but spreading the messages over the
// members and avoiding those without room.
//
// Sentinel patch: upstream's SelectShared took the first member a map
// iteration yielded, which is not uniform (one of four ingestor sessions got
// 44 % of the traffic) and knows nothing of the members, so it kept
// choosing a session whose inflight store was full, where the message was
// dropped after its publisher's acknowledgement (now: queued in its backlog,
// or refused with 0x97), while other members had room. Here members take turns (round-robin in client ID order); a member
// whose turn it is gives way to the next one with more room, a full member
// is chosen only when every member is full, and the turn passes to the
// member after the one chosen.
func (s *Server) selectShared(subs *Subscribers) {
	subs.SharedSelected = make(map[string]packets.Subscription, len(subs.Shared))
	for group, members := range subs.Shared {
		if len(members) == 0 {
			continue
		}
		id := s.pickSharedMember(group, members)
		sub := members[id]
		if cls, ok := subs.SharedSelected[id]; ok {
			sub = cls.Merge(sub)
		}
		subs.SharedSelected[id] = sub
	}
}

// pickSharedMember returns the client ID of the member of group that gets
// the next message; see selectShared. members must not be empty.
func (s *Server) pickSharedMember(group string, members map[string]packets.Subscription) string {
	ids := make([]string, 0, len(members))
	for id := range members {
		ids = append(ids, id)
	}
	slices.Sort(ids)

	t := &s.sharedTurns
	t.mu.Lock()
	defer t.mu.Unlock()
	start := t.next[group] % len(ids)
	best, bestRoom := start, -1
	for k := range ids {
		i := (start + k) % len(ids)
		if r := s.sharedRoom(ids[i]); r > bestRoom {
			best, bestRoom = i, r
			if r == sharedRoomNow {
				break
			}
		}
	}
	if t.next == nil || len(t.next) >= maxSharedTurns {
		t.next = make(map[string]int)
	}
	t.next[group] = best + 1
	return ids[best]
}

// sharedRoom says how much room the session of client id has for one more
// QoS 1 or 2 message (see the sharedRoom constants). A QoS 0 message needs
// none, but taking the same turns keeps the spread even.
func (s *Server) sharedRoom(id string) int {
	cl, ok := s.Clients.Get(id)
	if !ok {
		return sharedRoomNone // publishToSubscribers would skip it
	}
	if s.mustQueue(cl) {
		return sharedRoomNone // full, or older messages wait in its backlog
	}
	if cl.Closed() || cl.Net.Conn == nil {
		return sharedRoomQueued
	}
	if atomic.LoadInt32(&cl.State.Inflight.maximumSendQuota) > 0 && atomic.LoadInt32(&cl.State.Inflight.sendQuota) <= 0 {
		return sharedRoomQueued
	}
	return sharedRoomNow
}
