// Package proc runs the processes a benchmark measures: Sentinel's own
// subcommands and other brokers as child processes, each ready once it
// says where it listens (Sentinel's write an address file, see
// WriteAddrFile) or, for a program that cannot, once its port accepts
// connections; and it reads their CPU time and resident memory from /proc.
// It is the one process harness of `sentinel bench`.
package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ErrNotReady means a child process exited, or the start's deadline or
// context ended, before it was listening.
var ErrNotReady = errors.New("proc: child not ready")

// stopTimeout bounds how long Stop waits for a child to exit after SIGINT
// before it kills it.
const stopTimeout = 30 * time.Second

// Spec says how to start a child process and how to know it is ready.
type Spec struct {
	// Name says which process this is, in errors and reports. Required.
	Name string
	// Path and Args are the program and its arguments. Path is required.
	Path string
	Args []string
	// Stdout and Stderr receive the child's output. Default os.Stderr.
	Stdout, Stderr io.Writer
	// AddrFile, when set, is the file the child writes its listen
	// addresses to once ready (see WriteAddrFile): Start waits for it and
	// Process.Addr reads it. The caller passes the path in Args too.
	AddrFile string
	// Listen, without AddrFile, is an address the child listens on: Start
	// waits until it accepts a TCP connection, and Process.Addr returns it
	// by the name "listen".
	Listen string
	// Timeout bounds the wait for readiness. Default 60 s.
	Timeout time.Duration
}

// Process is a child process. Its wait goroutine is owned by the Process
// and ends when the child exits; Stop ends both.
type Process struct {
	// Name is Spec.Name.
	Name   string
	addrs  map[string]string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the child has exited; err says how
	err    error
	once   sync.Once
	// stopErr is what Stop returns.
	stopErr error
}

// Start starts the child and returns once it is ready (see Spec). The
// child ends on Stop, or on SIGINT when ctx ends.
func Start(ctx context.Context, s Spec) (*Process, error) {
	if s.Timeout <= 0 {
		s.Timeout = time.Minute
	}
	cmd := exec.CommandContext(ctx, s.Path, s.Args...)
	cmd.Stdout, cmd.Stderr = orStderr(s.Stdout), orStderr(s.Stderr)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = stopTimeout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("proc: start %s: %w", s.Name, err)
	}
	p := &Process{Name: s.Name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	ready := func() (bool, error) {
		if s.AddrFile != "" {
			addrs, err := ReadAddrFile(s.AddrFile)
			if errors.Is(err, os.ErrNotExist) {
				return false, nil
			}
			p.addrs = addrs
			return err == nil, err
		}
		conn, err := net.DialTimeout("tcp", s.Listen, time.Second)
		if err != nil {
			return false, nil
		}
		conn.Close()
		p.addrs = map[string]string{"listen": s.Listen}
		return true, nil
	}
	deadline := time.NewTimer(s.Timeout)
	defer deadline.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		ok, err := ready()
		if err != nil {
			p.Stop()
			return nil, fmt.Errorf("proc: %s: %w", s.Name, err)
		}
		if ok {
			return p, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("proc: %s exited before it was ready (%v): %w", s.Name, p.err, ErrNotReady)
		case <-ctx.Done():
			p.Stop()
			return nil, fmt.Errorf("proc: %s: %w: %w", s.Name, ctx.Err(), ErrNotReady)
		case <-deadline.C:
			p.Stop()
			return nil, fmt.Errorf("proc: %s not ready after %s: %w", s.Name, s.Timeout, ErrNotReady)
		case <-poll.C:
		}
	}
}

// StartSentinel starts `exe args...`, a Sentinel subcommand, with
// --addr-file in a fresh temporary file, and returns once the child has
// written it (once listening; an ingestor, once subscribed too). The
// child's standard output, what it tells a person, is discarded; its
// standard error, its log, is this process's.
func StartSentinel(ctx context.Context, name, exe string, args ...string) (*Process, error) {
	f, err := os.CreateTemp("", "sentinel-addrs-")
	if err != nil {
		return nil, fmt.Errorf("proc: %s: address file: %w", name, err)
	}
	path := f.Name()
	f.Close()
	os.Remove(path) // the child creates it when ready
	p, err := Start(ctx, Spec{Name: name, Path: exe, Args: append(args, "--addr-file", path), AddrFile: path, Stdout: io.Discard})
	os.Remove(path)
	return p, err
}

func orStderr(w io.Writer) io.Writer {
	if w == nil {
		return os.Stderr
	}
	return w
}

// Addr returns the address the child listens on under name (an address
// file's name, or "listen"), empty when it named none.
func (p *Process) Addr(name string) string { return p.addrs[name] }

// Pid is the child's process ID, for ReadUsage.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Usage reads the child's CPU time and resident memory.
func (p *Process) Usage() (Usage, error) { return ReadUsage(p.Pid()) }

// Stop interrupts the child and waits for it, killing it after 30 s. It
// returns how the child exited: nil for a clean exit, the exit error
// otherwise, wrapped in ErrKilled when it had to be killed, so a test can
// hold a service to stopping cleanly on SIGINT. It is safe to call more
// than once; every call returns the same.
func (p *Process) Stop() error {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.exited:
			if p.err != nil {
				p.stopErr = fmt.Errorf("proc: %s: %w", p.Name, p.err)
			}
		case <-time.After(stopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.stopErr = fmt.Errorf("proc: %s still running %s after SIGINT: %w", p.Name, stopTimeout, ErrKilled)
		}
	})
	return p.stopErr
}

// ErrKilled means a child did not exit within 30 s of SIGINT and Stop
// killed it.
var ErrKilled = errors.New("proc: child killed")

// FreeAddr returns a loopback address nothing listens on, for a program
// that cannot pick its own port and say which (Mosquitto).
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("proc: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
