package browsertest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// page is one tab of the browser showing the demo page: what a user sees and
// does, in the page's own words (its data-state attributes and texts).
type page struct {
	t     *testing.T
	name  string
	ctx   context.Context
	close context.CancelFunc
	logs  sync.WaitGroup
}

// open loads url in a new tab and waits until the page has found the API.
func (b *browser) open(name, url string) *page {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	p := &page{t: b.t, name: name, ctx: ctx}
	var once sync.Once
	p.close = func() {
		once.Do(func() {
			cancel()
			p.logs.Wait()
		})
	}
	b.t.Cleanup(p.close)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		b.t.Fatalf("%s: opening a tab: %v", name, err)
	}
	messages := chromedp.Console(ctx)
	p.logs.Add(1)
	go func() {
		defer p.logs.Done()
		for m, err := range messages {
			if err != nil {
				return
			}
			p.t.Logf("%s console %s", name, m)
		}
	}()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("%s: loading %s: %v", name, url, err)
	}
	p.waitJS(`document.body.dataset.ready === 'true'`, 15*time.Second, "the page to reach the API")
	return p
}

// eval runs a JavaScript expression (awaiting a promise) and decodes its value.
func eval[T any](p *page, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %s: %v\n%s", p.name, what, err, p.describe())
	}
}

// waitJS polls a boolean expression until it is true or within has passed.
func (p *page) waitJS(expr string, within time.Duration, what string) {
	p.t.Helper()
	var lastErr error
	ok := waitFor(within, func() bool {
		v, err := eval[bool](p, expr)
		lastErr = err
		return err == nil && v
	})
	if !ok {
		p.t.Fatalf("%s: waited %v for %s (last error: %v)\n%s", p.name, within, what, lastErr, p.describe())
	}
}

// describe is what the page shows, for failure messages.
func (p *page) describe() string {
	s, err := eval[string](p, `JSON.stringify({
		studio: document.querySelector('#studio-status').dataset.state + ': ' + document.querySelector('#studio-status').textContent,
		watch: document.querySelector('#player').hidden ? '(not watching)' :
			document.querySelector('#watch-state').dataset.state + ': ' + document.querySelector('#watch-state').textContent +
			' / ' + document.querySelector('#watch-detail').textContent,
		rooms: [...document.querySelectorAll('#rooms .room')].map(li => li.dataset.roomId + ' ' + li.querySelector('.count').textContent),
		banner: document.querySelector('#banner').hidden ? '' : document.querySelector('#banner').textContent,
		identityError: document.querySelector('#identity-error').hidden ? '' : document.querySelector('#identity-error').textContent,
	})`)
	if err != nil {
		return fmt.Sprintf("%s shows: (cannot read the page: %v)", p.name, err)
	}
	return fmt.Sprintf("%s shows: %s", p.name, s)
}

// typeInto empties a text field and types text into it, key by key.
func (p *page) typeInto(id, text string) {
	p.t.Helper()
	if _, err := eval[string](p, fmt.Sprintf(`document.getElementById(%q).value = ''`, id)); err != nil {
		p.t.Fatalf("%s: emptying #%s: %v", p.name, id, err)
	}
	p.do("typing into #"+id, chromedp.SendKeys(chromedp.ID(id), text))
}

// setIdentity types the user's name or email.
func (p *page) setIdentity(id string) {
	p.t.Helper()
	p.typeInto("me", id)
}

// goLive types a title, presses "Go live" and waits until the page says live.
func (p *page) goLive(title string) {
	p.t.Helper()
	p.typeInto("title", title)
	p.do("going live", chromedp.Click(chromedp.ID("golive-btn")))
	p.waitJS(`document.querySelector('#studio-badge').dataset.state === 'live'
		&& document.querySelector('#studio-badge').textContent === 'LIVE'
		&& document.querySelector('#preview').videoWidth > 0`, 20*time.Second, "the studio to show LIVE with a camera preview")
}

func roomSelector(roomID string) string {
	return fmt.Sprintf(`#rooms .room[data-room-id=%q]`, roomID)
}

// clickWatch waits for the room in the list and clicks its Watch button.
func (p *page) clickWatch(roomID string) {
	p.t.Helper()
	sel := roomSelector(roomID) + ` button.watch`
	p.waitJS(fmt.Sprintf(`(() => { const b = document.querySelector(%q); return !!b && !b.disabled && b.textContent === 'Watch'; })()`, sel),
		10*time.Second, "the room "+roomID+" in the list")
	p.do("clicking Watch", chromedp.Click(chromedp.CSS(sel)))
}

func (p *page) click(id string) {
	p.t.Helper()
	p.do("clicking #"+id, chromedp.Click(chromedp.ID(id)))
}

