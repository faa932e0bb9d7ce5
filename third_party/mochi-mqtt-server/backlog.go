// SPDX-License-Identifier: MIT

package mqtt

import (
	"sync"
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Backlog holds, per session, the QoS 1 and 2 messages that found the
// session's inflight store full (Capabilities.MaximumInflight), oldest
// first, until the session's acknowledgements make room for them.
//
// Sentinel patch: upstream logged "client store quota reached" and dropped
// such a message after its publisher had been acknowledged; with a backlog
// the broker instead asks Admit before acknowledging a publish that needs
// one, and refuses the publish (PUBACK 0x97, quota exceeded) when it says
// no, so the publisher keeps the message and resends it. Without a
// Backlog (Options.Backlog nil) every such publish is refused.
//
// The server calls Push from the publisher's goroutine and Drain from
// whichever goroutine found room, never both at once for one session.
type Backlog interface {
	// Admit reports whether a publish of pk may be accepted although
	// sessions of its subscribers must queue it in their backlogs. When it
	// returns false the publish is refused before any subscriber has it.
	// It must not block.
	Admit(cl *Client, pk packets.Packet, sessions int) bool
	// Len returns how many messages wait in session id's backlog. It is
	// called for every QoS 1 or 2 delivery, so it must be cheap.
	Len(id string) int
	// Push appends pk to session cl's backlog. An error means the message
	// is lost; the implementation counts and reports it.
	Push(cl *Client, pk packets.Packet) error
	// Drain calls put with up to max of session id's oldest messages,
	// oldest first, and removes each from the backlog once put has
	// returned true (put stores it in flight, so a crash in between leaves
	// it in both stores, never in neither). It stops at the first false.
	// It returns how many were removed.
	Drain(id string, max int, put func(pk packets.Packet) bool) (int, error)
	// Discard deletes session cl's backlog: the session ended (a clean
	// start, or its expiry with its connection) and MQTT drops its
	// messages. The implementation counts what it held.
	Discard(cl *Client)
}

// drainChunk bounds how many messages one Drain call moves, so a session
// with room for thousands does not hold its backlog lock for long.
const drainChunk = 256

// backlogLock returns the mutex that orders session id's deliveries
// against its backlog: a delivery that must queue, and a drain that moves
// queued messages in flight, hold it, so the session's messages keep
// their order. Sentinel patch.
func (s *Server) backlogLock(id string) *sync.Mutex {
	if mu, ok := s.backlogLocks.Load(id); ok {
		return mu.(*sync.Mutex)
	}
	mu, _ := s.backlogLocks.LoadOrStore(id, new(sync.Mutex))
	return mu.(*sync.Mutex)
}

// inflightFull reports whether cl's inflight store has no room left.
func (s *Server) inflightFull(cl *Client) bool {
	return cl.State.Inflight.Len() >= int(s.Options.Capabilities.MaximumInflight)
}

// mustQueue reports whether a QoS 1 or 2 message for cl has to wait in its
// backlog: its inflight store is full, or older messages wait there.
func (s *Server) mustQueue(cl *Client) bool {
	if s.inflightFull(cl) {
		return true
	}
	return s.Options.Backlog != nil && s.Options.Backlog.Len(cl.ID) > 0
}

// admitPublish reports whether the publish pk from cl may be accepted for
// the given subscribers: yes unless some of them must queue it and the
// backlog refuses (see Backlog.Admit). Sentinel patch.
func (s *Server) admitPublish(cl *Client, subscribers *Subscribers, pk packets.Packet) bool {
	if pk.FixedHeader.Qos == 0 {
		return true
	}
	queued := 0
	for id, sub := range subscribers.Subscriptions {
		if sub.Qos == 0 || (sub.NoLocal && pk.Origin == id) {
			continue
		}
		if c, ok := s.Clients.Get(id); ok && s.mustQueue(c) {
			queued++
		}
	}
	if queued == 0 {
		return true
	}
	return s.Options.Backlog != nil && s.Options.Backlog.Admit(cl, pk, queued)
}

// refusePublish answers a publish the backlog refused: PUBACK (or PUBREC)
// 0x97, quota exceeded, so an MQTT 5 publisher keeps the message and
// sends it again. MQTT 3 has no negative acknowledgement: the client is
// disconnected unacknowledged, and resends the publish on its next
// connection. Sentinel patch.
func (s *Server) refusePublish(cl *Client, pk packets.Packet) error {
	if cl.Properties.ProtocolVersion < 5 {
		return s.DisconnectClient(cl, packets.ErrQuotaExceeded)
	}
	ackType := packets.Puback
	if pk.FixedHeader.Qos == 2 {
		ackType = packets.Pubrec
	}
	return cl.WritePacket(s.buildAck(pk.PacketID, ackType, 0, pk.Properties, packets.ErrQuotaExceeded))
}

// queueIfFull puts out in cl's backlog when it must wait there (see
// mustQueue), and then moves what fits back in flight. It reports whether
// out was queued (or lost, when the backlog failed to keep it).
// Sentinel patch.
func (s *Server) queueIfFull(cl *Client, out packets.Packet) (bool, error) {
	if !s.mustQueue(cl) {
		return false, nil
	}
	mu := s.backlogLock(cl.ID)
	mu.Lock()
	defer mu.Unlock()
	if !s.mustQueue(cl) {
		return false, nil // room was made while we waited
	}
	if s.Options.Backlog == nil {
		// Admitted when there was room, full now: another publisher came
		// first. Exceeding the limit by a message beats losing it.
		return false, nil
	}
	if err := s.Options.Backlog.Push(cl, out); err != nil {
		atomic.AddInt64(&s.Info.InflightDropped, 1)
		return true, err
	}
	s.drainLocked(cl)
	return true, nil
}

// discardBacklog deletes the backlog of cl's session, which has ended
// (see Backlog.Discard). Sentinel patch.
func (s *Server) discardBacklog(cl *Client) {
	if s.Options.Backlog == nil || cl.Net.Inline {
		return
	}
	mu := s.backlogLock(cl.ID)
	mu.Lock()
	defer mu.Unlock()
	s.Options.Backlog.Discard(cl)
}

// drainBacklog moves messages from cl's backlog in flight while its
// inflight store has room, and sends those its send quota allows. The
// server calls it after every packet from cl and when cl's session
// resumes. Sentinel patch.
func (s *Server) drainBacklog(cl *Client) {
	if s.Options.Backlog == nil || cl.Net.Inline || s.Options.Backlog.Len(cl.ID) == 0 || s.inflightFull(cl) {
		return
	}
	mu := s.backlogLock(cl.ID)
	mu.Lock()
	defer mu.Unlock()
	s.drainLocked(cl)
}

// drainLocked is drainBacklog with the session's backlog lock held.
func (s *Server) drainLocked(cl *Client) {
	for {
		room := int(s.Options.Capabilities.MaximumInflight) - cl.State.Inflight.Len()
		if room <= 0 || s.Options.Backlog.Len(cl.ID) == 0 {
			break
		}
		n, err := s.Options.Backlog.Drain(cl.ID, min(room, drainChunk), func(pk packets.Packet) bool {
			return s.putInflight(cl, pk)
		})
		if err != nil {
			s.Log.Error("drain a session's backlog", "client", cl.ID, "error", err)
			break
		}
		if n == 0 {
			break
		}
	}
	if cl.Net.Conn == nil || cl.Closed() {
		return // sent when the session's next connection comes
	}
	s.sendWaiting(cl)
}

// sendWaiting sends cl's messages waiting for send quota, oldest first,
// while it has quota. Through the outbound queue, as publishToClient
// sends: this may run on a publisher's goroutine, which must not block on
// cl's socket. Sentinel patch.
func (s *Server) sendWaiting(cl *Client) {
	for atomic.LoadInt32(&cl.State.Inflight.sendQuota) > 0 {
		next, ok := cl.State.Inflight.NextImmediate()
		if !ok {
			break
		}
		select {
		case cl.State.outbound <- &next:
			atomic.AddInt32(&cl.State.outboundQty, 1)
			cl.State.Inflight.DecreaseSendQuota()
		default:
			cl.State.Inflight.SetWaiting(next) // the queue is full: sent after cl's next packet
			return
		}
	}
}

// putInflight stores a message from the backlog in cl's inflight store,
// marked to be sent when the send quota allows, as publishToClient does
// with a message past the quota. It reports false when no packet ID is
// free.
func (s *Server) putInflight(cl *Client, pk packets.Packet) bool {
	i, err := cl.NextPacketID()
	if err != nil {
		return false
	}
	pk.PacketID = uint16(i)
	s.restoreExpiry(&pk)                            // Sentinel patch 22: a backlog on disk keeps the interval, not the expiry
	if ok := cl.State.Inflight.SetWaiting(pk); ok { // as publishToClient marks a message past the send quota
		atomic.AddInt64(&s.Info.Inflight, 1)
		s.hooks.OnQosPublish(cl, pk, pk.Created, 0)
	}
	return true
}
