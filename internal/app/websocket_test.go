package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// wantError waits for the server's {"id":"error"} answer and checks that its
// message contains want.
func wantError(t testing.TB, ws *testpeer.WS, what, want string) {
	t.Helper()
	m, err := ws.NextWithin(timeout, testpeer.IDError)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !strings.Contains(m.Message, want) {
		t.Errorf("%s: error %q, want it to contain %q", what, m.Message, want)
	}
}

// wantRejected waits for a rejected presenterResponse or viewerResponse and
// checks that its message starts with want.
func wantRejected(t testing.TB, ws *testpeer.WS, respID, what, want string) {
	t.Helper()
	m, err := ws.NextWithin(timeout, respID)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if m.Response != "rejected" || !strings.HasPrefix(m.Message, want) || m.SDPAnswer != "" {
		t.Errorf("%s: %s, want rejected with %q", what, m.Raw, want)
	}
}

func send(t testing.TB, ws *testpeer.WS, v any) {
	t.Helper()
	if err := ws.Send(v); err != nil {
		t.Fatal(err)
	}
}

// Bad input on the WebSocket gets an error or a rejection, and neither the
// server, nor the connection that sent it, nor anyone else's broadcast
// suffers: an existing viewer keeps receiving media throughout.
func TestWebSocketBadInput(t *testing.T) {
	const maxMsg = 8192
	srv := testpeer.StartServer(t, func(c *config.Config) { c.MaxMessageBytes = maxMsg })
	const room = "ann@example.com"
	testpeer.MustPresenter(t, srv, "ann@example.com", room, testpeer.PresenterOptions{})
	watcher := testpeer.MustViewer(t, srv, "vic@example.com", room, testpeer.ViewerOptions{})
	wantMedia(t, watcher, 30)

	ws := testpeer.MustWS(t, srv)
	offer := func(id, roomID, email, sdp string) testpeer.OfferMessage {
		return testpeer.OfferMessage{ID: id, RoomID: roomID, Email: email, SDPOffer: sdp}
	}
	// A real offer for the rejections below that must not depend on the SDP.
	sdp := viewerOfferSDP(t)

	if err := ws.SendText(`{"id":"presenter","roomId":`); err != nil {
		t.Fatal(err)
	}
	wantError(t, ws, "malformed JSON", "malformed JSON")
	if err := ws.SendText(`{"id":"dance","roomId":"ann@example.com"}`); err != nil {
		t.Fatal(err)
	}
	wantError(t, ws, "unknown id", `unknown message id "dance"`)
	if err := ws.SendBinary([]byte(`{"id":"viewer"}`)); err != nil {
		t.Fatal(err)
	}
	wantError(t, ws, "binary message", "binary messages are not supported")
	send(t, ws, map[string]string{"id": "presenter"})
	wantRejected(t, ws, testpeer.IDPresenterResponse, "offer without fields", "The message lacks roomId, email or sdpOffer.")

	send(t, ws, offer(testpeer.IDViewer, "no-such-room", "eve@example.com", sdp))
	wantRejected(t, ws, testpeer.IDViewerResponse, "viewer offer for a room that does not exist",
		"Can't find room you requested. Room doesn't exist!")
	send(t, ws, offer(testpeer.IDPresenter, room, "ann@example.com", sdp))
	wantRejected(t, ws, testpeer.IDPresenterResponse, "second presenter offer for a room",
		"You are already acting as sender.")
	send(t, ws, offer(testpeer.IDPresenter, room, "mallory@example.com", sdp))
	wantRejected(t, ws, testpeer.IDPresenterResponse, "presenter offer by someone else",
		"Another user is the presenter of this room.")
	send(t, ws, offer(testpeer.IDViewer, room, "eve@example.com", sdp))
	wantRejected(t, ws, testpeer.IDViewerResponse, "viewer offer without POST /room/view",
		"You have not joined this room")

	// Candidates for no session are kept for the offer to come (a client
	// may trickle before it offers), up to a bound; past it, refused.
	cand := webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"}
	for i := 0; i < 64; i++ {
		if err := ws.SendCandidate(room, cand); err != nil {
			t.Fatal(err)
		}
	}
	if err := ws.SendText(`{"id":"marker"}`); err != nil {
		t.Fatal(err)
	}
	wantError(t, ws, "64 early candidates then a marker", `unknown message id "marker"`) // no error before it
	if err := ws.SendCandidate(room, cand); err != nil {
		t.Fatal(err)
	}
	wantError(t, ws, "65th candidate for no session", "candidate refused")
	send(t, ws, map[string]string{"id": "onIceCandidate", "roomId": room})
	wantError(t, ws, "onIceCandidate without a candidate", "onIceCandidate without a candidate")

	// A garbage candidate on a working viewer's session is refused, and that
	// viewer does not notice.
	if err := watcher.WS.SendCandidate(room, webrtc.ICECandidateInit{Candidate: "garbage"}); err != nil {
		t.Fatal(err)
	}
	wantError(t, watcher.WS, "garbage candidate", "candidate refused")

	// Over the size cap: refused, and the connection goes on.
	if err := ws.SendText(`{"id":"viewer","sdpOffer":"` + strings.Repeat("x", maxMsg) + `"}`); err != nil {
		t.Fatal(err)
	}
	wantError(t, ws, "message over the size cap", "larger than 8192 bytes")
	if err := ws.SendText(`{"id":"marker2"}`); err != nil {
		t.Fatal(err)
	}
	wantError(t, ws, "after the oversize message", `unknown message id "marker2"`)

	// An offer that is not SDP, from a viewer who joined: rejected; the same
	// viewer then offers properly on the same WebSocket and watches.
	wantStatus(t, srv.REST.Join("eve@example.com", room), http.StatusCreated)
	eveWS := testpeer.MustWS(t, srv)
	send(t, eveWS, offer(testpeer.IDViewer, room, "eve@example.com", "this is not SDP"))
	wantRejected(t, eveWS, testpeer.IDViewerResponse, "offer that is not SDP", "invalid SDP offer")
	eve, err := srv.WatchOn(within(t), eveWS, "eve@example.com", room, testpeer.ViewerOptions{})
	if err != nil {
		t.Fatalf("eve offering again after a bad offer: %v", err)
	}
	t.Cleanup(eve.Close)
	wantMedia(t, eve, 30)

	// A WebSocket signals for one user: another's offer on it is refused.
	wantStatus(t, srv.REST.Join("fay@example.com", room), http.StatusCreated)
	send(t, eveWS, offer(testpeer.IDViewer, room, "fay@example.com", sdp))
	wantRejected(t, eveWS, testpeer.IDViewerResponse, "a second user on one WebSocket",
		"This WebSocket already signals for another user or room.")
	wantStatus(t, srv.REST.Leave("fay@example.com"), http.StatusNoContent)

	// A message over the hard limit ends that connection, and only it.
	big := testpeer.MustWS(t, srv)
	if err := big.SendText(`{"id":"viewer","sdpOffer":"` + strings.Repeat("x", 2<<20) + `"}`); err != nil {
		t.Logf("sending 2 MiB: %v (the server may close while it is sent)", err)
	}
	if err := big.WaitClosed(timeout); err != nil {
		t.Fatalf("after a 2 MiB message: %v", err)
	}
	if got := big.CloseStatus(); got != websocket.StatusMessageTooBig {
		t.Errorf("after a 2 MiB message the close status is %v, want %v", got, websocket.StatusMessageTooBig)
	}

	// Through all of it the broadcast went on, and nothing else changed.
	wantMoreMedia(t, watcher, 30)
	wantMoreMedia(t, eve, 30)
	if err := ws.SendText(`{"id":"still-there"}`); err != nil {
		t.Fatal(err)
	}
	wantError(t, ws, "at the end", `unknown message id "still-there"`)
	waitRoomCount(t, srv, room, "2")
	if got, want := srv.Counts(), (live.Counts{Rooms: 1, Viewers: 2, Sessions: 3, Pipelines: 1, Endpoints: 3}); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
}

// viewerOfferSDP returns a real recvonly offer, from a throwaway peer.
func viewerOfferSDP(t testing.TB) string {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o.SDP
}
