package proc_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sentinel-iot/sentinel/bench/proc"
)

// envChild makes the test binary a child for TestStart: it listens on a
// free port, says where in its address file, and waits for SIGINT.
const envChild = "PROC_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		os.Exit(child(mode))
	}
	goleak.VerifyTestMain(m)
}

func child(mode string) int {
	if mode == "exit" {
		return 3
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 1
	}
	defer ln.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	if err := proc.WriteAddrFile(os.Args[len(os.Args)-1], map[string]string{"mqtt": ln.Addr().String()}); err != nil {
		return 2
	}
	<-sig
	return 0
}

func TestStart(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Setenv(envChild, "listen")
	p, err := proc.StartSentinel(ctx, "child", exe, "-test.run=^$")
	require.NoError(t, err)
	addr := p.Addr("mqtt")
	require.NotEmpty(t, addr)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err, "the child listens where its address file says")
	conn.Close()
	u, err := p.Usage()
	require.NoError(t, err)
	require.Positive(t, u.RSS)
	require.NoError(t, p.Stop(), "the child exits 0 on SIGINT")
	require.NoError(t, p.Stop(), "a second Stop returns the same")

	t.Setenv(envChild, "exit")
	_, err = proc.StartSentinel(ctx, "child", exe, "-test.run=^$")
	require.ErrorIs(t, err, proc.ErrNotReady, "a child that exits before it is ready")
}

func TestStartListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// sleep stands in for a program that cannot write an address file.
	p, err := proc.Start(ctx, proc.Spec{Name: "sleep", Path: "sleep", Args: []string{"60"}, Listen: ln.Addr().String()})
	require.NoError(t, err)
	require.Equal(t, ln.Addr().String(), p.Addr("listen"))
	err = p.Stop()
	require.Error(t, err, "sleep dies of the SIGINT: not a clean exit")
	require.NotErrorIs(t, err, proc.ErrKilled)
	require.Equal(t, err, p.Stop())

	free, err := proc.FreeAddr()
	require.NoError(t, err)
	_, err = proc.Start(ctx, proc.Spec{Name: "sleep", Path: "sleep", Args: []string{"60"}, Listen: free, Timeout: 200 * time.Millisecond})
	require.ErrorIs(t, err, proc.ErrNotReady, "nothing listens there")
}

func TestAddrFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "addrs")
	_, err := proc.ReadAddrFile(path)
	require.True(t, errors.Is(err, os.ErrNotExist))
	require.NoError(t, proc.WriteAddrFile(path, map[string]string{"mqtt": "127.0.0.1:1883", "metrics": "127.0.0.1:9100", "tls": ""}))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "metrics 127.0.0.1:9100\nmqtt 127.0.0.1:1883\n", string(b), "sorted, empty addresses left out")
	got, err := proc.ReadAddrFile(path)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"mqtt": "127.0.0.1:1883", "metrics": "127.0.0.1:9100"}, got)

	require.Error(t, proc.WriteAddrFile(path, map[string]string{"bad name": "x"}))
	require.NoError(t, os.WriteFile(path, []byte("mqtt\n"), 0o644))
	_, err = proc.ReadAddrFile(path)
	require.Error(t, err, "a line without an address")
}

func TestUsage(t *testing.T) {
	u, err := proc.ReadUsage(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, u.RSS)
	require.Equal(t, u.CPU > 0, proc.CPU(os.Getpid()) > 0)
	_, err = proc.ReadUsage(1 << 30)
	require.Error(t, err, "no such process")
	lim, err := proc.RaiseFileLimit()
	require.NoError(t, err)
	require.Positive(t, lim)
	require.NotEmpty(t, proc.CPUModel())
}
