package sfu

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/leakcheck"
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
// writer, and its writer's socket, nothing: they get every packet.
func TestStalledPeerDoesNotStarveItsShard(t *testing.T) {
	r := runForwarding(t, forwardRun{viewers: 4, frames: 60, perFrame: 8, writers: 1, stalled: 1})
	if r.lost != 0 {
		t.Errorf("the viewers sharing a stalled one's writer lost %d packets", r.lost)
	}
	if r.ports != 1 {
		t.Errorf("the viewers are sent from %d ports, want 1: their writer's socket", r.ports)
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

// A shard's writer runs while the shard has viewers: once the last leaves,
// no writer is left, and the next viewer starts one again.
func TestWritersEndWithTheirViewers(t *testing.T) {
	leakcheck.Check(t)
	up, subs, stop := benchTrackConfig(t, 5, Config{Writers: 2})
	defer stop()
	if l := up.ep.p.engine.writers.loads(); len(l) != 2 || l[0]+l[1] != 5 || l[0] < 2 || l[1] < 2 {
		t.Fatalf("viewers per shard %v, want 5 over 2", l)
	}
	w := &recordingWriter{}
	setWriter(subs[4].downs[0], w)
	for seq := range uint16(10) {
		p, err := newPacket(rawPacket(seq))
		if err != nil {
			t.Fatal(err)
		}
		up.dispatch(p)
	}
	waitFor(t, func() bool { return w.n.Load() == 10 })
	for _, s := range subs {
		s.detach()
	}
	ended := make(chan struct{})
	go func() {
		up.ep.p.engine.writers.wg.Wait()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("writers still run after their viewers left")
	}

	more, stopMore := benchViewers(up.ep.p, up, 1, nil)
	defer stopMore()
	w = &recordingWriter{}
	setWriter(more[0].downs[0], w)
	p, err := newPacket(rawPacket(10))
	if err != nil {
		t.Fatal(err)
	}
	up.dispatch(p) // after the replay of the last keyframe (9)
	waitFor(t, func() bool { h := w.last.Load(); return h != nil && h.SequenceNumber == 10 })
}