// watchState is the player's state and the words the user reads.
type watchState struct {
	State  string `json:"state"`
	Text   string `json:"text"`
	Detail string `json:"detail"`
}

func (p *page) watchState() (watchState, error) {
	return eval[watchState](p, `({
		state: document.querySelector('#watch-state').dataset.state,
		text: document.querySelector('#watch-overlay').hidden ? 'Playing (no overlay)' : document.querySelector('#watch-state').textContent,
		detail: document.querySelector('#watch-detail').textContent,
	})`)
}

// wantWatchText is what the user reads in each state.
var wantWatchText = map[string]string{
	"connecting": "Connecting…",
	"playing":    "Playing (no overlay)",
	"ended":      "Ended by the presenter",
	"failed":     "Failed",
}

// waitWatch waits until the player shows state, by its data-state and text.
func (p *page) waitWatch(state string, within time.Duration) watchState {
	p.t.Helper()
	var ws watchState
	ok := waitFor(within, func() bool {
		var err error
		ws, err = p.watchState()
		return err == nil && ws.State == state && ws.Text == wantWatchText[state]
	})
	if !ok {
		p.t.Fatalf("%s: waited %v for the player to show %q; it shows %+v\n%s", p.name, within, state, ws, p.describe())
	}
	return ws
}

// media is what the viewer's video element and RTCPeerConnection report.
type media struct {
	VideoWidth           int      `json:"videoWidth"`
	VideoHeight          int      `json:"videoHeight"`
	FramesDecoded        int      `json:"framesDecoded"`
	AudioPacketsReceived int      `json:"audioPacketsReceived"`
	JoinMS               *float64 `json:"joinMs"`
}

func (p *page) media() (media, error) {
	return eval[media](p, `(async () => {
		const v = document.querySelector('#remote');
		const out = { videoWidth: v.videoWidth, videoHeight: v.videoHeight, framesDecoded: 0, audioPacketsReceived: 0,
			joinMs: window.onair.watch ? window.onair.watch.joinMs : null };
		const s = window.onair.viewer;
		if (!s || !s.pc) return out;
		(await s.pc.getStats()).forEach((r) => {
			if (r.type !== 'inbound-rtp') return;
			if (r.kind === 'video') out.framesDecoded = r.framesDecoded || 0;
			if (r.kind === 'audio') out.audioPacketsReceived = r.packetsReceived || 0;
		});
		return out;
	})()`)
}

// roomCount is the viewer count the list shows for a room: the number in
// its data-count and the text the user reads.
func (p *page) roomCount(roomID string) (string, error) {
	return eval[string](p, fmt.Sprintf(`(() => {
		const c = document.querySelector(%q);
		return c ? c.textContent : '(room not listed)';
	})()`, roomSelector(roomID)+` .count`))
}

func (p *page) waitRoomCount(roomID string, n int, within time.Duration) {
	p.t.Helper()
	want := fmt.Sprintf("%d watching", n)
	var got string
	if !waitFor(within, func() bool {
		var err error
		got, err = p.roomCount(roomID)
		return err == nil && got == want
	}) {
		p.t.Fatalf("%s: waited %v for the list to show %q for %s; it shows %q\n%s", p.name, within, want, roomID, got, p.describe())
	}
}

// waitStudioCount waits until a presenter's studio shows n viewers.
func (p *page) waitStudioCount(n int, within time.Duration) {
	p.t.Helper()
	p.waitJS(fmt.Sprintf(`!document.querySelector('#studio-live-count').hidden
		&& document.querySelector('#studio-live-count').textContent.trim() === '%d watching'`, n),
		within, fmt.Sprintf("the studio to show %d watching", n))
}

var artifacts struct {
	once sync.Once
	dir  string
	err  error
}

// artifactDir is where screenshots go: $ONAIR_ARTIFACTS, else a new
// directory under the system's temp dir that outlives the test run.
func artifactDir(t *testing.T) string {
	t.Helper()
	artifacts.once.Do(func() {
		if d := os.Getenv("ONAIR_ARTIFACTS"); d != "" {
			artifacts.dir, artifacts.err = d, os.MkdirAll(d, 0o755)
			return
		}
		artifacts.dir, artifacts.err = os.MkdirTemp("", "onair-browsertest-")
	})
	if artifacts.err != nil {
		t.Fatal(artifacts.err)
	}
	return artifacts.dir
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// screenshot saves what the tab shows as a PNG artifact and logs its path.
func (p *page) screenshot(label string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 15*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	name := unsafeName.ReplaceAllString(strings.Join([]string{p.t.Name(), p.name, label}, "-"), "_") + ".png"
	path := filepath.Join(artifactDir(p.t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot of %s (%s): %s", p.name, label, path)
	return path
}
