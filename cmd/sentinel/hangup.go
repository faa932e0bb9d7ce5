package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// reloadOnHangup calls reload on every SIGHUP until ctx ends, logging what
// it did with file; stopped closes when it has. The broker and the
// warehouse server re-read their credentials files this way.
func reloadOnHangup(ctx context.Context, file string, reload func() (users int, err error), log *slog.Logger) (stopped <-chan struct{}) {
	done := make(chan struct{})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer close(done)
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if n, err := reload(); err != nil {
					log.Error("credentials not reloaded; the old ones stay", "file", file, "err", err)
				} else {
					log.Info("credentials reloaded", "file", file, "users", n)
				}
			}
		}
	}()
	return done
}
