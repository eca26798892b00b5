package browsertest_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// clickWHEP waits for the room in the list and clicks its WHEP button.
func (p *page) clickWHEP(roomID string) {
	p.t.Helper()
	sel := roomSelector(roomID) + ` button.watch-whep`
	p.waitJS(fmt.Sprintf(`(() => { const b = document.querySelector(%q); return !!b && !b.disabled && !b.hidden; })()`, sel),
		10*time.Second, "the room "+roomID+" in the list with a WHEP button")
	p.do("clicking WHEP", chromedp.Click(chromedp.CSS(sel)))
}

// TestWHIPBroadcastOnWHEPPlayer: a WHEP player of a room that is not live
// fails with the server's reason. Then the presenter goes live with the page's
// "Publish with WHIP" (Chromium's camera, over WHIP, no WebSocket); one
// viewer plays it in the WHEP player mode opened by URL (/?whep=<room>),
// another from the room list's WHEP button, a third over the WebSocket
// protocol. All three decode the picture; a WHEP viewer's Leave releases its
// seat (DELETE); the presenter's End (DELETE of the WHIP session) ends the
// broadcast for both kinds of viewer, and nothing is left on the server.
func TestWHIPBroadcastOnWHEPPlayer(t *testing.T) {
	b := newBrowser(t) // first: it skips or fails when the browser cannot run
	srv := startServer(t, "-tls-self-signed")

	// A WHEP player of a room that is not live shows why it failed.
	missing := b.open("whep-missing", srv.url+"/?whep=nobody")
	ws0 := missing.waitWatch("failed", 10*time.Second)
	if !strings.Contains(ws0.Detail, "404") {
		t.Errorf("a WHEP player of a room that does not exist reads %q / %q, want the 404 and its reason", ws0.Text, ws0.Detail)
	}
	t.Logf("a WHEP player of a room not live reads: %q / %q", ws0.Text, ws0.Detail)
	missing.waitJS(`!document.querySelector('#retry-btn').hidden`, time.Second, "a Try again button")
	missing.close()

	presenter := b.open("presenter", srv.url)
	presenter.setIdentity(presenterID)
	presenter.do("choosing WHIP", chromedp.Click(chromedp.ID("use-whip")))
	presenter.waitJS(`!document.querySelector('#stream-key-field').hidden`, time.Second, "the stream key field")
	presenter.goLive("Live over WHIP")
	if n := srv.app.WebSockets(); n != 0 {
		t.Errorf("a WHIP presenter has %d WebSockets open, want 0", n)
	}

	byURL := b.open("whep-by-url", srv.url+"/?whep="+url.QueryEscape(presenterID))
	byButton := b.open("whep-by-button", srv.url)
	byButton.clickWHEP(presenterID)
	ws := b.open("websocket-viewer", srv.url)
	ws.setIdentity("viewer@onair.test")
	ws.clickWatch(presenterID)
	viewers := []*page{byURL, byButton, ws}
	for _, v := range viewers {
		v.waitWatch("playing", 30*time.Second)
	}
	for _, v := range []*page{byURL, byButton} {
		v.waitJS(`!document.querySelector('#player-via').hidden && window.onair.watch.state === 'playing'`,
			time.Second, "the player to say WHEP")
	}
	checkMediaFlows(t, viewers, 3*time.Second)
	for _, p := range append([]*page{presenter}, viewers...) {
		p.waitRoomCount(presenterID, 3, 10*time.Second)
	}
	presenter.waitStudioCount(3, 10*time.Second)
	if c := srv.app.Service().Counts(); c.Rooms != 1 || c.Viewers != 3 || c.Endpoints != 4 {
		t.Fatalf("server counts with a WHIP presenter, 2 WHEP and 1 WebSocket viewers: %+v", c)
	}
	if n := srv.app.WebSockets(); n != 1 {
		t.Errorf("%d WebSockets open, want 1 (the WebSocket viewer's)", n)
	}
	byURL.screenshot("playing-over-whep")
	presenter.screenshot("live-over-whip")

	// A WHEP viewer leaves: its DELETE gives the seat back.
	byButton.click("leave-btn")
	byButton.waitJS(`document.querySelector('#player').hidden && !document.querySelector('#studio').hidden`,
		5*time.Second, "the player to close after Leave")
	for _, p := range []*page{presenter, byURL, ws} {
		p.waitRoomCount(presenterID, 2, 10*time.Second)
	}
	if !waitFor(5*time.Second, func() bool { return srv.app.Service().Counts().Viewers == 2 }) {
		t.Fatalf("server still counts %+v after a WHEP viewer left", srv.app.Service().Counts())
	}

	// The presenter ends: the WebSocket viewer hears stopCommunication; the
	// WHEP viewer, which nothing tells, sees its room go.
	presenter.click("end-btn")
	ended := time.Now()
	waitAllWatch(t, []*page{ws}, "ended", 2*time.Second)
	waitAllWatch(t, []*page{byURL}, "ended", 8*time.Second)
	t.Logf("the WHEP viewer showed %q %v after the presenter pressed End", wantWatchText["ended"], time.Since(ended).Round(time.Millisecond))
	presenter.waitJS(`document.querySelector('#studio-badge').dataset.state === 'ended'`, 5*time.Second, "the studio to show Ended")
	srv.waitEmpty(t, 5*time.Second)
	byURL.screenshot("ended")
}
