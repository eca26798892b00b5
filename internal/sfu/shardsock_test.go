package sfu

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/leakcheck"
	"github.com/onair-live/onair/internal/media"
)

// The viewers of a writer shard are all sent from its one socket, each
// packet to each of them intact, with the sends batched across viewers.
func TestViewersShareTheirWritersSocket(t *testing.T) {
	r := runForwarding(t, forwardRun{viewers: 5, frames: 45, perFrame: 6, writers: 2})
	if r.lost != 0 {
		t.Errorf("%d packets lost", r.lost)
	}
	if r.ports != 2 {
		t.Errorf("the viewers are sent from %d ports, want 2: one per writer", r.ports)
	}
	if r.out == 0 || r.direct != r.out || r.sends.Datagrams < r.out {
		t.Errorf("%d packets sent, %d directly, %d datagrams on the writers' sockets", r.out, r.direct, r.sends.Datagrams)
	}
	if r.sends.GSO && r.sends.GSOSends == 0 {
		t.Errorf("no GSO send: %+v", r.sends)
	}
	t.Logf("%s; viewers per shard %v", r, r.shards)
}

// A shard's socket is opened for its first viewer and closed once its last
// has left; the others, on another shard's or the same socket, keep getting
// every packet. Closing the engine closes the sockets of viewers still
// connected.
func TestShardSocketsFollowTheirViewers(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	eng, mp := newLoopbackPipeline(t, Config{Writers: 2}, "sockets")
	pres := newDirectPresenter(ctx, t, mp)
	defer func() { _ = pres.pc.Close(); _ = eng.Close() }()
	open := func() int { n, _ := eng.writers.sockets(); return n }
	var vs []*directViewer
	for _, name := range []string{"a", "b", "c"} {
		v := newDirectViewer(ctx, t, mp, name, webrtc.Configuration{}, dtls.SRTP_AEAD_AES_128_GCM, false)
		defer func() { _ = v.pc.Close(); _ = v.mux.Close() }()
		vs = append(vs, v)
	}
	waitFor(t, func() bool {
		for _, v := range vs {
			if v.ep.Stats().State != "connected" {
				return false
			}
		}
		return true
	})
	if got := open(); got != 2 {
		t.Fatalf("%d writer sockets open for 3 viewers on 2 writers, want 2", got)
	}
	pres.send(t, 30)
	for _, v := range vs {
		intact(t, v, pres)
	}

	// The viewer alone on its shard leaves: its socket closes.
	alone, rest := vs[0], []*directViewer{}
	for _, v := range vs {
		n := 0
		for _, w := range vs {
			if w.ep.home == v.ep.home {
				n++
			}
		}
		if n == 1 {
			alone = v
		} else {
			rest = append(rest, v)
		}
	}
	alone.ep.Release()
	if got := open(); got != 1 {
		t.Fatalf("%d writer sockets open after the viewer alone on its writer left, want 1", got)
	}
	pres.send(t, 30)
	for _, v := range rest {
		intact(t, v, pres)
	}
	for _, v := range rest {
		v.ep.Release()
	}
	if got := open(); got != 0 {
		t.Fatalf("%d writer sockets open after every viewer left", got)
	}

	late := newDirectViewer(ctx, t, mp, "late", webrtc.Configuration{}, dtls.SRTP_AEAD_AES_128_GCM, false)
	defer func() { _ = late.pc.Close(); _ = late.mux.Close() }()
	waitFor(t, func() bool { return late.ep.Stats().State == "connected" })
	if got := open(); got != 1 {
		t.Fatalf("%d writer sockets open for a viewer after the others left, want 1", got)
	}
	_ = eng.Close()
	if got := open(); got != 0 {
		t.Fatalf("%d writer sockets open after the engine closed", got)
	}
}

// intact waits for every packet the presenter sent to arrive at v, and
// checks their bytes. (The presenter's timestamps do not follow the clock
// across the pauses of the test, so its sender reports are not checked.)
func intact(t *testing.T, v *directViewer, pres *directPresenter) {
	t.Helper()
	waitFor(t, func() bool { return v.complete(pres) })
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.bad) > 0 {
		t.Errorf("%s: %d bad packets: %v", v.name, len(v.bad), v.bad)
	}
}

