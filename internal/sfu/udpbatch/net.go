package udpbatch

import (
	"net"
	"strings"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// inner is the operating system's network, which Net wraps.
type inner = transport.Net

var _ transport.Net = (*Net)(nil)

// NewNet returns a Net over the operating system's network whose batches
// come from bufs.
func NewNet(bufs *Buffers) (*Net, error) {
	std, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	return &Net{inner: std, bufs: bufs}, nil
}

// ListenUDP opens a batching UDP socket.
func (n *Net) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.inner.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	if uc, ok := c.(*net.UDPConn); ok {
		return n.wrap(uc), nil
	}
	return c, nil
}

// ListenPacket opens a batching socket for UDP networks, and a plain one
// for others.
func (n *Net) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.inner.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	if uc, ok := c.(*net.UDPConn); ok && strings.HasPrefix(network, "udp") {
		return n.wrap(uc), nil
	}
	return c, nil
}
