package app_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/record/recordtest"
	"github.com/onair-live/onair/internal/testpeer"
)

// hlsGet fetches a URL of the HLS tier.
func hlsGet(t *testing.T, url string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(within(t), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

// publishClip publishes a clip over WHIP to roomID and sends it in the
// background, at its pace, until it ends or the test does.
func publishClip(t *testing.T, origin, roomID, codec string, length time.Duration) {
	t.Helper()
	clip := recordtest.MakeClip(t, t.TempDir(), codec, length)
	pub := newMediaPublisher(t, clip.VideoMime)
	pub.publishWHIP(t, origin, roomID, "artist@x", "Live", "http://img/1.png")
	select { // here, not in sendUntil's goroutine, where t.Fatal may not be called
	case <-pub.connected:
	case <-within(t).Done():
		t.Fatal("the presenter's media did not connect")
	}
	stop, sent := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sent)
		pub.sendUntil(t, clip, stop)
	}()
	t.Cleanup(func() {
		close(stop)
		<-sent
	})
}

// playlistTag returns the attributes (or value) of the first line with tag.
func playlistTag(pl, tag string) string {
	for _, l := range strings.Split(pl, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), tag); ok {
			return strings.TrimPrefix(v, ":")
		}
	}
	return ""
}

func attr(attrs, name string) string {
	m := regexp.MustCompile(`(?:^|,)` + name + `=("[^"]*"|[^,]*)`).FindStringSubmatch(attrs)
	if m == nil {
		return ""
	}
	return strings.Trim(m[1], `"`)
}

// An H.264 + Opus WHIP broadcast is served as LL-HLS: gohlslib's client
// reads it with continuous timestamps, the playlists follow the LL-HLS
// rules, parts and segments are served with CDN headers, ffprobe reads the
// segments as h264 and opus, and HLS viewers are counted apart from the
// room's. The server's write timeout is shorter than a blocking request's
// wait: the HLS routes extend it.
func TestHLSEndToEnd(t *testing.T) {
	recordtest.NeedFFmpeg(t)
	srv := testpeer.StartServer(t, func(c *config.Config) { c.HTTPWriteTimeout = time.Second })
	origin := strings.TrimSuffix(srv.URL, srv.Config.BasePath)
	const roomID = "room-1"
	publishClip(t, origin, roomID, "h264", time.Minute)
	base := origin + "/hls/" + roomID + "/"

	// gohlslib's client reads the room: both tracks, timestamps that only
	// move forward, with no gap longer than a few frames.
	var (
		mu          sync.Mutex
		video, opus []int64
		parts       int
	)
	c := &gohlslib.Client{URI: base + "index.m3u8",
		OnDownloadPart: func(string) { mu.Lock(); parts++; mu.Unlock() }}
	c.OnTracks = func(tracks []*gohlslib.Track) error {
		for _, tr := range tracks {
			switch tr.Codec.(type) {
			case *codecs.H264:
				c.OnDataH26x(tr, func(pts, _ int64, _ [][]byte) { mu.Lock(); video = append(video, pts); mu.Unlock() })
			case *codecs.Opus:
				c.OnDataOpus(tr, func(pts int64, _ [][]byte) { mu.Lock(); opus = append(opus, pts); mu.Unlock() })
			}
		}
		return nil
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if !testpeer.Eventually(timeout, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(video) >= 4*recordtest.FrameRate && len(opus) >= 150 && parts >= 5
	}) {
		mu.Lock()
		t.Errorf("gohlslib client: %d video frames, %d opus packets, %d parts; want 120, 150, 5", len(video), len(opus), parts)
		mu.Unlock()
	}
	c.Close()
	mu.Lock()
	// A gap is at most one part (the client, on a loaded machine, may
	// give up one); a stall at a segment boundary (1-2 s) is not allowed.
	wantContinuous(t, "video", video, 90000, 500*time.Millisecond)
	wantContinuous(t, "opus", opus, 48000, 500*time.Millisecond)
	mu.Unlock()

	checkPlaylists(t, base)
	checkHLSMetrics(t, srv, origin, roomID)
}

