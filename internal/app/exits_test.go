package app_test

import (
	"context"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// endpointNames returns the sorted names of a presenter's endpoints.
func endpointNames(t testing.TB, srv *testpeer.Server, presenter string) []string {
	t.Helper()
	eps, err := srv.REST.Endpoints(presenter)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ep := range eps {
		names = append(names, ep.EndpointName)
	}
	sort.Strings(names)
	return names
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// waitEndpoints waits until the presenter's pipeline has exactly these
// endpoints.
func waitEndpoints(t testing.TB, srv *testpeer.Server, presenter string, want ...string) {
	t.Helper()
	sort.Strings(want)
	var got []string
	if !testpeer.Eventually(timeout, func() bool {
		got = endpointNames(t, srv, presenter)
		return equalStrings(got, want)
	}) {
		t.Fatalf("/media/endpoints/%s is %v, want %v", presenter, got, want)
	}
}

// waitMediaEnded waits for a client's media connection to end because the
// server released its endpoint (closed; or, should the DTLS close be lost,
// disconnected).
func waitMediaEnded(t testing.TB, who string, wait func(context.Context) error) {
	t.Helper()
	if err := wait(within(t)); err != nil {
		t.Errorf("%s: the server did not end the media connection: %v", who, err)
	}
}

// broadcast starts a presenter and viewers, all receiving media.
func broadcast(t *testing.T, srv *testpeer.Server, presenter string, viewers ...string) (*testpeer.Presenter, []*testpeer.Viewer) {
	t.Helper()
	p := testpeer.MustPresenter(t, srv, presenter, presenter, testpeer.PresenterOptions{})
	var vs []*testpeer.Viewer
	for _, email := range viewers {
		vs = append(vs, testpeer.MustViewer(t, srv, email, presenter, testpeer.ViewerOptions{}))
	}
	for _, v := range vs {
		wantMedia(t, v, 15)
	}
	return p, vs
}

// A viewer whose WebSocket drops (app killed) leaves the room: the count
// goes down, its endpoint is released, the others go on watching, and it
// may join again.
func TestViewerWebSocketDrop(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	const ann = "ann@example.com"
	_, vs := broadcast(t, srv, ann, "v1@example.com", "v2@example.com")
	waitRoomCount(t, srv, ann, "2")

	vs[0].WS.Drop() // its media connection stays open on the client side
	waitRoomCount(t, srv, ann, "1")
	waitEndpoints(t, srv, ann, "presenter:"+ann, "viewer:v2@example.com")
	waitMediaEnded(t, "v1", vs[0].Peer.WaitEnded)
	srv.WaitCounts(t, timeout, live.Counts{Rooms: 1, Viewers: 1, Sessions: 2, Pipelines: 1, Endpoints: 2})
	wantMoreMedia(t, vs[1], 30)

	again := testpeer.MustViewer(t, srv, "v1@example.com", ann, testpeer.ViewerOptions{})
	wantMedia(t, again, 15)
	waitRoomCount(t, srv, ann, "2")
}

// A presenter whose WebSocket drops ends its broadcast: every viewer is
// told "Presenter stopped streaming.", the room is gone, its pipeline and
// every endpoint released.
func TestPresenterWebSocketDrop(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	const ann = "ann@example.com"
	p, vs := broadcast(t, srv, ann, "v1@example.com", "v2@example.com")

	p.WS.Drop() // its media connection stays open on the client side
	for _, v := range vs {
		wantStop(t, v.WS, v.Email, "Presenter stopped streaming.")
		waitMediaEnded(t, v.Email, v.Peer.WaitEnded)
	}
	waitMediaEnded(t, "presenter", p.Peer.WaitEnded)
	waitNoRooms(t, srv)
	if ps := pipelines(t, srv); len(ps) != 0 {
		t.Errorf("/media/pipelines is %+v, want []", ps)
	}
	srv.WaitCounts(t, timeout, live.Counts{})
	// The viewers' WebSockets stay open, and the presenter may go live again.
	for _, v := range vs {
		if v.WS.CloseStatus() != -1 {
			t.Errorf("%s: WebSocket closed (%v)", v.Email, v.WS.CloseStatus())
		}
	}
	wantStatus(t, srv.REST.CreateRoom(ann, ann, "again", "p"), http.StatusCreated)
	wantStatus(t, srv.REST.EndRoom(ann), http.StatusNoContent)
}

// dropTimeout is the server's DisconnectTimeout in the media-drop tests.
// The server first waits for ICE to call the connection disconnected (5 s
// without traffic), then this long.
const dropTimeout = 2 * time.Second

// A viewer whose media vanishes while its WebSocket stays open (UDP blocked,
// network changed) is removed after the disconnect timeout: it is told
// "Internal Server Error.", the count goes down and its endpoint is
// released; the others go on watching, and it may join again on the same
// WebSocket.
func TestViewerMediaDrop(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) { c.DisconnectTimeout = dropTimeout })
	const ann = "ann@example.com"
	_, vs := broadcast(t, srv, ann, "v1@example.com", "v2@example.com")

	vs[0].Peer.Unplug()
	wantStop(t, vs[0].WS, "v1", "Internal Server Error.")
	waitRoomCount(t, srv, ann, "1")
	waitEndpoints(t, srv, ann, "presenter:"+ann, "viewer:v2@example.com")
	srv.WaitCounts(t, timeout, live.Counts{Rooms: 1, Viewers: 1, Sessions: 2, Pipelines: 1, Endpoints: 2})
	if vs[0].WS.CloseStatus() != -1 {
		t.Errorf("v1's WebSocket was closed (%v)", vs[0].WS.CloseStatus())
	}
	wantMoreMedia(t, vs[1], 30)

	// The network is back: v1 joins again on the same WebSocket.
	vs[0].Peer.Close()
	wantStatus(t, srv.REST.Join("v1@example.com", ann), http.StatusCreated)
	again, err := srv.WatchOn(within(t), vs[0].WS, "v1@example.com", ann, testpeer.ViewerOptions{})
	if err != nil {
		t.Fatalf("v1 rejoining on its WebSocket: %v", err)
	}
	t.Cleanup(again.Peer.Close)
	wantMedia(t, again, 15)
	waitRoomCount(t, srv, ann, "2")
}

