package app_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// withTokens configures a server that requires tokens signed with testSecret.
func withTokens(c *config.Config) { c.AuthKeys = [][]byte{[]byte(testSecret)} }

// mintToken signs a token for sub, valid for an hour, with these grants,
// scoped to room if it is not empty.
func mintToken(t testing.TB, sub, room string, grants ...string) string {
	t.Helper()
	return mintTokenExpiring(t, time.Now().Add(time.Hour), []byte(testSecret), sub, room, grants...)
}

func mintTokenExpiring(t testing.TB, exp time.Time, key []byte, sub, room string, grants ...string) string {
	t.Helper()
	tok, err := auth.Mint(key, auth.Claims{Subject: sub, Grants: grants, Room: room,
		IssuedAt: time.Now().Unix(), ExpiresAt: exp.Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// forge swaps a token's claims for others, keeping its signature.
func forge(tok, claims string) string {
	parts := strings.Split(tok, ".")
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + "." + parts[2]
}

// With tokens on, a request without a valid one is refused with 401, one
// whose token lacks the grant with 403, the email header counts for
// nothing, and only the room's presenter ends it.
func TestTokensOnREST(t *testing.T) {
	srv := testpeer.StartServer(t, withTokens)
	const room = "concert"
	ann := srv.REST.WithToken(mintToken(t, "ann@example.com", room, "publish"))
	vic := srv.REST.WithToken(mintToken(t, "vic@example.com", "", "view"))
	bob := srv.REST.WithToken(mintToken(t, "bob@example.com", "", "publish", "view"))
	ops := srv.REST.WithToken(mintToken(t, "ops@example.com", "", "admin"))
	body := map[string]string{"roomId": room, "title": "t", "profileUrl": "p"}

	// No token, or a token that is not valid: 401, whatever the email header says.
	good := mintToken(t, "ann@example.com", room, "publish")
	bad := map[string]string{
		"no token":     "",
		"garbage":      "not-a-token",
		"forged":       forge(good, `{"sub":"ann@example.com","grants":["publish","admin"],"exp":9999999999}`),
		"wrong secret": mintTokenExpiring(t, time.Now().Add(time.Hour), []byte(strings.Repeat("x", 32)), "ann@example.com", room, "publish"),
		"expired":      mintTokenExpiring(t, time.Now().Add(-time.Hour), []byte(testSecret), "ann@example.com", room, "publish"),
		"alg none":     base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + strings.Split(good, ".")[1] + ".",
	}
	for what, tok := range bad {
		r := srv.REST.WithToken(tok).Do(http.MethodPost, "/room/live", "ann@example.com", body)
		wantAPIError(t, r, http.StatusUnauthorized, "UNAUTHORIZED", 4010, "A valid token is required.")
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", what, r.Header.Get("WWW-Authenticate"))
		}
	}
	if rs := srv.REST.Do(http.MethodGet, "/room/list", "ann@example.com", nil); rs.Status != http.StatusUnauthorized {
		t.Errorf("room list without a token: %s", rs)
	}
	if rs := srv.REST.Do(http.MethodGet, "/config", "", nil); rs.Status != http.StatusUnauthorized {
		t.Errorf("client config without a token: %s", rs)
	}
	// The token in the query parameter works too (players that cannot set headers).
	if rs := srv.REST.Do(http.MethodGet, "/room/list?token="+good, "", nil); rs.Status != http.StatusOK {
		t.Errorf("room list with ?token=: %s", rs)
	}
	// Health checks need no token: load balancers have none.
	wantStatus(t, srv.REST.Do(http.MethodGet, "/healthcheck/_check", "", nil), http.StatusOK)

	// Publishing needs publish on that room; a viewer token cannot publish.
	wantAPIError(t, vic.Do(http.MethodPost, "/room/live", "", body), http.StatusForbidden, "FORBIDDEN", 4030, "You are not allowed to do this.")
	other := map[string]string{"roomId": "other-room", "title": "t", "profileUrl": "p"}
	wantAPIError(t, ann.Do(http.MethodPost, "/room/live", "", other), http.StatusForbidden, "FORBIDDEN", 4030, "You are not allowed to do this.")
	// The email header is ignored: ann's token makes ann the presenter.
	wantStatus(t, ann.Do(http.MethodPost, "/room/live", "mallory@example.com", body), http.StatusCreated)
	if eps, err := ops.Endpoints("ann@example.com"); err != nil || len(eps) != 1 || eps[0].EndpointName != "presenter:ann@example.com" {
		t.Errorf("endpoints of ann: %+v, %v", eps, err)
	}

	// Watching needs view: ann's token (publish only) cannot join.
	wantAPIError(t, srv.REST.WithToken(mintToken(t, "ann2@example.com", room, "publish")).Join("", room),
		http.StatusForbidden, "FORBIDDEN", 4030, "")
	wantStatus(t, vic.Join("", room), http.StatusCreated)

	// Only the presenter ends a room: a viewer's token is refused, another
	// publisher's ends nothing of ann's.
	wantAPIError(t, vic.EndRoom(""), http.StatusForbidden, "FORBIDDEN", 4030, "")
	wantAPIError(t, bob.EndRoom("ann@example.com"), http.StatusBadRequest, "NO_ROOM", 5102, "ROOM not exists.")
	if rs, err := vic.Rooms(); err != nil || len(rs) != 1 || rs[0].Count != "1" {
		t.Errorf("room list after the refusals: %+v, %v", rs, err)
	}

	// The admin API needs admin; /metrics too.
	for _, path := range []string{"/media/pipelines", "/media/endpoints/ann@example.com", "/media/pipelines/exception", "/media/cpu", "/media/memory"} {
		wantAPIError(t, srv.REST.Do(http.MethodGet, path, "", nil), http.StatusUnauthorized, "UNAUTHORIZED", 4010, "")
		wantAPIError(t, bob.Do(http.MethodGet, path, "", nil), http.StatusForbidden, "FORBIDDEN", 4030, "")
		wantStatus(t, ops.Do(http.MethodGet, path, "", nil), http.StatusOK)
	}
	wantAPIError(t, bob.Do(http.MethodDelete, "/media/pipelines/exception", "", nil), http.StatusForbidden, "FORBIDDEN", 4030, "")
	origin := strings.TrimSuffix(srv.URL, srv.Config.BasePath)
	adminAt := testpeer.NewClient(origin)
	defer adminAt.CloseIdle()
	wantStatus(t, adminAt.Do(http.MethodGet, "/metrics", "", nil), http.StatusUnauthorized)
	wantStatus(t, adminAt.WithToken(mintToken(t, "bob", "", "publish")).Do(http.MethodGet, "/metrics", "", nil), http.StatusForbidden)
	m := adminAt.WithToken(mintToken(t, "prometheus", "", "admin")).Do(http.MethodGet, "/metrics", "", nil)
	wantStatus(t, m, http.StatusOK)
	for _, want := range []string{`onair_rejections_total{reason="unauthorized"}`, `onair_rejections_total{reason="forbidden"}`} {
		if !strings.Contains(string(m.Body), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}

	// The presenter ends its room with its own token.
	wantStatus(t, vic.Leave(""), http.StatusNoContent)
	wantStatus(t, ann.EndRoom(""), http.StatusNoContent)
	srv.WaitCounts(t, timeout, live.Counts{})
}

// With tokens on, the WebSocket needs one to open and acts for its subject
// only: a viewer's socket cannot present, nor act for another user, nor
// signal for another room; and none of it disturbs the broadcast.
func TestTokensOnWebSocket(t *testing.T) {
	srv := testpeer.StartServer(t, withTokens)
	const room = "concert"

	// No token, a bad one: the upgrade is refused with 401.
	for _, u := range []string{srv.WSURL, srv.WSURLWith("garbage")} {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		c, resp, err := websocket.Dial(ctx, u, nil)
		cancel()
		if err == nil {
			c.CloseNow()
			t.Fatalf("%s: the upgrade succeeded without a valid token", u)
		}
		if resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %v, want 401", u, err)
		}
	}

	annTok := mintToken(t, "ann@example.com", room, "publish")
	vicTok := mintToken(t, "vic@example.com", "", "view")
	testpeer.MustPresenter(t, srv, "ann@example.com", room, testpeer.PresenterOptions{Token: annTok})
	vic := testpeer.MustViewer(t, srv, "vic@example.com", room, testpeer.ViewerOptions{Token: vicTok})
	wantMedia(t, vic, 30)

	sdp := viewerOfferSDP(t)
	offer := func(id, roomID, email string) testpeer.OfferMessage {
		return testpeer.OfferMessage{ID: id, RoomID: roomID, Email: email, SDPOffer: sdp}
	}
	// A viewer's token on a fresh socket: it cannot present (even its own
	// room, were it one), nor offer for ann or anyone else.
	eve := srv.REST.WithToken(mintToken(t, "eve@example.com", "", "view"))
	wantStatus(t, eve.Join("", room), http.StatusCreated)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	eveWS, err := testpeer.DialWS(ctx, srv.WSURLWith(mintToken(t, "eve@example.com", "", "view")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eveWS.Close)
	send(t, eveWS, offer(testpeer.IDPresenter, room, "ann@example.com"))
	wantRejected(t, eveWS, testpeer.IDPresenterResponse, "a presenter offer for ann on eve's socket", "This connection is signed in as another user.")
	send(t, eveWS, offer(testpeer.IDPresenter, room, "eve@example.com"))
	wantRejected(t, eveWS, testpeer.IDPresenterResponse, "a presenter offer with a view token", "FORBIDDEN")
	send(t, eveWS, offer(testpeer.IDViewer, room, "vic@example.com"))
	wantRejected(t, eveWS, testpeer.IDViewerResponse, "a viewer offer for vic on eve's socket", "This connection is signed in as another user.")
	// eve's own viewer offer, without an email (the token says who): accepted.
	send(t, eveWS, map[string]string{"id": testpeer.IDViewer, "roomId": room, "sdpOffer": sdp})
	if m, err := eveWS.NextWithin(timeout, testpeer.IDViewerResponse); err != nil || m.Response != "accepted" {
		t.Fatalf("eve's own offer: %+v, %v", m, err)
	}
	// Now bound to the room: a candidate for another room is refused.
	if err := eveWS.SendCandidate("another-room", webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"}); err != nil {
		t.Fatal(err)
	}
	wantError(t, eveWS, "a candidate for another room", "already signals for another user or room")

	// Through all of it the broadcast went on.
	wantMoreMedia(t, vic, 30)
	if !strings.Contains(srv.Log(), "message for another user or room refused") {
		t.Error("the refusals were not logged")
	}
}

// In trusted-header mode (no secret) clients that send only an email header work,
// the admin API stays open, the start says the server is open, and a
// socket, once it signals for a user and room, refuses messages for
// another, so that one socket cannot act for anyone.
func TestTrustedModeBindsSockets(t *testing.T) {
	srv := testpeer.StartServer(t, nil)
	if !strings.Contains(srv.Log(), "authentication is off") {
		t.Error("no warning at start that the server is open")
	}
	testpeer.MustPresenter(t, srv, "ann@example.com", "ann-room", testpeer.PresenterOptions{})
	testpeer.MustPresenter(t, srv, "bob@example.com", "bob-room", testpeer.PresenterOptions{})
	vic := testpeer.MustViewer(t, srv, "vic@example.com", "ann-room", testpeer.ViewerOptions{})
	wantMedia(t, vic, 30)
	if _, err := srv.REST.Pipelines(); err != nil { // no credentials, as that mode's clients
		t.Errorf("admin API in trusted mode: %v", err)
	}

	// vic's socket is bound to vic in ann's room. eve joins bob's room;
	// vic's socket may not offer for her, nor send candidates to bob's room.
	wantStatus(t, srv.REST.Join("eve@example.com", "bob-room"), http.StatusCreated)
	sdp := viewerOfferSDP(t)
	send(t, vic.WS, testpeer.OfferMessage{ID: testpeer.IDViewer, RoomID: "bob-room", Email: "eve@example.com", SDPOffer: sdp})
	wantRejected(t, vic.WS, testpeer.IDViewerResponse, "an offer for eve on vic's socket",
		"This WebSocket already signals for another user or room.")
	if err := vic.WS.SendCandidate("bob-room", webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"}); err != nil {
		t.Fatal(err)
	}
	wantError(t, vic.WS, "a candidate for bob's room on vic's socket", "already signals for another user or room")

	// Even once vic has left (the domain no longer binds the socket), the
	// socket stays vic's.
	wantStatus(t, srv.REST.Leave("vic@example.com"), http.StatusNoContent)
	send(t, vic.WS, testpeer.OfferMessage{ID: testpeer.IDViewer, RoomID: "bob-room", Email: "eve@example.com", SDPOffer: sdp})
	wantRejected(t, vic.WS, testpeer.IDViewerResponse, "an offer for eve after vic left",
		"This WebSocket already signals for another user or room.")

	// eve, on her own socket, watches bob.
	ctx, cancel := context.WithTimeout(context.Background(), testpeer.ConnectTimeout)
	defer cancel()
	eveWS, err := testpeer.DialWS(ctx, srv.WSURL)
	if err != nil {
		t.Fatal(err)
	}
	eve, err := srv.WatchOn(ctx, eveWS, "eve@example.com", "bob-room", testpeer.ViewerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eve.Close)
	wantMedia(t, eve, 30)
}
