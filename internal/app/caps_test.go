package app_test

import (
	"net"
	"strings"
	"testing"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/testpeer"
)

// wantRefused fails the test unless c is answered 503 and closed at once.
func wantRefused(t *testing.T, c net.Conn, why string) {
	t.Helper()
	got := wantClosedByServer(t, c, "a connection over the cap")
	if !strings.HasPrefix(got, "HTTP/1.1 503") || !strings.Contains(got, why) {
		t.Errorf("a connection over the cap got %q, want 503 saying %q", got, why)
	}
}

// holdConns opens n connections that send nothing.
func holdConns(t *testing.T, srv *testpeer.Server, n int) []net.Conn {
	var cs []net.Conn
	for range n {
		cs = append(cs, dialRaw(t, srv))
	}
	return cs
}

// One address holds at most -max-connections-per-address connections
// (loopback too, once it is not exempt); a place freed is taken again,
// and each refusal is counted.
func TestConnectionsPerAddress(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) {
		c.MaxConnectionsPerAddress = 3
		c.SessionsLimitExempt = nil // loopback, where the test runs, is exempt by default
	})
	held := holdConns(t, srv, 3)
	wantRefused(t, dialRaw(t, srv), "from your address")
	ws, err := testpeer.DialWS(within(t), srv.WSURL)
	if err == nil {
		ws.Close()
		t.Error("a WebSocket over the per-address cap was opened")
	}
	held[0].Close()
	if !testpeer.Eventually(timeout, func() bool {
		_, err := srv.REST.Rooms()
		srv.REST.CloseIdle()
		return err == nil
	}) {
		t.Fatal("a place freed was not given to the next connection")
	}
	for _, c := range held[1:] {
		c.Close()
	}
	if !testpeer.Eventually(timeout, func() bool { return srv.App.Connections() == 0 }) {
		t.Fatalf("%d connections held after all were closed", srv.App.Connections())
	}
	wantRejections(t, srv, map[string]float64{"connections_per_address": 2})
}

// The process holds at most -max-connections connections, WebSockets
// among them, from any address, exempt ones included.
func TestMaxConnections(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) { c.MaxConnections = 2 })
	ws := testpeer.MustWS(t, srv)
	held := dialRaw(t, srv)
	wantRefused(t, dialRaw(t, srv), "too many connections")
	ws.Close()
	held.Close()
	if !testpeer.Eventually(timeout, func() bool { return srv.App.Connections() == 0 }) {
		t.Fatalf("%d connections held after all were closed", srv.App.Connections())
	}
	wantRejections(t, srv, map[string]float64{"max_connections": 1})
}
