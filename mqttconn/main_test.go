package mqttconn

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// QueuedConn writer must have exited once its connection is closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
