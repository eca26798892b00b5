// Command onair is a live-streaming server: the signal server and the media
// server of a broadcast in one program. Run with no arguments for a complete
// server on :8080 with in-memory state and a demo page at /.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/onair-live/onair/internal/app"
	"github.com/onair-live/onair/internal/config"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := config.Load(args, os.Getenv, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "onair:", err)
		return 2
	}
	log := newLogger(cfg)
	a, err := app.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Addr, "err", err)
		_ = a.Shutdown(context.Background())
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 2)
	if cfg.HTTPRedirectAddr != "" {
		rl, err := net.Listen("tcp", cfg.HTTPRedirectAddr)
		if err != nil {
			log.Error("cannot listen for the HTTP to HTTPS redirect", "addr", cfg.HTTPRedirectAddr, "err", err)
			_ = l.Close()
			_ = a.Shutdown(context.Background())
			return 1
		}
		go func() { served <- a.ServeRedirect(rl) }()
	}
	go func() { served <- a.Serve(l) }()
	select {
	case err := <-served:
		if err != nil {
			log.Error("server failed", "err", err)
			return 1
		}
	case <-ctx.Done():
		log.Info("signal received")
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		log.Error("unclean shutdown", "err", err)
		return 1
	}
	return 0
}

func newLogger(cfg config.Config) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
