// SPDX-License-Identifier: MIT

package packets

// Tests of Sentinel's patches to this package (README.sentinel.md).

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDisconnectDecodeReasonOnly(t *testing.T) {
	// Patch 20, MQTT v5 3.14.2.1: "The Reason Code and Property Length can
	// be omitted if the Reason Code is 0x00 and there are no Properties";
	// a remaining length of 1 is the reason code alone.
	for _, tt := range []struct {
		body []byte
		want byte
	}{{nil, 0x00}, {[]byte{0x04}, 0x04}, {[]byte{0x95}, 0x95}, {[]byte{0x8e, 0x00}, 0x8e}} {
		pk := Packet{ProtocolVersion: 5, FixedHeader: FixedHeader{Type: Disconnect, Remaining: len(tt.body)}}
		require.NoError(t, pk.DisconnectDecode(tt.body))
		require.Equal(t, tt.want, pk.ReasonCode, "body % x", tt.body)
	}
}
