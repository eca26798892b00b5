package whip_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/testpeer"
)

// An encoder publishes over WHIP; two players watch over WHEP and a fan over
// the REST + WebSocket protocol, all at once, and each gets every frame
// exactly as sent. DELETE of a WHEP session is a leave; DELETE of the WHIP
// session ends the room as a WebSocket end does: the fan hears
// stopCommunication and everything is released.
func TestPublishOverWHIPWatchOverWHEPAndWebSocket(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) {
		c.ICEServers = []media.ICEServer{
			{URLs: []string{"stun:stun.onair.test:3478"}},
			{URLs: []string{"turn:turn.onair.test:3478"}, Username: "user", Credential: "secret"},
		}
	})
	const room = "main-stage"
	q := url.Values{"title": {"Main stage"}, "profileUrl": {"https://example.com/stage.png"}}
	pub := testpeer.MustWHIPPublisher(t, srv, nil, room, testpeer.WHIPOptions{Query: q})
	wantCreated(t, pub.Session.Created, "whip", room)
	links := pub.Session.Created.Header.Values("Link")
	wantLinks := []string{
		`<stun:stun.onair.test:3478>; rel="ice-server"`,
		`<turn:turn.onair.test:3478>; rel="ice-server"; username="user"; credential="secret"; credential-type="password"`,
	}
	if strings.Join(links, "\n") != strings.Join(wantLinks, "\n") {
		t.Errorf("Link headers:\n%s\nwant:\n%s", strings.Join(links, "\n"), strings.Join(wantLinks, "\n"))
	}
	waitRoom(t, srv, testpeer.Room{RoomID: room, Title: "Main stage", ProfileURL: "https://example.com/stage.png", Count: "0"})
	// The presenter's made-up identity, which webhooks, logs and endpoint
	// names show, gives away nothing of the session URL's random part.
	id := locationRE.FindStringSubmatch(pub.Session.Location)[3]
	logged := false
	for _, l := range strings.Split(srv.Log(), "\n") {
		if strings.Contains(l, `msg="session created"`) && strings.Contains(l, "session="+live.Tag(id)) {
			logged = true
			if strings.Contains(l, "user=whip:"+id[:8]) {
				t.Errorf("the WHIP presenter's identity is made of its session id: %s", l)
			}
		}
	}
	if !logged {
		t.Errorf("no log line of the WHIP session's creation")
	}

	whep1 := testpeer.MustWHEPViewer(t, srv, nil, room, testpeer.WHIPOptions{})
	whep2 := testpeer.MustWHEPViewer(t, srv, nil, room, testpeer.WHIPOptions{})
	fan := testpeer.MustViewer(t, srv, "fan@example.com", room, testpeer.ViewerOptions{})
	for _, v := range []*testpeer.WHEPViewer{whep1, whep2} {
		wantCreated(t, v.Session.Created, "whep", room)
		if v.Session.Created.Header.Get("Link") == "" {
			t.Errorf("WHEP 201 without Link headers")
		}
	}
	if whep1.Session.Location == whep2.Session.Location || whep1.Session.ETag() == whep2.Session.ETag() {
		t.Errorf("two WHEP sessions share a Location or ETag: %s %s", whep1.Session.Location, whep1.Session.ETag())
	}
	wantMedia(t, "WHEP viewer 1", whep1.Peer, 90)
	wantMedia(t, "WHEP viewer 2", whep2.Peer, 90)
	wantMedia(t, "WebSocket viewer", fan.Peer, 90)
	waitRoom(t, srv, testpeer.Room{RoomID: room, Title: "Main stage", ProfileURL: "https://example.com/stage.png", Count: "3"})
	if c := srv.Counts(); c != (live.Counts{Rooms: 1, Viewers: 3, Sessions: 4, Pipelines: 1, Endpoints: 4}) {
		t.Errorf("counts with a WHIP presenter, 2 WHEP and 1 WebSocket viewers: %+v", c)
	}
	for _, s := range []struct {
		name string
		v    *testpeer.ViewerPeer
	}{{"WHEP viewer 1", whep1.Peer}, {"WHEP viewer 2", whep2.Peer}, {"WebSocket viewer", fan.Peer}} {
		t.Logf("%s: %s", s.name, s.v.Stats())
	}

	// A WHEP viewer leaves: the count drops and its endpoint is released;
	// the others go on.
	wantStatus(t, whep1.Session.Delete(), http.StatusOK)
	waitRoom(t, srv, testpeer.Room{RoomID: room, Title: "Main stage", ProfileURL: "https://example.com/stage.png", Count: "2"})
	srv.WaitCounts(t, timeout, live.Counts{Rooms: 1, Viewers: 2, Sessions: 3, Pipelines: 1, Endpoints: 3})
	wantRefused(t, whep1.Session.Delete(), http.StatusNotFound)
	wantMoreMedia(t, "WHEP viewer 2", whep2.Peer, 30)
	wantMoreMedia(t, "WebSocket viewer", fan.Peer, 30)

	// The encoder stops: its DELETE ends the room like a WebSocket end.
	wantStatus(t, pub.Session.Delete(), http.StatusOK)
	wantStop(t, fan)
	waitNoRooms(t, srv)
	srv.WaitCounts(t, timeout, live.Counts{})
	// The room's end retired the WHEP session, and the WHIP one is gone.
	frag, err := whep2.Session.TrickleFrag()
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, whep2.Session.Patch(whep2.Session.ETag(), frag), http.StatusNotFound)
	wantRefused(t, whep2.Session.Delete(), http.StatusNotFound)
	wantRefused(t, pub.Session.Delete(), http.StatusNotFound)
}

