// Package netcap is a bottleneck for tests and the load tool: a network
// whose sockets drop the datagrams they receive over a rate, as a policed
// link does. It wraps pion's transport.Net, so that a pion peer given it
// (SettingEngine.SetNet) sees its downlink capped.
package netcap

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5"
)

// Net is a network whose sockets share one receive cap.
type Net struct {
	transport.Net
	bps atomic.Int64

	mu     sync.Mutex
	tokens float64 // bytes
	last   time.Time
}

// New caps inner's sockets at bps bit/s (0: no cap).
func New(inner transport.Net, bps int64) *Net {
	n := &Net{Net: inner}
	n.bps.Store(bps)
	return n
}

// SetRate changes the cap; 0 lifts it.
func (n *Net) SetRate(bps int64) { n.bps.Store(bps) }

// admit takes size bytes from a bucket that holds 100 ms at the rate.
func (n *Net) admit(size int) bool {
	bps := n.bps.Load()
	if bps <= 0 {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	burst := float64(bps) / 8 / 10
	n.tokens = min(burst, n.tokens+now.Sub(n.last).Seconds()*float64(bps)/8)
	n.last = now
	if n.tokens < float64(size) {
		return false
	}
	n.tokens -= float64(size)
	return true
}

// ListenUDP opens a capped UDP socket.
func (n *Net) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	if uc, ok := c.(*net.UDPConn); ok {
		return &conn{UDPConn: uc, n: n}, nil
	}
	return c, nil
}

// ListenPacket opens a capped socket for UDP networks, a plain one else.
func (n *Net) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	if uc, ok := c.(*net.UDPConn); ok && strings.HasPrefix(network, "udp") {
		return &conn{UDPConn: uc, n: n}, nil
	}
	return c, nil
}

// conn drops what its Net's cap does not admit.
type conn struct {
	*net.UDPConn
	n *Net
}

func (c *conn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.UDPConn.ReadFrom(b)
		if err != nil || c.n.admit(n) {
			return n, a, err
		}
	}
}

func (c *conn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	for {
		n, a, err := c.UDPConn.ReadFromUDP(b)
		if err != nil || c.n.admit(n) {
			return n, a, err
		}
	}
}
