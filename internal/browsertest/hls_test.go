package browsertest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// hlsJS is hls.js, installed from npm at run time (never committed):
// $ONAIR_HLSJS, else testdata/node_modules/hls.js/dist/hls.min.js, which
// scripts/test.sh installs before the tests (npm cannot reach the registry
// from the tests' network namespace).
func hlsJS(t *testing.T) string {
	t.Helper()
	path := os.Getenv("ONAIR_HLSJS")
	if path == "" {
		path = filepath.Join("testdata", "node_modules", "hls.js", "dist", "hls.min.js")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		unavailable(t, "hls.js not found (%v): install it with "+
			"`npm install --no-save --no-package-lock --prefix internal/browsertest/testdata hls.js@1.7.4` "+
			"(scripts/test.sh does), or point ONAIR_HLSJS at hls.min.js", err)
	}
	return string(b)
}

// TestHLSPlaysInChromium: the presenter's page publishes H.264 (its codec
// preference), so the room is also served as LL-HLS; a viewer's page with
// hls.js plays it from the room's HLS button: the player reaches
// "playing" and the video's time advances.
func TestHLSPlaysInChromium(t *testing.T) {
	b := newBrowser(t) // first: it skips or fails when the browser cannot run
	script := hlsJS(t)
	srv := startServer(t)

	presenter := b.open("presenter", srv.url)
	presenter.setIdentity(presenterID)
	presenter.goLive("Live over HLS")
	presenter.waitJS(`(async () => {
		const s = window.onair.presenter;
		if (!s || !s.pc) return false;
		let h264 = false;
		(await s.pc.getStats()).forEach((r) => {
			if (r.type === 'codec' && r.mimeType.toLowerCase() === 'video/h264') h264 = true;
		});
		return h264;
	})()`, 10*time.Second, "the presenter to send H.264")

	viewer := b.open("viewer", srv.url)
	if ok, err := eval[bool](viewer, script+";\ntypeof window.Hls === 'function' && window.Hls.isSupported()"); err != nil || !ok {
		t.Fatalf("hls.js in the page: supported %v, %v", ok, err)
	}
	sel := roomSelector(presenterID) + ` button.watch-hls`
	viewer.waitJS(fmt.Sprintf(`!!document.querySelector(%q)`, sel), 10*time.Second, "the room's HLS button")
	viewer.do("clicking HLS", chromedp.Click(chromedp.CSS(sel)))
	viewer.waitWatch("playing", 45*time.Second)

	start, err := eval[float64](viewer, `document.querySelector('#remote').currentTime`)
	if err != nil {
		t.Fatal(err)
	}
	viewer.waitJS(`(() => { const v = document.querySelector('#remote');
		return !v.paused && v.videoWidth > 0 && v.currentTime > `+strconv.FormatFloat(start+2, 'f', 3, 64)+`; })()`,
		20*time.Second, "the HLS video to advance 2 s")
	viewer.screenshot("hls-playing")

	presenter.click("end-btn")
	srv.waitEmpty(t, 10*time.Second)
}
