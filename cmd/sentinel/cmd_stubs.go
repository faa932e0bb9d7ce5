package main

import (
	"context"
	"errors"
	"io"
)

func cmdRun(ctx context.Context, args []string, out io.Writer) error      { return errors.New("todo") }
func cmdSimulate(ctx context.Context, args []string, out io.Writer) error { return errors.New("todo") }
func cmdRecover(ctx context.Context, args []string, out io.Writer) error  { return errors.New("todo") }