// Without title or profileUrl in the query, the room is titled after its id
// and has no profile image.
func TestWHIPRoomDefaults(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	pub := testpeer.MustWHIPPublisher(t, srv, nil, "plain room", testpeer.WHIPOptions{})
	wantCreated(t, pub.Session.Created, "whip", url.PathEscape("plain room"))
	waitRoom(t, srv, testpeer.Room{RoomID: "plain room", Title: "plain room", Count: "0"})
	v := testpeer.MustWHEPViewer(t, srv, nil, "plain room", testpeer.WHIPOptions{})
	wantMedia(t, "WHEP viewer", v.Peer, 30)
	wantStatus(t, pub.Session.Delete(), http.StatusOK)
	waitNoRooms(t, srv)
	srv.WaitCounts(t, timeout, live.Counts{})
}

// An encoder's H.264 (packetization-mode 1, offered after a mode 0
// alternative) and stereo Opus are published as they are and reach WHEP
// and WebSocket viewers that take them, intact; a viewer that takes only
// VP8 is refused with the reason.
func TestH264AndStereoOpusFromAnEncoder(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	const room = "h264"
	h264, err := testpeer.NewH264Publisher(testpeer.PublisherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pub := testpeer.MustWHIPPublisher(t, srv, h264, room, testpeer.WHIPOptions{})
	answer := pub.Session.Answer()
	for _, line := range []string{"a=rtpmap:102 H264/90000", "a=fmtp:102 " + testpeer.H264Fmtp,
		"a=rtpmap:111 opus/48000/2", "a=fmtp:111 " + testpeer.StereoOpusFmtp} {
		if !sdpHas(answer, line) {
			t.Errorf("the WHIP answer lacks %q:\n%s", line, answer)
		}
	}
	if sdpHas(answer, "a=rtpmap:104") {
		t.Errorf("the WHIP answer accepts packetization-mode 0 too:\n%s", answer)
	}

	vp, err := testpeer.NewH264ViewerPeer()
	if err != nil {
		t.Fatal(err)
	}
	whep := testpeer.MustWHEPViewer(t, srv, vp, room, testpeer.WHIPOptions{})
	for _, line := range []string{"a=fmtp:102 " + testpeer.H264Fmtp, "a=rtpmap:111 opus/48000/2"} {
		if !sdpHas(whep.Session.Answer(), line) {
			t.Errorf("the WHEP answer lacks %q:\n%s", line, whep.Session.Answer())
		}
	}
	if !strings.Contains(whep.Session.Answer(), "stereo=1") {
		t.Errorf("the WHEP answer's Opus is not stereo:\n%s", whep.Session.Answer())
	}
	wsPeer, err := testpeer.NewH264ViewerPeer()
	if err != nil {
		t.Fatal(err)
	}
	fan, err := srv.JoinViewerWith(within(t), wsPeer, "fan@example.com", room, testpeer.ViewerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fan.Close)
	wantMedia(t, "WHEP viewer", whep.Peer, 90)
	wantMedia(t, "WebSocket viewer", fan.Peer, 90)
	t.Logf("WHEP viewer: %s", whep.Peer.Stats())
	t.Logf("WebSocket viewer: %s", fan.Peer.Stats())

	vp8, err := testpeer.NewViewerPeer()
	if err != nil {
		t.Fatal(err)
	}
	defer vp8.Close()
	_, err = vp8.WatchWHEP(within(t), srv.WHIP(), room, testpeer.WHIPOptions{})
	he, ok := err.(*testpeer.HTTPError)
	if !ok {
		t.Fatalf("a VP8-only WHEP viewer of an H.264 room: %v, want a refusal", err)
	}
	wantRefused(t, he.Response, http.StatusBadRequest, "H264")
	waitRoom(t, srv, testpeer.Room{RoomID: room, Title: room, Count: "2"})

	wantStatus(t, pub.Session.Delete(), http.StatusOK)
	wantStop(t, fan)
	srv.WaitCounts(t, timeout, live.Counts{})
}
