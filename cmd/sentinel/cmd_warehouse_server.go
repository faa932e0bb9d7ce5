package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sentinel-iot/sentinel/warehouse"
	"github.com/sentinel-iot/sentinel/warehouse/httpserver"
)

// stdin is where `warehouse adduser` reads the password; tests replace it.
var stdin io.Reader = os.Stdin

// serverFlags are the access and limit flags of the warehouse HTTP server,
// shared by `sentinel warehouse` and `sentinel run --warehouse-listen`.
type serverFlags struct {
	prefix        string // "" for `warehouse`, "warehouse-" for `run`
	listen        string
	users         string
	anonymous     bool
	maxRequestMiB int64
	maxQueryKiB   int
	queryTimeout  time.Duration
	maxConcurrent int
	ro, rw        httpserver.RoleLimits
}

func (f *serverFlags) add(fs *flag.FlagSet, listenDefault, listenUsage string) {
	fs.StringVar(&f.listen, f.prefix+"listen", listenDefault, listenUsage)
	fs.StringVar(&f.users, f.prefix+"users", "", "warehouse server credentials file (name:bcrypt-hash:role lines; `sentinel warehouse adduser` writes it; SIGHUP re-reads it)")
	fs.BoolVar(&f.anonymous, f.prefix+"allow-anonymous", false, "warehouse server: let requests without credentials in, read-write (development only)")
	fs.Int64Var(&f.maxRequestMiB, f.prefix+"max-request-size", httpserver.DefaultMaxRequestBytes>>20, "warehouse server: largest request body in MiB, after decompression")
	fs.IntVar(&f.maxQueryKiB, f.prefix+"max-query-size", httpserver.DefaultMaxQueryBytes>>10, "warehouse server: longest query text in KiB")
	fs.DurationVar(&f.queryTimeout, f.prefix+"query-timeout", httpserver.DefaultQueryTimeout, "warehouse server: longest a read or INSERT may run")
	fs.IntVar(&f.maxConcurrent, f.prefix+"max-concurrent-queries", httpserver.DefaultMaxConcurrentQueries, "warehouse server: queries admitted at once; more are refused")
	fs.Int64Var(&f.ro.MaxQueryMemory, f.prefix+"readonly-max-query-memory", httpserver.DefaultReadOnlyLimits.MaxQueryMemory, "warehouse server: bytes a read-only user's query may allocate (max_memory_usage)")
	fs.Int64Var(&f.ro.MaxResultRows, f.prefix+"readonly-max-result-rows", httpserver.DefaultReadOnlyLimits.MaxResultRows, "warehouse server: rows in a read-only user's result")
	fs.Int64Var(&f.ro.MaxResultBytes, f.prefix+"readonly-max-result-bytes", httpserver.DefaultReadOnlyLimits.MaxResultBytes, "warehouse server: bytes in a read-only user's result")
	fs.DurationVar(&f.ro.MaxExecutionTime, f.prefix+"readonly-max-execution-time", 0, "warehouse server: longest a read-only user's query runs (0: httpserver.DefaultReadOnlyLimits, at most --query-timeout)")
	fs.IntVar(&f.ro.MaxConcurrentQueries, f.prefix+"readonly-max-concurrent-queries", httpserver.DefaultReadOnlyLimits.MaxConcurrentQueries, "warehouse server: queries one read-only user may have running or waiting")
	fs.Int64Var(&f.rw.MaxQueryMemory, f.prefix+"readwrite-max-query-memory", httpserver.DefaultReadWriteLimits.MaxQueryMemory, "warehouse server: bytes a read-write user's query may allocate (max_memory_usage)")
	fs.Int64Var(&f.rw.MaxResultRows, f.prefix+"readwrite-max-result-rows", httpserver.DefaultReadWriteLimits.MaxResultRows, "warehouse server: rows in a read-write user's result")
	fs.Int64Var(&f.rw.MaxResultBytes, f.prefix+"readwrite-max-result-bytes", httpserver.DefaultReadWriteLimits.MaxResultBytes, "warehouse server: bytes in a read-write user's result")
	fs.DurationVar(&f.rw.MaxExecutionTime, f.prefix+"readwrite-max-execution-time", 0, "warehouse server: longest a read-write user's query runs (0: --query-timeout)")
	fs.IntVar(&f.rw.MaxConcurrentQueries, f.prefix+"readwrite-max-concurrent-queries", httpserver.DefaultReadWriteLimits.MaxConcurrentQueries, "warehouse server: queries one read-write user may have running or waiting")
}

