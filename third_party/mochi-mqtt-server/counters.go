// SPDX-License-Identifier: MIT

package mqtt

import (
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
)

// dropInflight counts a QoS 1 or 2 message for cl that its session could not
// take (Info.InflightDropped) and tells the hooks providing
// OnInflightDropped. Sentinel patch: upstream counted it without a hook
// call ("// add hook?"), so no metric saw the loss.
func (s *Server) dropInflight(cl *Client, pk packets.Packet) {
	atomic.AddInt64(&s.Info.InflightDropped, 1)
	s.hooks.OnInflightDropped(cl, pk)
}

// noteClientsMaximum raises Info.ClientsMaximum to Info.ClientsConnected
// when that is higher. Sentinel patch: upstream raised it by one in
// inheritClientSession, only for a connection that resumed no session (so a
// fleet reconnecting to its persistent sessions after a restart left it
// at 0), and with a load and an add that concurrent connections could
// interleave.
func (s *Server) noteClientsMaximum() {
	n := atomic.LoadInt64(&s.Info.ClientsConnected)
	for {
		m := atomic.LoadInt64(&s.Info.ClientsMaximum)
		if n <= m || atomic.CompareAndSwapInt64(&s.Info.ClientsMaximum, m, n) {
			return
		}
	}
}
