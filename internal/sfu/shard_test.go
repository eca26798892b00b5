package sfu

import (
	"net"
	"sync"
	"testing"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// Viewers spread over several writers each get every packet of every frame,
// intact and in order.
func TestShardedWritersForwardEveryFrame(t *testing.T) {
	r := runForwarding(t, forwardRun{viewers: 7, frames: 45, perFrame: 6, writers: 3})
	if r.lost != 0 {
		t.Errorf("%d packets lost", r.lost)
	}
	if len(r.shards) != 3 {
		t.Fatalf("viewers per shard %v, want 3 shards", r.shards)
	}
	for i, n := range r.shards {
		if n < 2 || n > 3 {
			t.Errorf("shard %d has %d viewers: %v, want them spread", i, n, r.shards)
		}
	}
	t.Logf("%s; viewers per shard %v", r, r.shards)
}

// A viewer that stops reading its socket costs the viewers who share its
// writer nothing: they get every packet.
func TestStalledPeerDoesNotStarveItsShard(t *testing.T) {
	r := runForwarding(t, forwardRun{viewers: 4, frames: 60, perFrame: 8, writers: 1, stalled: 1})
	if r.lost != 0 {
		t.Errorf("the viewers sharing a stalled one's writer lost %d packets", r.lost)
	}
	t.Logf("%s", r)
}

// stallNet is a client's network whose UDP sockets can stop being read, as
// when a viewer's machine freezes: the kernel then drops what arrives.
type stallNet struct {
	transport.Net
	mu      sync.Mutex
	stopped chan struct{} // closed when reading stops
}

func newStallNet(t testing.TB) *stallNet {
	n, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	return &stallNet{Net: n, stopped: make(chan struct{})}
}

func (n *stallNet) stall() {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.stopped:
	default:
		close(n.stopped)
	}
}

func (n *stallNet) api(t testing.TB) *webrtc.API {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := loopbackSettings()
	se.SetNet(n)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))
}

func (n *stallNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	if uc, ok := c.(*net.UDPConn); ok {
		return &stallConn{UDPConn: uc, n: n, closed: make(chan struct{})}, nil
	}
	return c, nil
}

func (n *stallNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	if uc, ok := c.(*net.UDPConn); ok {
		return &stallConn{UDPConn: uc, n: n, closed: make(chan struct{})}, nil
	}
	return c, nil
}

// stallConn stops reading once its net stalls, until it is closed.
type stallConn struct {
	*net.UDPConn
	n      *stallNet
	once   sync.Once
	closed chan struct{}
}

func (c *stallConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case <-c.n.stopped:
		<-c.closed
		return 0, nil, net.ErrClosed
	default:
	}
	return c.UDPConn.ReadFrom(b)
}

func (c *stallConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.UDPConn.Close()
}