// A shard's sockets listen where a viewer's own would: on the allowed
// addresses, loopback only when asked, within the port range.
func TestShardSocketListensWhereViewersWould(t *testing.T) {
	allowed := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	eng, err := New(Config{Loopback: true, AllowedIPs: allowed, UDPPortMin: 41000, UDPPortMax: 41999})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = eng.Close() }()
	s, err := eng.openShardSocket()
	if err != nil {
		t.Fatal(err)
	}
	addrs := s.mux.GetListenAddresses()
	s.close()
	if len(addrs) != 1 {
		t.Fatalf("listens on %v, want 127.0.0.1 only", addrs)
	}
	if ua := addrs[0].(*net.UDPAddr); !ua.IP.Equal(net.IPv4(127, 0, 0, 1)) || ua.Port < 41000 || ua.Port > 41999 {
		t.Errorf("listens on %s, want 127.0.0.1 in 41000-41999", ua)
	}

	noLoop, err := New(Config{AllowedIPs: allowed})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = noLoop.Close() }()
	if s, err := noLoop.openShardSocket(); err == nil {
		t.Errorf("listens on %v without loopback candidates", s.mux.GetListenAddresses())
		s.close()
	}
}

// The addresses ICE must not offer are left out, as pion leaves them out
// of a viewer's own candidates.
func TestGatherable(t *testing.T) {
	for a, want := range map[string]bool{"192.0.2.1": true, "127.0.0.1": true, "2001:db8::1": true,
		"fe80::1": true, "::1": false, "::192.0.2.1": false, "fec0::1": false} {
		if got := gatherable(netip.MustParseAddr(a)); got != want {
			t.Errorf("gatherable(%s) = %v, want %v", a, got, want)
		}
	}
}

// Behind NAT 1:1 (Config.PublicIPs) a viewer's UDP candidates carry the
// public address, on its writer's socket's port.
func TestShardSocketAdvertisesPublicIP(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const public = "203.0.113.7" // TEST-NET-3: never routed
	eng, mp := newLoopbackPipeline(t, Config{PublicIPs: []string{public}, Writers: 1}, "nat")
	defer func() { _ = eng.Close() }()
	api := clientAPI(t)
	video, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "presenter")
	pub, _ := startTestPresenter(ctx, t, api, mp, video)
	defer func() { _ = pub.Close() }()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pc.Close() }()
	recvOnly(t, pc, webrtc.RTPCodecTypeVideo)
	ep, err := mp.NewEndpoint(media.Subscriber, "viewer", media.Events{})
	if err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := ep.ProcessOfferGathered(ctx, offer.SDP)
	if err != nil {
		t.Fatal(err)
	}
	sock := eng.writers.socketOf(ep.(*Endpoint).home)
	port := strconv.Itoa(sock.mux.GetListenAddresses()[0].(*net.UDPAddr).Port)
	found := 0
	for _, l := range strings.Split(answer, "\r\n") {
		// a=candidate:FOUNDATION COMPONENT udp PRIORITY ADDRESS PORT typ host
		f := strings.Fields(l)
		if !strings.HasPrefix(l, "a=candidate:") || len(f) < 8 || f[2] != "udp" {
			continue
		}
		found++
		if f[4] != public || f[5] != port || f[7] != "host" {
			t.Errorf("UDP candidate %q, want a host one on %s:%s", l, public, port)
		}
	}
	if found == 0 {
		t.Fatalf("the answer has no UDP candidate:\n%s", answer)
	}
}

// With every port of -ice-udp-ports taken, a writer's socket cannot open,
// and the error tells the operator which range to widen.
func TestShardSocketPortRangeFull(t *testing.T) {
	taken, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = taken.Close() }()
	port := uint16(taken.LocalAddr().(*net.UDPAddr).Port)
	eng, err := New(Config{Loopback: true, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		UDPPortMin: port, UDPPortMax: port})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = eng.Close() }()
	s, err := eng.openShardSocket()
	if err == nil {
		s.close()
		t.Fatalf("a writer's socket opened in the full range %d-%d", port, port)
	}
	if !strings.Contains(err.Error(), "-ice-udp-ports") || !strings.Contains(err.Error(), strconv.Itoa(int(port))) {
		t.Errorf("error %q does not say which range to widen", err)
	}
}
