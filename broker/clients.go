package broker

import (
	"errors"
	"fmt"

	"github.com/mochi-mqtt/server/v2/packets"
)

// ErrNoClient means no client with the given ID is known to the broker.
var ErrNoClient = errors.New("broker: no such client")

// Disconnect ends the connection of client id as an operator would: a
// DISCONNECT with reason 0x98 (Administrative action), then the close.
// The client's Last Will is published, and its persistent session stays
// for its next connection.
func (b *Broker) Disconnect(id string) error {
	cl, ok := b.server.Clients.Get(id)
	if !ok {
		return fmt.Errorf("disconnect %q: %w", id, ErrNoClient)
	}
	// mochi returns the reason code as an error once it has sent it.
	if err := b.server.DisconnectClient(cl, packets.ErrAdministrativeAction); err != nil && !errors.Is(err, packets.ErrAdministrativeAction) {
		return fmt.Errorf("disconnect %q: %w", id, err)
	}
	return nil
}

// DropConnection closes client id's network connection without a
// DISCONNECT, as a network failure would: the broker notices on its next
// read, publishes the client's Last Will and keeps its session. For tests
// of what a lost connection does.
func (b *Broker) DropConnection(id string) error {
	cl, ok := b.server.Clients.Get(id)
	if !ok || cl.Net.Conn == nil {
		return fmt.Errorf("drop the connection of %q: %w", id, ErrNoClient)
	}
	if err := cl.Net.Conn.Close(); err != nil {
		return fmt.Errorf("drop the connection of %q: %w", id, err)
	}
	return nil
}
