package app_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/testpeer"
)

// hostOf is the server's host:port.
func hostOf(srv *testpeer.Server) string {
	return strings.TrimPrefix(strings.TrimSuffix(srv.URL, srv.Config.BasePath), "http://")
}

// dialRaw opens a TCP connection to the server, closed with the test.
func dialRaw(t testing.TB, srv *testpeer.Server) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", hostOf(srv), timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wantClosedByServer reads c until the server closes it, failing the test
// if it is still open after timeout, and returns what was read.
func wantClosedByServer(t testing.TB, c net.Conn, what string) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: still open after %s (read %q)", what, timeout, b)
	}
	return string(b)
}

// A request that announces a body and sends only part of it is answered
// and closed once -http-read-timeout passes, however much it promised.
func TestSlowBodyClosed(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) { c.HTTPReadTimeout = time.Second })
	c := dialRaw(t, srv)
	if _, err := io.WriteString(c, "POST /signal/room/live HTTP/1.1\r\nHost: onair\r\nemail: ann@example.com\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"roo"); err != nil {
		t.Fatal(err)
	}
	got := wantClosedByServer(t, c, "a slow body")
	if got != "" && !strings.HasPrefix(got, "HTTP/1.1 400") {
		t.Errorf("a slow body was answered %.60q, want 400 or nothing", got)
	}
	if len(rooms(t, srv)) != 0 {
		t.Error("a room was made from a body that never arrived")
	}
}

// A keep-alive connection is closed once it has been idle for
// -http-idle-timeout after its response.
func TestIdleKeepAliveClosed(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) { c.HTTPIdleTimeout = time.Second })
	c := dialRaw(t, srv)
	if _, err := io.WriteString(c, "GET /signal/healthcheck/_check HTTP/1.1\r\nHost: onair\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("health check: %s (close %v), want 200 kept alive", resp.Status, resp.Close)
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the server sent bytes on an idle connection")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("an idle keep-alive connection is still open after %s", timeout)
	}
}

// A WebSocket is not cut by the write or read timeout: it keeps working
// long after both have passed.
func TestWebSocketOutlivesHTTPDeadlines(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) {
		c.HTTPReadTimeout, c.HTTPWriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	})
	ws := testpeer.MustWS(t, srv)
	time.Sleep(1500 * time.Millisecond) // five times both deadlines
	if err := ws.SendText(`{"id":"nonsense"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.NextWithin(timeout, "error"); err != nil {
		t.Fatalf("WebSocket after the HTTP deadlines: %v", err)
	}
}
