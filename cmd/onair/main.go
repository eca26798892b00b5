// Command onair is a live-streaming server: the signal server and the media
// server of a broadcast in one program. Run with no arguments for a complete
// server on :8080 with in-memory state and a demo page at /.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/onair-live/onair/internal/app"
	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/loadtest"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "loadtest" {
		os.Exit(loadtest.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	if len(os.Args) > 1 && os.Args[1] == "token" {
		os.Exit(mintToken(os.Args[2:], os.Getenv, time.Now(), os.Stdout, os.Stderr))
	}
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
	debug := startDebug(cfg.DebugAddr, log)
	defer debug.stop()
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
	code := 0
	select {
	case err := <-served:
		if err != nil {
			// Shut down all the same: rooms end, recordings close, the
			// store is left clean.
			log.Error("server failed", "err", err)
			code = 1
		}
	case <-ctx.Done():
		log.Info("signal received")
		// A cluster node drains first: it takes no new sessions and waits
		// (at most -drain-timeout) for its viewers and the nodes pulling
		// from it to leave. A second signal cuts the wait short.
		a.Drain()
		stop()
		again, stopAgain := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stopAgain()
		select {
		case <-a.Drained():
		case <-again.Done():
			log.Warn("second signal: shutting down without waiting for the drain")
		}
	case <-a.Drained():
		log.Info("drained: shutting down")
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := a.Shutdown(sctx); err != nil {
		log.Error("unclean shutdown", "err", err)
		return 1
	}
	return code
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

// debugServer is the Go profiler for operators (pprof), on its own address
// so that it is never exposed with the public API. A nil one serves nothing.
type debugServer struct {
	srv  *http.Server
	done chan struct{}
}

// startDebug serves the profiler on addr, or returns nil if addr is empty.
func startDebug(addr string, log *slog.Logger) *debugServer {
	if addr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Warn("profiler listening: do not expose it", "addr", addr)
	d := &debugServer{srv: &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		done: make(chan struct{})}
	go func() {
		defer close(d.done)
		if err := d.srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("profiler stopped", "addr", addr, "err", err)
		}
	}()
	return d
}

// stop closes the profiler (a profile being taken is cut short) and waits
// for it.
func (d *debugServer) stop() {
	if d == nil {
		return
	}
	_ = d.srv.Close()
	<-d.done
}