// A presenter whose media vanishes while its WebSocket stays open ends its
// broadcast after the disconnect timeout: viewers are told, the room is
// gone and everything released.
func TestPresenterMediaDrop(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) { c.DisconnectTimeout = dropTimeout })
	const ann = "ann@example.com"
	p, vs := broadcast(t, srv, ann, "v1@example.com", "v2@example.com")

	p.Peer.Unplug()
	for _, v := range vs {
		wantStop(t, v.WS, v.Email, "Presenter stopped streaming.")
		waitMediaEnded(t, v.Email, v.Peer.WaitEnded)
	}
	// The presenter's WebSocket is still open: it learns its broadcast was
	// torn down by an error.
	wantStop(t, p.WS, ann, "Internal Server Error.")
	waitNoRooms(t, srv)
	if ps := pipelines(t, srv); len(ps) != 0 {
		t.Errorf("/media/pipelines is %+v, want []", ps)
	}
	srv.WaitCounts(t, timeout, live.Counts{})
	wantAPIError(t, srv.REST.Join("v3@example.com", ann), 400, "NO_ROOM", 5102, "ROOM not exists.")
}

// DELETE /room/live ends a room whose presenter has not opened its
// WebSocket yet (rather than answering NO_SESSION); a viewer who joined and
// offered meanwhile is told, and its offer, waiting for the presenter's, is
// rejected.
func TestEndBeforePresenterConnects(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) { c.PresenterWait = time.Minute })
	const ann = "ann@example.com"
	wantStatus(t, srv.REST.CreateRoom(ann, ann, "soon", "p"), http.StatusCreated)
	wantStatus(t, srv.REST.Join("v1@example.com", ann), http.StatusCreated)

	// The viewer offers: its answer waits for the presenter's offer.
	ws := testpeer.MustWS(t, srv)
	send(t, ws, testpeer.OfferMessage{ID: testpeer.IDViewer, RoomID: ann, Email: "v1@example.com", SDPOffer: viewerOfferSDP(t)})
	srv.WaitCounts(t, timeout, live.Counts{Rooms: 1, Viewers: 1, Sessions: 1, Pipelines: 1, Endpoints: 2})

	wantStatus(t, srv.REST.EndRoom(ann), http.StatusNoContent)
	wantStop(t, ws, "v1", "Presenter stopped streaming.")
	wantRejected(t, ws, testpeer.IDViewerResponse, "the viewer's waiting offer", "")
	waitNoRooms(t, srv)
	srv.WaitCounts(t, timeout, live.Counts{})

	// The presenter's WebSocket, opened late, finds no room.
	late := testpeer.MustWS(t, srv)
	send(t, late, testpeer.OfferMessage{ID: testpeer.IDPresenter, RoomID: ann, Email: ann, SDPOffer: viewerOfferSDP(t)})
	wantRejected(t, late, testpeer.IDPresenterResponse, "the presenter's late offer",
		"Can't find room you requested. Room doesn't exist!")
}

// A viewer may offer before the presenter has: its answer waits for the
// presenter's offer, then media flows.
func TestViewerOffersBeforePresenter(t *testing.T) {
	srv := testpeer.StartServer(t, func(c *config.Config) { c.PresenterWait = time.Minute })
	const ann = "ann@example.com"
	wantStatus(t, srv.REST.CreateRoom(ann, ann, "soon", "p"), http.StatusCreated)
	type result struct {
		v   *testpeer.Viewer
		err error
	}
	joined := make(chan result, 1)
	ctx := within(t)
	go func() {
		v, err := srv.JoinViewer(ctx, "v1@example.com", ann, testpeer.ViewerOptions{})
		joined <- result{v, err}
	}()
	// The viewer's offer is in (its session is bound) before the presenter's.
	srv.WaitCounts(t, timeout, live.Counts{Rooms: 1, Viewers: 1, Sessions: 1, Pipelines: 1, Endpoints: 2})
	ws := testpeer.MustWS(t, srv)
	p, err := srv.PresentOn(within(t), ws, ann, ann, testpeer.PresenterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	r := <-joined
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(r.v.Close)
	wantMedia(t, r.v, 15)
}
