package app_test

import (
	"testing"

	"github.com/onair-live/onair/internal/testpeer"
)

// A client may send all its ICE candidates before its offer (the protocol
// allows it, and a client that gathers before signalling does). They must
// not be lost: here they are the server's only way to reach the clients,
// because the clients ignore the server's candidates, so the connections
// can only be made by the server checking the candidates the clients sent
// early (the clients then learn the server's address from those checks).
func TestCandidatesBeforeOffer(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	early := testpeer.NegotiateOptions{CandidatesFirst: true, IgnoreServerCandidates: true}
	const room = "ann@example.com"
	testpeer.MustPresenter(t, srv, "ann@example.com", room, testpeer.PresenterOptions{Negotiate: early})
	v := testpeer.MustViewer(t, srv, "vic@example.com", room, testpeer.ViewerOptions{Negotiate: early})
	wantMedia(t, v, 30)
	if n := len(v.WS.Received(testpeer.IDIceCandidate)); n == 0 {
		t.Errorf("the server trickled no candidates to the viewer (they were ignored, but should be sent)")
	}
}
