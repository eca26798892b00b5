package browsertest_test

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

const presenterID = "presenter@onair.test"

// joinViewers opens n viewer tabs, each with its own identity, and has each
// click Watch on the presenter's room in the list; it waits until every one
// plays, and logs the time from each click to its first picture.
func joinViewers(t *testing.T, b *browser, url string, n int) []*page {
	t.Helper()
	viewers := make([]*page, n)
	for i := range viewers {
		viewers[i] = b.open(fmt.Sprintf("viewer%d", i+1), url)
		viewers[i].setIdentity(fmt.Sprintf("viewer%d@onair.test", i+1))
	}
	for _, v := range viewers {
		v.clickWatch(presenterID)
	}
	for _, v := range viewers {
		v.waitWatch("playing", 30*time.Second)
		m, err := v.media()
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if m.JoinMS == nil {
			t.Fatalf("%s plays but its page recorded no first-frame time\n%s", v.name, v.describe())
		}
		t.Logf("%s: %v from the Watch click to the first decoded frame (%dx%d)",
			v.name, time.Duration(*m.JoinMS*float64(time.Millisecond)).Round(time.Millisecond), m.VideoWidth, m.VideoHeight)
	}
	return viewers
}

// checkMediaFlows asserts that each viewer shows a picture and that its
// decoded video frames and received audio packets rise over the interval.
func checkMediaFlows(t *testing.T, viewers []*page, over time.Duration) {
	t.Helper()
	before := make([]media, len(viewers))
	for i, v := range viewers {
		m, err := v.media()
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		before[i] = m
	}
	time.Sleep(over) // counters are measured over a span of time
	for i, v := range viewers {
		after, err := v.media()
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if after.VideoWidth == 0 || after.VideoHeight == 0 {
			t.Errorf("%s: <video> is %dx%d: no picture", v.name, after.VideoWidth, after.VideoHeight)
		}
		if after.FramesDecoded <= before[i].FramesDecoded {
			t.Errorf("%s: framesDecoded %d then %d over %v: video is not flowing", v.name, before[i].FramesDecoded, after.FramesDecoded, over)
		}
		if after.AudioPacketsReceived <= before[i].AudioPacketsReceived {
			t.Errorf("%s: audio packetsReceived %d then %d over %v: audio is not flowing",
				v.name, before[i].AudioPacketsReceived, after.AudioPacketsReceived, over)
		}
		t.Logf("%s over %v: framesDecoded %d→%d, audio packetsReceived %d→%d, video %dx%d", v.name, over,
			before[i].FramesDecoded, after.FramesDecoded, before[i].AudioPacketsReceived, after.AudioPacketsReceived,
			after.VideoWidth, after.VideoHeight)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// waitAllWatch waits, in parallel, until every page's player shows state.
func waitAllWatch(t *testing.T, pages []*page, state string, within time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]string, len(pages))
	for i, p := range pages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ws watchState
			if !waitFor(within, func() bool {
				var err error
				ws, err = p.watchState()
				return err == nil && ws.State == state && ws.Text == wantWatchText[state]
			}) {
				errs[i] = fmt.Sprintf("%s: after %v the player shows %+v, not %q", p.name, within, ws, state)
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Error(e)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// TestThreeViewersWatchLeaveAndEnd is the life of a broadcast in real
// browsers over HTTPS: a presenter goes live with the fake camera and
// microphone, three viewers join from the room list and play, one leaves,
// and the presenter ends it.
func TestThreeViewersWatchLeaveAndEnd(t *testing.T) {
	b := newBrowser(t) // first: it skips or fails when the browser cannot run
	srv := startServer(t, "-tls-self-signed")

	presenter := b.open("presenter", srv.url)
	presenter.setIdentity(presenterID)
	presenter.goLive("Morning rehearsal")

	viewers := joinViewers(t, b, srv.url, 3)
	checkMediaFlows(t, viewers, 3*time.Second)
	for _, p := range append([]*page{presenter}, viewers...) {
		p.waitRoomCount(presenterID, 3, 10*time.Second)
	}
	presenter.waitStudioCount(3, 10*time.Second)
	if c := srv.app.Service().Counts(); c.Rooms != 1 || c.Viewers != 3 || c.Endpoints != 4 {
		t.Fatalf("server counts with 1 presenter and 3 viewers: %+v", c)
	}
	viewers[0].screenshot("playing")
	presenter.screenshot("live-with-3-viewers")

	// A viewer leaves: the others see the count drop.
	viewers[2].click("leave-btn")
	viewers[2].waitJS(`document.querySelector('#player').hidden && !document.querySelector('#studio').hidden`,
		5*time.Second, "the player to close after Leave")
	for _, p := range []*page{presenter, viewers[0], viewers[1], viewers[2]} {
		p.waitRoomCount(presenterID, 2, 10*time.Second)
	}
	presenter.waitStudioCount(2, 10*time.Second)
	if !waitFor(5*time.Second, func() bool { return srv.app.Service().Counts().Viewers == 2 }) {
		t.Fatalf("server still counts %+v after a viewer left", srv.app.Service().Counts())
	}
	viewers[2].screenshot("room-list-after-leaving")

	// The presenter ends: every remaining viewer sees it within 2 seconds.
	presenter.click("end-btn")
	ended := time.Now()
	waitAllWatch(t, viewers[:2], "ended", 2*time.Second)
	t.Logf("viewers showed %q %v after the presenter pressed End", wantWatchText["ended"], time.Since(ended).Round(time.Millisecond))
	presenter.waitJS(`document.querySelector('#studio-badge').dataset.state === 'ended'`, 5*time.Second, "the studio to show Ended")
	srv.waitEmpty(t, 5*time.Second)
	for _, v := range viewers[:2] {
		v.waitJS(fmt.Sprintf(`!document.querySelector(%q)`, roomSelector(presenterID)), 10*time.Second, "the ended room to leave the list")
	}
	viewers[0].screenshot("ended")
}

// TestPresenterTabClosed: the presenter's tab goes away without ending the
// broadcast; the server notices the closed WebSocket, every viewer sees the
// broadcast end, and nothing is left on the server.
func TestPresenterTabClosed(t *testing.T) {
	b := newBrowser(t) // first: it skips or fails when the browser cannot run
	srv := startServer(t, "-tls-self-signed")

	presenter := b.open("presenter", srv.url)
	presenter.setIdentity(presenterID)
	presenter.goLive("Here one moment")
	viewers := joinViewers(t, b, srv.url, 2)
	checkMediaFlows(t, viewers, 2*time.Second)

	presenter.close() // no End press, no DELETE /room/live
	closed := time.Now()
	waitAllWatch(t, viewers, "ended", 5*time.Second)
	t.Logf("viewers showed %q %v after the presenter's tab closed", wantWatchText["ended"], time.Since(closed).Round(time.Millisecond))
	srv.waitEmpty(t, 5*time.Second)
	viewers[0].screenshot("ended-after-presenter-vanished")
}