// wantContinuous checks that timestamps (at clock Hz) increase, with no
// gap over maxGap, from the second group of pictures on: the client starts
// with whole segments before it follows parts, and under load it may skip
// into the live edge once at start.
func wantContinuous(t *testing.T, what string, pts []int64, clock int64, maxGap time.Duration) {
	t.Helper()
	start := 1
	for start < len(pts) && pts[start]-pts[0] < 2*clock {
		start++
	}
	for i := start + 1; i < len(pts); i++ {
		d := time.Duration((pts[i] - pts[i-1]) * int64(time.Second) / clock)
		if d <= 0 || d > maxGap {
			t.Errorf("%s: timestamp %d after %d (#%d of %d): a step of %s (want 0 < step ≤ %s)", what, pts[i], pts[i-1], i, len(pts), d, maxGap)
			return
		}
	}
}

// checkPlaylists checks the multivariant and media playlists against the
// LL-HLS rules, the headers for CDNs, a blocking reload, and probes a
// segment of each stream.
func checkPlaylists(t *testing.T, base string) {
	t.Helper()
	status, h, body := hlsGet(t, base+"index.m3u8", "Origin", "http://player.example")
	mv := string(body)
	if status != http.StatusOK || h.Get("Content-Type") != "application/vnd.apple.mpegurl" ||
		h.Get("Cache-Control") != "max-age=1" || h.Get("Access-Control-Allow-Origin") == "" {
		t.Fatalf("index.m3u8: %d %v\n%s", status, h, mv)
	}
	inf := playlistTag(mv, "#EXT-X-STREAM-INF")
	if cs := attr(inf, "CODECS"); !strings.Contains(cs, "avc1.") || !strings.Contains(cs, "opus") {
		t.Errorf("multivariant CODECS %q, want avc1 and opus:\n%s", cs, mv)
	}
	var media []string
	for _, l := range strings.Split(mv, "\n") {
		if l = strings.TrimSpace(l); strings.HasSuffix(l, ".m3u8") && !strings.HasPrefix(l, "#") {
			media = append(media, l)
		}
		if u := attr(playlistTag(l, "#EXT-X-MEDIA"), "URI"); u != "" {
			media = append(media, u)
		}
	}
	if len(media) != 2 {
		t.Fatalf("multivariant playlist names %v, want a video and an audio playlist:\n%s", media, mv)
	}
	probed := map[string]bool{}
	for _, name := range media {
		pl := checkMediaPlaylist(t, base, name)
		probed[probeSegment(t, base, pl)] = true
	}
	if !probed["h264"] || !probed["opus"] {
		t.Errorf("ffprobe read the segments as %v, want h264 and opus", probed)
	}
}

