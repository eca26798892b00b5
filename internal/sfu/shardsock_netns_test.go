package sfu

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/leakcheck"
)

// An address that is listed but cannot be bound yet (an IPv6 address still
// in duplicate address detection, as on an interface just brought up, or
// one going away) is left out of a writer's sockets, as pion leaves it out
// of a viewer's own candidates: viewers still join on the other addresses.
// The test needs a network namespace of its own (unshare -n) in which it
// may add a link; elsewhere it is skipped.
func TestShardSocketSkipsAnAddressNotReady(t *testing.T) {
	leakcheck.Check(t)
	ifs, err := net.Interfaces()
	if err != nil || len(ifs) != 1 || ifs[0].Flags&net.FlagLoopback == 0 {
		t.Skip("needs a network namespace with only loopback (unshare -n)")
	}
	// A veth whose peer is down: its address stays tentative.
	for _, args := range [][]string{
		{"link", "add", "onairv0", "type", "veth", "peer", "name", "onairv1"},
		{"link", "set", "onairv0", "up"},
		{"-6", "addr", "add", "2001:db8::5/64", "dev", "onairv0"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Skipf("ip %v: %v: %s", args, err, out)
		}
	}
	defer func() { _ = exec.Command("ip", "link", "del", "onairv0").Run() }()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	eng, err := New(Config{Loopback: true, Writers: 1, Logger: slog.New(slog.DiscardHandler),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("2001:db8::/64")}})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := eng.NewPipeline("tentative")
	if err != nil {
		_ = eng.Close()
		t.Fatal(err)
	}
	pres := newDirectPresenter(ctx, t, mp)
	defer func() { _ = pres.pc.Close(); _ = eng.Close() }()
	v := newDirectViewer(ctx, t, mp, "viewer", webrtc.Configuration{}, dtls.SRTP_AEAD_AES_128_GCM, false)
	defer func() { _ = v.pc.Close(); _ = v.mux.Close() }()
	waitFor(t, func() bool { return v.ep.Stats().State == "connected" })
	pres.send(t, 10)
	intact(t, v, pres)
}
