package testpeer

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/app"
	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
)

// Server is an onair started for one test.
type Server struct {
	Root   string // the server's root URL, e.g. http://127.0.0.1:41234 (https with TLS)
	URL    string // base URL of the API, e.g. http://127.0.0.1:41234/signal
	WSURL  string // the signalling WebSocket, e.g. ws://127.0.0.1:41234/signal/ws
	App    *app.App
	Config config.Config
	REST   *Client

	logs   *logBuffer
	served chan error
}

// StartServer builds onair as cmd/onair does, with the defaults of
// config.Load changed for loopback tests (ICE on 127.0.0.1 only, base path
// /signal, the HTTP listener on 127.0.0.1:0) and then by configure, if not
// nil. When the test ends it shuts the server down and checks that no room,
// viewer, session, pipeline, endpoint, WebSocket or goroutine is left. The
// server's log is shown if the test failed.
func StartServer(t testing.TB, configure func(*config.Config)) *Server {
	t.Helper()
	return StartServerArgs(t, nil, configure)
}

// StartServerArgs is StartServer with the configuration first read from
// command-line flags, as an operator gives them (e.g. "-tls-self-signed");
// the loopback defaults are then applied, and configure last. With TLS on,
// Root, URL and WSURL are https and wss, and REST accepts the server's
// certificate whatever it is.
func StartServerArgs(t testing.TB, args []string, configure func(*config.Config)) *Server {
	t.Helper()
	logs := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log (last %d bytes):\n%s", maxLogShown, logs.tail(maxLogShown))
		}
	})
	CheckGoroutines(t)

	cfg, err := config.Load(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("config %q: %v", args, err)
	}
	cfg.Addr = "127.0.0.1:0"
	cfg.BasePath = "/signal"
	cfg.ICELoopback = true
	cfg.ICEAllowedIPs = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	if configure != nil {
		configure(&cfg)
	}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(cfg, log)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = a.Shutdown(context.Background())
		t.Fatalf("listen: %v", err)
	}
	host := l.Addr().String()
	scheme, wsScheme := "http", "ws"
	if cfg.TLS() {
		scheme, wsScheme = "https", "wss"
	}
	s := &Server{
		Root:   scheme + "://" + host,
		URL:    scheme + "://" + host + cfg.BasePath,
		WSURL:  wsScheme + "://" + host + cfg.BasePath + "/ws",
		App:    a,
		Config: cfg,
		logs:   logs,
		served: make(chan error, 1),
	}
	s.REST = NewClient(s.URL)
	if cfg.TLS() {
		s.REST.http.Transport = &http.Transport{MaxIdleConnsPerHost: 8,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // the test's own self-signed certificate
	}
	go func() { s.served <- a.Serve(l) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop shuts the server down and checks that nothing is left.
func (s *Server) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.App.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-s.served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-ctx.Done():
		t.Errorf("Serve did not return after Shutdown")
	}
	s.REST.CloseIdle()
	if c := s.App.Service().Counts(); c != (live.Counts{}) {
		t.Errorf("after shutdown: %+v, want all zero", c)
	}
	if n := s.App.WebSockets(); n != 0 {
		t.Errorf("after shutdown: %d WebSockets open, want 0", n)
	}
}

// WSURLWith is the WebSocket's URL with token in its query (as browsers
// send it: they cannot set headers on a WebSocket), or WSURL if token is
// empty.
func (s *Server) WSURLWith(token string) string {
	if token == "" {
		return s.WSURL
	}
	return s.WSURL + "?token=" + url.QueryEscape(token)
}

// Counts is the server's count of rooms, viewers, sessions, pipelines and
// endpoints.
func (s *Server) Counts() live.Counts { return s.App.Service().Counts() }

// WaitCounts waits until Counts is want, failing the test if it is not
// within timeout.
func (s *Server) WaitCounts(t testing.TB, timeout time.Duration, want live.Counts) {
	t.Helper()
	var got live.Counts
	if !Eventually(timeout, func() bool { got = s.Counts(); return got == want }) {
		t.Fatalf("counts are %+v after %s, want %+v", got, timeout, want)
	}
}

// Log returns what the server has logged so far.
func (s *Server) Log() string { return s.logs.String() }

// Eventually polls cond until it is true or timeout passes, and reports
// whether it became true.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const maxLogShown = 256 << 10

// logBuffer collects the server's log; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) tail(n int) string {
	s := b.String()
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return fmt.Sprintf("[…]\n%s", s)
}