func (f *serverFlags) config(log *slog.Logger) httpserver.Config {
	return httpserver.Config{
		UsersFile: f.users, AllowAnonymous: f.anonymous, MaxRequestBytes: f.maxRequestMiB << 20,
		MaxQueryBytes: f.maxQueryKiB << 10, QueryTimeout: f.queryTimeout, MaxConcurrentQueries: f.maxConcurrent,
		ReadOnly: f.ro, ReadWrite: f.rw, Logger: log,
	}
}

// start serves db on f.listen until ctx ends or stop is called; stop waits
// for the server to finish. It returns the address it listens on; an empty
// listen address serves nothing.
func (f *serverFlags) start(ctx context.Context, db *warehouse.DB, out io.Writer, log *slog.Logger) (listening string, stop func() error, err error) {
	if f.listen == "" {
		return "", func() error { return nil }, nil
	}
	srv, err := httpserver.New(f.config(log), db)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return "", nil, fmt.Errorf("warehouse server: listen on %s: %w", f.listen, err)
	}
	fmt.Fprintf(out, "warehouse: ClickHouse HTTP interface listening on http://%s (DSN http://USER:PASSWORD@%s/default; try curl 'http://%s/?query=SELECT+1')\n",
		ln.Addr(), ln.Addr(), ln.Addr())
	ctx, cancel := context.WithCancel(ctx)
	reloaded := func() {}
	if f.users != "" {
		stopped := reloadOnHangup(ctx, f.users, srv.ReloadUsers, log)
		reloaded = func() { <-stopped }
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	return ln.Addr().String(), func() error {
		cancel()
		reloaded()
		return <-done
	}, nil
}

func cmdWarehouse(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && args[0] == "adduser" {
		return cmdWarehouseAddUser(args[1:], out)
	}
	fs := newFlags("warehouse", "[flags]  |  sentinel warehouse adduser [flags] NAME")
	var c common
	c.addLog(fs, "info")
	data := fs.String("data", "./data/warehouse", "data directory of the embedded engine")
	var sf serverFlags
	sf.add(fs, "127.0.0.1:8123", "address of the ClickHouse HTTP interface")
	addrFile := addAddrFile(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("warehouse takes no arguments (did you mean `warehouse adduser NAME`?)")
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	if sf.users == "" && !sf.anonymous {
		return fmt.Errorf("warehouse: %w (--users FILE, or --allow-anonymous)", httpserver.ErrNoUsers)
	}
	db, err := openWarehouse(ctx, "chdb://"+*data, &c)
	if err != nil {
		return err
	}
	defer db.Close()
	listening, stop, err := sf.start(ctx, db, out, log)
	if err != nil {
		return err
	}
	if err := writeAddrFile(*addrFile, map[string]string{"http": listening}); err != nil {
		return errors.Join(err, stop())
	}
	<-ctx.Done()
	return stop()
}

func cmdWarehouseAddUser(args []string, out io.Writer) error {
	fs := newFlags("warehouse adduser", "[flags] NAME   (the password is read from the first line of standard input)")
	users := fs.String("users", filepath.Join("data", "warehouse-users"), "credentials file to create or update")
	readonly := fs.Bool("readonly", false, "the user may only read (analysts, dashboards)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("warehouse adduser takes one user name")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("warehouse adduser: read password from standard input: %w", err)
	}
	role := httpserver.RoleReadWrite
	if *readonly {
		role = httpserver.RoleReadOnly
	}
	if err := httpserver.AddUser(*users, fs.Arg(0), strings.TrimRight(line, "\r\n"), role); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: user %s (%s) saved\n", *users, fs.Arg(0), role)
	return nil
}
