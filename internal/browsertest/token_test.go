package browsertest_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/auth"
)

// browserSecret signs the tokens of TestDemoPageWithTokens.
const browserSecret = "browser-test-secret-0123456789abcdef"

func browserToken(t *testing.T, sub string, grants ...string) string {
	t.Helper()
	tok, err := auth.Mint([]byte(browserSecret), auth.Claims{Subject: sub, Grants: grants,
		ExpiresAt: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestDemoPageWithTokens: against a server started with -auth-secret, the
// demo page opened with ?token= goes live (REST and WebSocket), a viewer
// watches over the WebSocket and another over WHEP, each with its own
// token; the page takes each identity from its token. Without a token the
// page says it needs one.
func TestDemoPageWithTokens(t *testing.T) {
	b := newBrowser(t) // first: it skips or fails when the browser cannot run
	srv := startServer(t, "-tls-self-signed", "-auth-secret", browserSecret)

	presenter := b.open("presenter", srv.url+"/?token="+url.QueryEscape(browserToken(t, presenterID, "publish")))
	presenter.waitJS(fmt.Sprintf(`document.querySelector('#me').value === %q`, presenterID), time.Second,
		"the identity taken from the token")
	presenter.goLive("Live with tokens")

	viewer := b.open("websocket-viewer", srv.url+"/?token="+url.QueryEscape(browserToken(t, "viewer@onair.test", "view")))
	viewer.clickWatch(presenterID)
	whep := b.open("whep-viewer", srv.url+"/?whep="+url.QueryEscape(presenterID)+
		"&token="+url.QueryEscape(browserToken(t, "whep@onair.test", "view")))
	viewers := []*page{viewer, whep}
	for _, v := range viewers {
		v.waitWatch("playing", 30*time.Second)
	}
	checkMediaFlows(t, viewers, 3*time.Second)
	presenter.waitStudioCount(2, 10*time.Second)
	if c := srv.app.Service().Counts(); c.Rooms != 1 || c.Viewers != 2 || c.Endpoints != 3 {
		t.Fatalf("server counts with a presenter and 2 viewers: %+v", c)
	}
	viewer.screenshot("playing-with-token")

	presenter.click("end-btn")
	waitAllWatch(t, []*page{viewer}, "ended", 5*time.Second)
	presenter.waitJS(`document.querySelector('#studio-badge').dataset.state === 'ended'`, 5*time.Second, "the studio to show Ended")
	srv.waitEmpty(t, 10*time.Second)
}
