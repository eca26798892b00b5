package sfu

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

const (
	// tcpMuxReadBuffer is how many packets the TCP mux holds per
	// connection before its reader blocks.
	tcpMuxReadBuffer = 64
	// defaultTCPMaxConns bounds the connections the ICE-TCP port holds at
	// once (Config.TCPMaxConns), so that connections opened and left idle
	// cannot use up the process's file descriptors.
	defaultTCPMaxConns = 4096
	// tcpFirstSTUN is how long a new connection may take to send its
	// first STUN request before it is closed (pion's default is 30 s).
	tcpFirstSTUN = 10 * time.Second
)

// listenICETCP serves passive ICE-TCP candidates on cfg.TCPMuxPort: every
// peer's TCP connections arrive on that one port and are told apart by
// their STUN username, as on a shared UDP port. The engine never dials out
// over TCP (no active candidates): a peer could otherwise make it connect
// anywhere.
func (e *Engine) listenICETCP(se *webrtc.SettingEngine) error {
	if e.cfg.TCPMuxPort <= 0 {
		return nil
	}
	addr := net.JoinHostPort(tcpListenHost(e.cfg.AllowedIPs), strconv.Itoa(e.cfg.TCPMuxPort))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sfu: listen on TCP port %d: %w", e.cfg.TCPMuxPort, err)
	}
	max := e.cfg.TCPMaxConns
	if max <= 0 {
		max = defaultTCPMaxConns
	}
	e.tcpCap = &capListener{Listener: l, max: max, conns: map[*capConn]struct{}{}}
	e.tcpMux = ice.NewTCPMuxDefault(ice.TCPMuxParams{
		Listener:             e.tcpCap,
		Logger:               logging.NewDefaultLoggerFactory().NewLogger("ice-tcp"),
		ReadBufferSize:       tcpMuxReadBuffer,
		WriteBufferSize:      4 << 20, // pion's advice
		FirstStunBindTimeout: tcpFirstSTUN,
	})
	se.SetICETCPMux(e.tcpMux)
	se.DisableActiveTCP(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6,
		webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6})
	e.log.Info("ICE over TCP", "addr", l.Addr().String())
	return nil
}

// tcpListenHost is the address the ICE-TCP port listens on: the one
// address AllowedIPs names, if it names exactly one, else every address
// (candidates are offered only on the allowed ones).
func tcpListenHost(allowed []netip.Prefix) string {
	if len(allowed) == 1 && allowed[0].IsSingleIP() {
		return allowed[0].Addr().String()
	}
	return ""
}

// closeICETCP stops listening on the ICE-TCP port.
func (e *Engine) closeICETCP() error {
	if e.tcpMux == nil {
		return nil
	}
	e.tcpCap.closeAll()
	return e.tcpMux.Close()
}

// capListener accepts at most max connections at once; one over is
// closed as soon as accepted, rather than left to wait in the kernel's
// queue. closeAll ends them all: pion's mux, when it closes, waits for
// connections that have not sent their first STUN request yet.
type capListener struct {
	net.Listener
	max int

	mu     sync.Mutex
	conns  map[*capConn]struct{}
	closed bool
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cc := &capConn{Conn: c, l: l}
		l.mu.Lock()
		ok := !l.closed && len(l.conns) < l.max
		if ok {
			l.conns[cc] = struct{}{}
		}
		l.mu.Unlock()
		if ok {
			return cc, nil
		}
		_ = c.Close()
	}
}

// closeAll closes every connection, and those accepted from now on.
func (l *capListener) closeAll() {
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = map[*capConn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

type capConn struct {
	net.Conn
	l *capListener
}

func (c *capConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
