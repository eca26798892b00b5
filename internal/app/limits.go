package app

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/ratelimit"
)

// Reasons of the connection refusals counted in onair_rejections_total.
const (
	rejectMaxConnections        = "max_connections"         // -max-connections
	rejectConnectionsPerAddress = "connections_per_address" // -max-connections-per-address
)

// newHTTPServer is an HTTP server with the configured deadlines: a request
// must be read within HTTPReadTimeout (a body that trickles in is cut
// off), answered within HTTPWriteTimeout (routes that wait extend their
// own: httpapi.Extend), and a keep-alive connection idle for
// HTTPIdleTimeout is closed. A WebSocket has no deadline once upgraded:
// its own pings decide (signal/liveness.go).
func newHTTPServer(cfg config.Config, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{Handler: h,
		ReadHeaderTimeout: min(10*time.Second, cfg.HTTPReadTimeout),
		ReadTimeout:       cfg.HTTPReadTimeout,
		WriteTimeout:      cfg.HTTPWriteTimeout,
		IdleTimeout:       cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
}

// connCap is a listener that holds at most max connections open, and at
// most perAddr from one client address (but for exempt networks). A
// connection over a cap is answered 503 (on plain HTTP) and closed at
// once. WebSockets count for as long as they are open: they are
// connections whose HTTP server let go.
type connCap struct {
	net.Listener
	max, perAddr int
	exempt       []netip.Prefix
	plain        bool // the connections carry plain HTTP: a refusal can be answered
	rejected     func(reason string)
	log          *slog.Logger

	mu     sync.Mutex
	open   int
	byAddr map[string]int
}

// capConnections wraps l in the configured caps, and counts its
// connections for Connections.
func (a *App) capConnections(l net.Listener) net.Listener {
	c := &connCap{Listener: l, max: a.cfg.MaxConnections, perAddr: a.cfg.MaxConnectionsPerAddress,
		exempt: a.cfg.SessionsLimitExempt, plain: a.tls == nil, rejected: a.obs.rejected,
		log: a.log.With("component", "http"), byAddr: map[string]int{}}
	a.conns.Store(c)
	return c
}

// Connections is the number of connections open to Serve's listener
// (HTTP and WebSocket), for tests and tools.
func (a *App) Connections() int {
	if c := a.conns.Load(); c != nil {
		return c.Open()
	}
	return 0
}

func (l *connCap) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := c.RemoteAddr().String()
		key := ""
		if l.perAddr > 0 && !ratelimit.Exempted(addr, l.exempt) {
			key = ratelimit.Key(addr)
		}
		if reason := l.take(key); reason != "" {
			l.refuse(c, reason)
			continue
		}
		return &cappedConn{Conn: c, l: l, key: key}, nil
	}
}

// take counts one more connection from key ("": not capped per address),
// or says which cap refuses it.
func (l *connCap) take(key string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.open >= l.max {
		return rejectMaxConnections
	}
	if key != "" && l.perAddr > 0 && l.byAddr[key] >= l.perAddr {
		return rejectConnectionsPerAddress
	}
	l.open++
	if key != "" {
		l.byAddr[key]++
	}
	return ""
}

func (l *connCap) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if key == "" {
		return
	}
	if l.byAddr[key]--; l.byAddr[key] <= 0 {
		delete(l.byAddr, key)
	}
}

// Open is the number of connections held.
func (l *connCap) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

func (l *connCap) refuse(c net.Conn, reason string) {
	if l.rejected != nil {
		l.rejected(reason)
	}
	l.log.Debug("connection refused", "remote", c.RemoteAddr().String(), "reason", reason)
	if l.plain {
		msg := "too many connections: try again later\n"
		if reason == rejectConnectionsPerAddress {
			msg = "too many connections from your address: close some and try again\n"
		}
		// A fresh socket's send buffer is empty: this does not block.
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"+
			"Retry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)
	}
	_ = c.Close()
}

// cappedConn gives its place back when closed.
type cappedConn struct {
	net.Conn
	l    *connCap
	key  string
	once sync.Once
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}
