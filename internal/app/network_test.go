package app_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/testpeer"
)

// freePort returns a port on 127.0.0.1 that was free a moment ago, for a
// server that must be told its port before it starts.
func freePort(t testing.TB, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A viewer whose UDP is blocked (it gathers no UDP candidate at all, so
// nothing but TCP can connect it) watches over ICE-TCP, with nothing
// changed on its side: it connects to the server's passive candidate on
// -ice-tcp-port and gets the media whole. A UDP viewer of the same room
// still connects over UDP, which the server prefers.
func TestViewerOverICETCP(t *testing.T) {
	port := freePort(t, "tcp")
	srv := testpeer.StartServer(t, func(c *config.Config) { c.ICETCPPort = port })
	const room = "ann@example.com"
	testpeer.MustPresenter(t, srv, "ann@example.com", room, testpeer.PresenterOptions{})

	vp, err := testpeer.NewViewerPeerOn(testpeer.Network{TCPOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	v, err := srv.JoinViewerWith(within(t), vp, "tom@example.com", room, testpeer.ViewerOptions{})
	if err != nil {
		t.Fatalf("TCP-only viewer: %v", err)
	}
	t.Cleanup(v.Close)
	wantMedia(t, v, 30)
	wantPair(t, v.Peer, webrtc.ICEProtocolTCP, port)

	u := testpeer.MustViewer(t, srv, "uma@example.com", room, testpeer.ViewerOptions{})
	wantMedia(t, u, 30)
	wantPair(t, u.Peer, webrtc.ICEProtocolUDP, 0)
	wantMoreMedia(t, v, 10)
}

// Without -ice-tcp-port the server offers no TCP candidate, and a viewer
// that can use only TCP does not connect: what the flag fixes (and the proof
// that the viewer above could not have used UDP).
func TestNoICETCPByDefault(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	const room = "ann@example.com"
	testpeer.MustPresenter(t, srv, "ann@example.com", room, testpeer.PresenterOptions{})
	vp, err := testpeer.NewViewerPeerOn(testpeer.Network{TCPOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := srv.JoinViewerWith(ctx, vp, "tom@example.com", room, testpeer.ViewerOptions{})
	if err == nil {
		v.Close()
		t.Fatal("a TCP-only viewer connected to a server without -ice-tcp-port")
	}
}

// wantPair fails the test unless the peer's selected ICE pair uses proto
// and, if port is not 0, the server's port.
func wantPair(t testing.TB, p interface {
	SelectedPair() (*webrtc.ICECandidatePair, error)
}, proto webrtc.ICEProtocol, port int) {
	t.Helper()
	pair, err := p.SelectedPair()
	if err != nil {
		t.Fatal(err)
	}
	if pair.Remote.Protocol != proto || (port != 0 && int(pair.Remote.Port) != port) {
		t.Errorf("selected pair %s, want %s to port %d", pair, proto, port)
	}
}

// Behind NAT 1:1 (-public-ip) the TCP candidate carries the public
// address, as the UDP ones do, on -ice-tcp-port: what a viewer outside
// must connect to.
func TestICETCPCandidateAdvertisesPublicIP(t *testing.T) {
	port := freePort(t, "tcp")
	const public = "203.0.113.7" // TEST-NET-3: never routed
	srv := testpeer.StartServer(t, func(c *config.Config) {
		c.ICETCPPort = port
		c.PublicIPs = []string{public}
	})
	const room = "ann@example.com"
	testpeer.MustPresenter(t, srv, "ann@example.com", room, testpeer.PresenterOptions{})
	vp, err := testpeer.NewViewerPeer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vp.Close)
	sess, err := vp.WatchWHEP(within(t), srv.WHIP(), room, testpeer.WHIPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Delete() })
	var tcp []string
	for _, l := range strings.Split(sess.Answer(), "\r\n") {
		if strings.HasPrefix(l, "a=candidate:") && strings.Contains(l, " tcp ") {
			tcp = append(tcp, l)
		}
	}
	want := fmt.Sprintf(" %s %d typ host tcptype passive", public, port)
	if len(tcp) == 0 {
		t.Fatalf("the answer has no TCP candidate:\n%s", sess.Answer())
	}
	for _, l := range tcp {
		if !strings.Contains(l, want) {
			t.Errorf("TCP candidate %q, want one on%s", l, want)
		}
	}
}
