package browsertest_test

import (
	"net/url"
	"testing"
	"time"
)

// TestSimulcastFromThePage: the demo page goes live with three simulcast
// layers (sendEncodings l/m/h at a quarter, half and full resolution). A
// WHEP player opened with &layer=l plays the lowest layer, and one without
// the best layer that flows: the low player's picture is at most half as
// wide as the other's, and both flow. The server shows each player's layer.
func TestSimulcastFromThePage(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t, "-tls-self-signed")

	presenter := b.open("presenter", srv.url)
	presenter.setIdentity(presenterID)
	presenter.goLive("Simulcast")
	encodings, err := eval[int](presenter, `(() => {
		const s = window.onair.presenter;
		const sender = s && s.pc && s.pc.getSenders().find((x) => x.track && x.track.kind === 'video');
		return sender ? sender.getParameters().encodings.length : -1;
	})()`)
	if err != nil || encodings != 3 {
		t.Fatalf("the presenter's video sender has %d encodings (%v), want 3", encodings, err)
	}

	low := b.open("low", srv.url+"/?whep="+url.QueryEscape(presenterID)+"&layer=l")
	top := b.open("top", srv.url+"/?whep="+url.QueryEscape(presenterID))
	viewers := []*page{low, top}
	for _, v := range viewers {
		v.waitWatch("playing", 30*time.Second)
	}
	// Chromium starts its layers at a low bitrate and adds the top one as
	// its estimate of the uplink grows; the top player follows.
	var lm, tm media
	if !waitFor(30*time.Second, func() bool {
		var err1, err2 error
		lm, err1 = low.media()
		tm, err2 = top.media()
		return err1 == nil && err2 == nil && lm.VideoWidth > 0 && tm.VideoWidth >= 2*lm.VideoWidth
	}) {
		t.Fatalf("the low player shows %dx%d and the top one %dx%d: want the low picture at most half as wide",
			lm.VideoWidth, lm.VideoHeight, tm.VideoWidth, tm.VideoHeight)
	}
	t.Logf("low layer %dx%d, top layer %dx%d", lm.VideoWidth, lm.VideoHeight, tm.VideoWidth, tm.VideoHeight)
	checkMediaFlows(t, viewers, 3*time.Second)

	var eps []struct {
		EndpointName string `json:"endpointName"`
		Stats        struct {
			Layer       string `json:"layer"`
			LayerPinned bool   `json:"layerPinned"`
		} `json:"stats"`
	}
	srv.endpoints(t, presenterID, &eps)
	// The pinned player is on l; the other is on whatever its estimate and
	// Chromium's layers allow at the moment (Chromium drops its top layers
	// when its CPU is short, as on a busy machine), and not pinned.
	pinned, free := 0, 0
	for _, ep := range eps {
		switch {
		case ep.Stats.Layer == "l" && ep.Stats.LayerPinned:
			pinned++
		case ep.Stats.Layer != "" && !ep.Stats.LayerPinned:
			free++
			t.Logf("the unpinned player is on layer %s now", ep.Stats.Layer)
		}
	}
	if pinned != 1 || free != 1 {
		t.Errorf("the server's view of the two players: %+v, want one pinned on l and one not pinned", eps)
	}
	low.screenshot("simulcast-low-layer")
	top.screenshot("simulcast-top-layer")
}
