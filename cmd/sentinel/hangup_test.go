package main

import (
	"context"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestReloadOnHangup: a SIGHUP to the process calls reload, and the
// watcher stops with its context.
func TestReloadOnHangup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{}, 10)
	stopped := reloadOnHangup(ctx, "users", func() (int, error) { calls <- struct{}{}; return 1, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGHUP))
	select {
	case <-calls:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP did not reload")
	}
	cancel()
	<-stopped
}
