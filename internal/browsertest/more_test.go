package browsertest_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPlainHTTPOnLocalhost: with TLS off (the default) the page works on
// http://localhost, which browsers count as a secure context for the camera.
func TestPlainHTTPOnLocalhost(t *testing.T) {
	b := newBrowser(t) // first: it skips or fails when the browser cannot run
	srv := startServer(t)
	if !strings.HasPrefix(srv.url, "http://127.0.0.1:") {
		t.Fatalf("plain HTTP must be the default; server is at %s", srv.url)
	}
	url := strings.Replace(srv.url, "127.0.0.1", "localhost", 1)

	presenter := b.open("presenter", url)
	presenter.setIdentity(presenterID)
	presenter.goLive("Plain HTTP on localhost")
	viewers := joinViewers(t, b, url, 1)
	checkMediaFlows(t, viewers, 2*time.Second)
	viewers[0].waitJS(`document.querySelector('#transport').textContent === 'HTTP and WS'`, time.Second, "the footer to say HTTP and WS")

	presenter.click("end-btn")
	waitAllWatch(t, viewers, "ended", 2*time.Second)
	srv.waitEmpty(t, 5*time.Second)
	viewers[0].screenshot("ended")
}

// TestViewerSeesRejection: a room whose presenter created it but never sent
// an offer cannot be watched. The server rejects the viewer's offer; the page
// shows "Failed" with the server's reason and gives the seat back.
func TestViewerSeesRejection(t *testing.T) {
	b := newBrowser(t) // first: it skips or fails when the browser cannot run
	srv := startServer(t, "-tls-self-signed", "-presenter-wait", "1s")
	const ghost = "ghost@onair.test"
	missingImage := srv.url + "/no-such-avatar.png"
	code, body := srv.rest(t, http.MethodPost, "/signal/room/live", ghost,
		fmt.Sprintf(`{"roomId":%q,"title":"Never starts","profileUrl":%q}`, ghost, missingImage))
	if code != http.StatusCreated {
		t.Fatalf("POST /room/live: %d %s", code, body)
	}
	viewer := b.open("viewer", srv.url)
	viewer.setIdentity("viewer@onair.test")
	viewer.waitRoomCount(ghost, 0, 10*time.Second)
	// A profile image that does not load falls back to drawn initials.
	viewer.waitJS(fmt.Sprintf(`document.querySelector(%q).src.startsWith('data:image/svg+xml')`, roomSelector(ghost)+" img.avatar"),
		5*time.Second, "the broken profile image to fall back to initials")
	viewer.screenshot("room-list")

	viewer.clickWatch(ghost)
	ws := viewer.waitWatch("failed", 15*time.Second)
	if strings.TrimSpace(ws.Detail) == "" {
		t.Errorf("the page shows %q with no reason", ws.Text)
	}
	t.Logf("the viewer reads: %q / %q", ws.Text, ws.Detail)
	viewer.waitJS(`!document.querySelector('#retry-btn').hidden`, time.Second, "a Try again button")
	if !waitFor(5*time.Second, func() bool { return srv.app.Service().Counts().Viewers == 0 }) {
		t.Fatalf("the failed viewer still holds a seat: %+v", srv.app.Service().Counts())
	}
	viewer.waitRoomCount(ghost, 0, 10*time.Second)
	viewer.screenshot("rejected")

	if code, body := srv.rest(t, http.MethodDelete, "/signal/room/live", ghost, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE /room/live: %d %s", code, body)
	}
	srv.waitEmpty(t, 5*time.Second)
}