// checkMediaPlaylist checks one media playlist and returns it.
func checkMediaPlaylist(t *testing.T, base, name string) string {
	t.Helper()
	status, h, body := hlsGet(t, base+name)
	pl := string(body)
	if status != http.StatusOK || h.Get("Cache-Control") != "max-age=1" {
		t.Fatalf("%s: %d %v\n%s", name, status, h, pl)
	}
	target, _ := strconv.ParseFloat(playlistTag(pl, "#EXT-X-TARGETDURATION"), 64)
	partTarget, _ := strconv.ParseFloat(attr(playlistTag(pl, "#EXT-X-PART-INF"), "PART-TARGET"), 64)
	sc := playlistTag(pl, "#EXT-X-SERVER-CONTROL")
	holdBack, _ := strconv.ParseFloat(attr(sc, "PART-HOLD-BACK"), 64)
	if target < 1 || partTarget <= 0 || partTarget > 1 || attr(sc, "CAN-BLOCK-RELOAD") != "YES" ||
		holdBack < 2*partTarget || playlistTag(pl, "#EXT-X-MAP") == "" {
		t.Errorf("%s: target %v, part target %v, server control %q, want LL-HLS rules:\n%s", name, target, partTarget, sc, pl)
	}
	seq, _ := strconv.Atoi(playlistTag(pl, "#EXT-X-MEDIA-SEQUENCE"))
	segs, lastPart := 0, ""
	for _, l := range strings.Split(pl, "\n") {
		if v, ok := strings.CutPrefix(l, "#EXTINF:"); ok {
			d, _ := strconv.ParseFloat(strings.TrimSuffix(v, ","), 64)
			if d > target+0.5 {
				t.Errorf("%s: a segment of %vs over the target duration %v", name, d, target)
			}
			segs++
		}
		if v, ok := strings.CutPrefix(l, "#EXT-X-PART:"); ok {
			if d, _ := strconv.ParseFloat(attr(v, "DURATION"), 64); d > partTarget*1.5 {
				t.Errorf("%s: a part of %vs over the part target %v", name, d, partTarget)
			}
			lastPart = attr(v, "URI")
		}
	}
	hint := attr(playlistTag(pl, "#EXT-X-PRELOAD-HINT"), "URI")
	if segs == 0 || lastPart == "" || hint == "" || attr(playlistTag(pl, "#EXT-X-PRELOAD-HINT"), "TYPE") != "PART" {
		t.Fatalf("%s: want segments, parts and a preload hint:\n%s", name, pl)
	}
	status, h, body = hlsGet(t, base+lastPart)
	if status != http.StatusOK || len(body) == 0 || h.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("part %s: %d, %d bytes, %v", lastPart, status, len(body), h)
	}
	// Blocking reload: ask for the segment after the last complete one;
	// the answer waits for it.
	next := seq + segs
	status, _, body = hlsGet(t, base+name+"?_HLS_msn="+strconv.Itoa(next)+"&_HLS_part=0")
	if status != http.StatusOK || !strings.Contains(string(body), "#EXT-X-PART:") {
		t.Errorf("blocking reload for segment %d part 0: %d\n%s", next, status, body)
	}
	// A part past the end of the open segment is part 0 of the next: the
	// answer comes with that part, while the next segment is still open.
	status, _, body = hlsGet(t, base+name+"?_HLS_msn="+strconv.Itoa(next)+"&_HLS_part=50")
	if open, parts := openSegment(string(body)); status != http.StatusOK || open != next+1 || parts == 0 {
		t.Errorf("blocking reload for a part past segment %d's end: %d, open segment %d with %d parts, want %d with some:\n%s",
			next, status, open, parts, next+1, body)
	}
	if s, _, _ := hlsGet(t, base+"nope_part1.mp4"); s != http.StatusNotFound {
		t.Errorf("unknown part: %d, want 404", s)
	}
	return pl
}

// openSegment reads a media playlist's open segment (the one after the
// last complete one) and how many parts it has.
func openSegment(pl string) (msn, parts int) {
	msn, _ = strconv.Atoi(playlistTag(pl, "#EXT-X-MEDIA-SEQUENCE"))
	for _, l := range strings.Split(pl, "\n") {
		switch {
		case strings.HasPrefix(l, "#EXTINF:"):
			msn, parts = msn+1, 0
		case strings.HasPrefix(l, "#EXT-X-PART:"):
			parts++
		}
	}
	return msn, parts
}

// probeSegment joins a playlist's init file and first segment and returns
// the codec ffprobe reads in it.
func probeSegment(t *testing.T, base, pl string) string {
	t.Helper()
	init := attr(playlistTag(pl, "#EXT-X-MAP"), "URI")
	var seg string
	lines := strings.Split(pl, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "#EXTINF:") && i+1 < len(lines) && !strings.HasPrefix(lines[i-1], "#EXT-X-GAP") &&
			strings.TrimSpace(lines[i+1]) != "gap.mp4" {
			seg = strings.TrimSpace(lines[i+1])
			break
		}
	}
	var file []byte
	for _, name := range []string{init, seg} {
		status, _, body := hlsGet(t, base+name)
		if status != http.StatusOK {
			t.Fatalf("%s: %d", name, status)
		}
		file = append(file, body...)
	}
	path := filepath.Join(t.TempDir(), "segment.mp4")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	p := recordtest.Probe(t, path)
	if len(p.Streams) != 1 {
		t.Fatalf("ffprobe %s: streams %+v, want one", seg, p.Streams)
	}
	return p.Streams[0].CodecName
}

