package browsertest_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/app"
	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// server is a real onair, as cmd/onair builds it, on 127.0.0.1.
type server struct {
	app  *app.App
	url  string // https://127.0.0.1:port
	logs *testLog
}

// startServer runs onair with extra flags over the defaults; ICE is offered on
// loopback only, which is all a loopback-only namespace has.
func startServer(t *testing.T, flags ...string) *server {
	t.Helper()
	args := append([]string{
		"-addr", "127.0.0.1:0",
		"-ice-loopback", "-ice-allowed-ips", "127.0.0.1/32",
		"-reap-interval", "0",
	}, flags...)
	cfg, err := config.Load(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testLog{t: t}
	a, err := app.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(l) }()
	scheme := "http"
	if cfg.TLS() {
		scheme = "https"
	}
	s := &server{app: a, url: scheme + "://" + l.Addr().String(), logs: logs}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		logs.stop()
	})
	return s
}

// waitEmpty waits until the server holds nothing: no room, viewer, session,
// pipeline, endpoint or WebSocket.
func (s *server) waitEmpty(t *testing.T, within time.Duration) {
	t.Helper()
	var c live.Counts
	var ws int
	ok := waitFor(within, func() bool {
		c, ws = s.app.Service().Counts(), s.app.WebSockets()
		return c == (live.Counts{}) && ws == 0
	})
	if !ok {
		t.Fatalf("server not back to zero after %v: %+v, %d WebSockets", within, c, ws)
	}
	t.Logf("server back to zero: %+v, %d WebSockets", c, ws)
}

// waitFor polls cond until it holds or within has passed, and reports
// whether it held.
var waitFor = testpeer.Eventually

// testLog sends the server's log to the test's log until the test ends.
type testLog struct {
	mu      sync.Mutex
	t       *testing.T
	stopped bool
	all     strings.Builder
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	if !l.stopped {
		l.t.Log("onair: " + strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *testLog) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// rest calls the server's REST API as a client other than the browser.
func (s *server) rest(t *testing.T, method, path, email, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if email != "" {
		req.Header.Set("email", email)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the server's self-signed certificate
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
