package whip_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// OBS and FFmpeg send an offer with no candidate and trickle none: the
// server learns each client's address from the client's connectivity
// checks (peer-reflexive), for a WHIP encoder as for a WHEP player.
func TestOfferWithoutCandidates(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	const room = "no-candidates"
	strip := testpeer.WHIPOptions{StripCandidates: true}
	pub := testpeer.MustWHIPPublisher(t, srv, nil, room, strip)
	whep := testpeer.MustWHEPViewer(t, srv, nil, room, strip)
	fan := testpeer.MustViewer(t, srv, "fan@example.com", room, testpeer.ViewerOptions{})
	wantMedia(t, "WHEP viewer", whep.Peer, 60)
	wantMedia(t, "WebSocket viewer", fan.Peer, 60)
	wantStatus(t, pub.Session.Delete(), http.StatusOK)
	wantStop(t, fan)
	srv.WaitCounts(t, timeout, live.Counts{})
}

// FFmpeg offers a=setup:passive: the server must answer active and be the
// DTLS client.
func TestOfferSetupPassive(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	const room = "passive"
	passive := testpeer.WHIPOptions{SetupPassive: true}
	pub := testpeer.MustWHIPPublisher(t, srv, nil, room, passive)
	whep := testpeer.MustWHEPViewer(t, srv, nil, room, passive)
	for _, s := range []*testpeer.WHIPSession{pub.Session, whep.Session} {
		if !sdpHas(s.Answer(), "a=setup:active") || sdpHas(s.Answer(), "a=setup:passive") {
			t.Errorf("%s: the answer to a passive offer is not active:\n%s", s.Location, s.Answer())
		}
	}
	wantMedia(t, "WHEP viewer", whep.Peer, 60)
	wantStatus(t, pub.Session.Delete(), http.StatusOK)
	srv.WaitCounts(t, timeout, live.Counts{})
}

// An encoder as FFmpeg's WHIP muxer is: H.264 and stereo Opus, an offer
// with no candidate and a=setup:passive, and once connected no STUN at all
// (no keep-alive, no answer to the server's checks), only media. Its media
// keeps it alive well past the ICE disconnect timeout and -disconnect-timeout;
// when the media stops too, the room ends as a WebSocket presenter's does:
// the viewers hear stopCommunication, and the WHIP and WHEP sessions are
// gone (404).
func TestEncoderWithoutKeepAlives(t *testing.T) {
	const disconnect = 2 * time.Second
	srv := testpeer.StartServer(t, func(c *config.Config) { c.DisconnectTimeout = disconnect })
	const room = "ffmpeg"
	h264, err := testpeer.NewH264Publisher(testpeer.PublisherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pub := testpeer.MustWHIPPublisher(t, srv, h264, room, testpeer.WHIPOptions{StripCandidates: true, SetupPassive: true})
	vp, err := testpeer.NewH264ViewerPeer()
	if err != nil {
		t.Fatal(err)
	}
	whep := testpeer.MustWHEPViewer(t, srv, vp, room, testpeer.WHIPOptions{})
	wsPeer, err := testpeer.NewH264ViewerPeer()
	if err != nil {
		t.Fatal(err)
	}
	fan, err := srv.JoinViewerWith(within(t), wsPeer, "fan@example.com", room, testpeer.ViewerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fan.Close)
	wantMedia(t, "WHEP viewer", whep.Peer, 30)

	pub.Peer.MuteSTUN()
	logFrom := len(srv.Log())
	// The server's ICE calls a peer disconnected after 5 s without traffic,
	// and onair ends it -disconnect-timeout later: wait well past both.
	quiet := 5*time.Second + disconnect + 3*time.Second
	deadline := time.Now().Add(quiet)
	for time.Now().Before(deadline) {
		wantMoreMedia(t, "WHEP viewer", whep.Peer, 15)
	}
	wantMoreMedia(t, "WebSocket viewer", fan.Peer, 15)
	for _, l := range strings.Split(srv.Log()[logFrom:], "\n") {
		if strings.Contains(l, "state=disconnected") || strings.Contains(l, "media connection lost") {
			t.Errorf("with media but no STUN from the encoder, the server logged: %s", l)
		}
	}
	if c := srv.Counts(); c != (live.Counts{Rooms: 1, Viewers: 2, Sessions: 3, Pipelines: 1, Endpoints: 3}) {
		t.Fatalf("counts after %s of media without STUN: %+v", quiet, c)
	}

	// The encoder's network goes: no media, no STUN.
	pub.Peer.Unplug()
	wantStop(t, fan)
	waitNoRooms(t, srv)
	srv.WaitCounts(t, timeout, live.Counts{})
	frag, err := whep.Session.TrickleFrag()
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, whep.Session.Patch(whep.Session.ETag(), frag), http.StatusNotFound)
	wantRefused(t, pub.Session.Patch(pub.Session.ETag(), frag), http.StatusNotFound)
	wantRefused(t, pub.Session.Delete(), http.StatusNotFound)
}