// checkHLSMetrics: one HLS viewer (this test's client) and one muxer in
// /metrics, while the room's WebRTC count stays 0.
func checkHLSMetrics(t *testing.T, srv *testpeer.Server, origin, roomID string) {
	t.Helper()
	var metrics string
	if !testpeer.Eventually(timeout, func() bool {
		_, _, body := hlsGet(t, origin+"/metrics")
		metrics = string(body)
		return strings.Contains(metrics, "\nonair_hls_viewers 1\n") && strings.Contains(metrics, "\nonair_hls_muxers 1\n")
	}) {
		t.Errorf("/metrics: want one HLS viewer and one muxer:\n%s", grepLines(metrics, "onair_hls"))
	}
	for _, r := range rooms(t, srv) {
		if r.RoomID == roomID && r.Count != "0" {
			t.Errorf("room count %s, want 0: HLS viewers are not the room's viewers", r.Count)
		}
	}
}

// A VP8 room answers 404 with a plain-text reason; a room that is not live
// answers 404; the muxer stops once idle, and its endpoint goes.
func TestHLSRefusalsAndIdle(t *testing.T) {
	recordtest.NeedFFmpeg(t)
	srv := testpeer.StartServer(t, func(c *config.Config) { c.HLSIdleTimeout = 3 * time.Second })
	origin := strings.TrimSuffix(srv.URL, srv.Config.BasePath)
	status, h, body := hlsGet(t, origin+"/hls/nobody/index.m3u8")
	if status != http.StatusNotFound || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") ||
		!strings.Contains(string(body), "no live broadcast") {
		t.Errorf("a room not live: %d %q, want 404 with a reason", status, body)
	}
	publishClip(t, origin, "room-vp8", "vp8", 4*time.Second)
	status, h, body = hlsGet(t, origin+"/hls/room-vp8/index.m3u8")
	if status != http.StatusNotFound || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") ||
		!strings.Contains(string(body), "VP8") {
		t.Errorf("a VP8 room: %d %q, want 404 saying VP8 cannot be carried", status, body)
	}
	hlsEndpoint := func() bool {
		for _, ep := range endpointsOf(t, srv, "artist@x") {
			if ep.EndpointName == "hls:room-vp8" {
				return true
			}
		}
		return false
	}
	if !hlsEndpoint() {
		t.Errorf("no HLS endpoint in %+v", endpointsOf(t, srv, "artist@x"))
	}
	if !testpeer.Eventually(timeout, func() bool {
		return !hlsEndpoint()
	}) {
		t.Errorf("the refused HLS muxer's endpoint is still there after the idle timeout: %+v", endpointsOf(t, srv, "artist@x"))
	}
}

// With tokens on, HLS follows WHEP's rules: a token with the view grant on
// the room, as Authorization: Bearer or as ?token= (for players that
// cannot set headers); none is 401, another room's is 403.
func TestHLSTokens(t *testing.T) {
	srv := testpeer.StartServer(t, withTokens)
	origin := strings.TrimSuffix(srv.URL, srv.Config.BasePath)
	url := origin + "/hls/room-1/index.m3u8"
	if status, h, body := hlsGet(t, url); status != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %d %q, want 401", status, body)
	}
	if status, _, body := hlsGet(t, url, "Authorization", "Bearer "+mintToken(t, "vic@example.com", "room-2", "view")); status != http.StatusForbidden {
		t.Errorf("another room's token: %d %q, want 403", status, body)
	}
	if status, _, body := hlsGet(t, url, "Authorization", "Bearer "+mintToken(t, "ann@example.com", "room-1", "publish")); status != http.StatusForbidden {
		t.Errorf("a token without the view grant: %d %q, want 403", status, body)
	}
	// Past the token checks, the room is not live: 404.
	if status, _, body := hlsGet(t, url, "Authorization", "Bearer "+mintToken(t, "vic@example.com", "room-1", "view")); status != http.StatusNotFound {
		t.Errorf("a viewer's token in the header: %d %q, want 404 (not live)", status, body)
	}
	if status, _, body := hlsGet(t, url+"?token="+mintToken(t, "vic@example.com", "", "view")); status != http.StatusNotFound {
		t.Errorf("a viewer's token in the query: %d %q, want 404 (not live)", status, body)
	}
}
