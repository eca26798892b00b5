package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/testpeer"
)

// shortToken is a view token that the server stops accepting about five
// seconds from now: its exp is just inside the 30 s of clock skew allowed.
func shortToken(t *testing.T, sub string) (string, time.Time) {
	exp := time.Now().Add(-25 * time.Second).Truncate(time.Second)
	return mintTokenExpiring(t, exp, []byte(testSecret), sub, "", "view"), exp.Add(30 * time.Second)
}

// watchWith joins room with a long token over REST, then opens the
// WebSocket with wsToken and watches.
func watchWith(t *testing.T, srv *testpeer.Server, email, room, wsToken string) *testpeer.Viewer {
	t.Helper()
	wantStatus(t, srv.REST.WithToken(mintToken(t, email, "", "view")).Join(email, room), http.StatusCreated)
	ws, err := testpeer.DialWS(within(t), srv.WSURLWith(wsToken))
	if err != nil {
		t.Fatal(err)
	}
	v, err := srv.WatchOn(within(t), ws, email, room, testpeer.ViewerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Drop)
	return v
}

// A WebSocket is closed when its token expires, after an error saying so,
// and its seat ends as a drop; one that sent a fresh token of its own
// subject in time stays open; a token of another subject is refused.
func TestTokenExpiryClosesSocket(t *testing.T) {
	srv := testpeer.StartServer(t, withTokens)
	const room = "ann@example.com"
	testpeer.MustPresenter(t, srv, room, room, testpeer.PresenterOptions{Token: mintToken(t, room, "", "publish")})

	vicTok, vicUntil := shortToken(t, "vic@example.com")
	valTok, valUntil := shortToken(t, "val@example.com")
	vic := watchWith(t, srv, "vic@example.com", room, vicTok)
	val := watchWith(t, srv, "val@example.com", room, valTok)
	if time.Now().After(vicUntil) || time.Now().After(valUntil) {
		t.Fatal("the machine is too slow for this test: the tokens expired while the viewers joined")
	}
	srv.WaitCounts(t, timeout, live.Counts{Rooms: 1, Viewers: 2, Sessions: 3, Pipelines: 1, Endpoints: 3})

	if err := val.WS.Send(map[string]string{"id": "token", "token": mintToken(t, "vic@example.com", "", "view")}); err != nil {
		t.Fatal(err)
	}
	if m, err := val.WS.NextWithin(timeout, "tokenResponse"); err != nil || m.Response != "rejected" {
		t.Errorf("a token of another subject: %+v, %v; want rejected", m, err)
	}
	if err := val.WS.Send(map[string]string{"id": "token", "token": mintToken(t, "val@example.com", "", "view")}); err != nil {
		t.Fatal(err)
	}
	if m, err := val.WS.NextWithin(timeout, "tokenResponse"); err != nil || m.Response != "accepted" {
		t.Fatalf("a fresh token: %+v, %v; want accepted", m, err)
	}

	if err := vic.WS.WaitClosed(timeout); err != nil {
		t.Fatalf("vic's token expired: %v", err)
	}
	if got := vic.WS.CloseStatus(); got != websocket.StatusPolicyViolation {
		t.Errorf("vic's WebSocket closed with %v, want 1008", got)
	}
	if m := vic.WS.Received(testpeer.IDError); len(m) == 0 || !strings.Contains(m[len(m)-1].Message, "token expired") {
		t.Errorf("vic was told %+v, want that the token expired", m)
	}
	srv.WaitCounts(t, timeout, live.Counts{Rooms: 1, Viewers: 1, Sessions: 2, Pipelines: 1, Endpoints: 2})
	time.Sleep(time.Until(valUntil.Add(2 * time.Second)))
	select {
	case <-val.WS.Done():
		t.Fatal("val's WebSocket was closed though its token was refreshed")
	default:
	}
	srv.WaitCounts(t, timeout, live.Counts{Rooms: 1, Viewers: 1, Sessions: 2, Pipelines: 1, Endpoints: 2})
	wantMoreMedia(t, val, 10)
	if !strings.Contains(srv.Log(), "WebSocket token expired, closing") {
		t.Error("no log line of the expired token")
	}
}
