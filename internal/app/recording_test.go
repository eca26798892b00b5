package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/onair-live/onair/internal/config"
	"github.com/onair-live/onair/internal/record/recordtest"
	"github.com/onair-live/onair/internal/testpeer"
)

// clipLength is how long each test broadcast sends media.
const clipLength = 3 * time.Second

// mediaPublisher is a presenter that sends real encoded media (a clip made
// by ffmpeg) at its real pace through a pion peer connection.
type mediaPublisher struct {
	pc           *webrtc.PeerConnection
	video, audio *webrtc.TrackLocalStaticSample
	connected    chan struct{}
	wg           sync.WaitGroup
	closeOnce    sync.Once
}

func newMediaPublisher(t *testing.T, videoMime string) *mediaPublisher {
	t.Helper()
	m := &webrtc.MediaEngine{}
	video := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: videoMime, ClockRate: 90000,
		RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}}, PayloadType: 96}
	if videoMime == webrtc.MimeTypeH264 {
		video.SDPFmtpLine = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
	}
	audio := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus,
		ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}
	if err := m.RegisterCodec(video, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterCodec(audio, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &mediaPublisher{pc: pc, connected: make(chan struct{})}
	t.Cleanup(p.close)
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(p.connected) })
		}
	})
	if p.video, err = webrtc.NewTrackLocalStaticSample(video.RTPCodecCapability, "video", "pub"); err != nil {
		t.Fatal(err)
	}
	if p.audio, err = webrtc.NewTrackLocalStaticSample(audio.RTPCodecCapability, "audio", "pub"); err != nil {
		t.Fatal(err)
	}
	for _, tr := range []webrtc.TrackLocal{p.video, p.audio} {
		x, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		p.wg.Add(1)
		go func() { // read RTCP so that interceptors see it
			defer p.wg.Done()
			for {
				if _, _, err := x.Sender().ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	return p
}

func (p *mediaPublisher) close() {
	p.closeOnce.Do(func() {
		_ = p.pc.Close()
		p.wg.Wait()
	})
}

// presentWS negotiates as the room's presenter over the signalling WebSocket,
// with trickle ICE both ways.
func (p *mediaPublisher) presentWS(t *testing.T, ws *testpeer.WS, roomID, email string) {
	t.Helper()
	var (
		mu      sync.Mutex
		remote  bool
		pending []webrtc.ICECandidateInit
	)
	ws.OnCandidate(func(c webrtc.ICECandidateInit) {
		mu.Lock()
		defer mu.Unlock()
		if !remote {
			pending = append(pending, c)
			return
		}
		_ = p.pc.AddICECandidate(c)
	})
	p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			_ = ws.SendCandidate(roomID, c.ToJSON())
		}
	})
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	if err := ws.Send(testpeer.OfferMessage{ID: testpeer.IDPresenter, RoomID: roomID, Email: email, SDPOffer: offer.SDP}); err != nil {
		t.Fatal(err)
	}
	resp, err := ws.Next(within(t), testpeer.IDPresenterResponse)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Response != "accepted" {
		t.Fatalf("presenter offer rejected: %s", resp.Message)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: resp.SDPAnswer}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	remote = true
	for _, c := range pending {
		_ = p.pc.AddICECandidate(c)
	}
	mu.Unlock()
}

// publishWHIP goes live over WHIP and returns the session's resource URL.
func (p *mediaPublisher) publishWHIP(t *testing.T, origin, roomID, email, title, profile string) string {
	t.Helper()
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gathered:
	case <-within(t).Done():
		t.Fatal("ICE gathering did not complete")
	}
	q := url.Values{"title": {title}, "profileUrl": {profile}, "email": {email}}
	req, _ := http.NewRequestWithContext(within(t), http.MethodPost, origin+"/whip/"+roomID+"?"+q.Encode(),
		strings.NewReader(p.pc.LocalDescription().SDP))
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHIP POST: %d %s", resp.StatusCode, answer)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
		t.Fatal(err)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	return loc.String()
}

// send writes the clip's frames and audio packets at their real pace, and
// returns when both are sent.
func (p *mediaPublisher) send(t *testing.T, c recordtest.Clip) {
	t.Helper()
	p.sendUntil(t, c, nil)
}

// sendUntil is send, stopping early when stop closes (a nil stop never
// does).
func (p *mediaPublisher) sendUntil(t *testing.T, c recordtest.Clip, stop <-chan struct{}) {
	t.Helper()
	select {
	case <-p.connected:
	case <-within(t).Done():
		t.Fatal("the presenter's media did not connect")
	}
	var wg sync.WaitGroup
	play := func(track *webrtc.TrackLocalStaticSample, samples []recordtest.Sample) {
		defer wg.Done()
		start := time.Now()
		var at time.Duration
		for _, s := range samples {
			if err := track.WriteSample(media.Sample{Data: s.Data, Duration: s.Duration}); err != nil {
				t.Errorf("write sample: %v", err)
				return
			}
			at += s.Duration
			select {
			case <-time.After(time.Until(start.Add(at))):
			case <-stop:
				return
			}
		}
	}
	wg.Add(2)
	go play(p.video, recordtest.VideoSamples(t, c))
	go play(p.audio, recordtest.AudioSamples(t, c))
	wg.Wait()
}

// hookServer receives upload hooks.
func hookServer(t *testing.T) (*httptest.Server, chan map[string]any) {
	t.Helper()
	got := make(chan map[string]any, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("upload hook body: %v", err)
		}
		got <- m
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

// Each broadcast is recorded from its first keyframe to a file that
// ffprobe opens, with both streams and the broadcast's duration, whichever
// way the broadcast ends; the recorder is listed among the endpoints; the
// upload hook is posted; the file is listed and served with ranges.
func TestRecordingEndToEnd(t *testing.T) {
	recordtest.NeedFFmpeg(t)
	clips := map[string]recordtest.Clip{}
	for _, codec := range []string{"vp8", "h264", "vp9", "av1"} {
		clips[codec] = recordtest.MakeClip(t, t.TempDir(), codec, clipLength)
	}
	cases := []struct {
		name, codec, end, ext, probed string
	}{
		{"vp8 ended by DELETE room live", "vp8", "delete", ".webm", "vp8"},
		{"h264 ended by WHIP DELETE", "h264", "whip", ".mp4", "h264"},
		{"h264 presenter dropped", "h264", "drop", ".mp4", "h264"},
		{"vp8 server shutdown", "vp8", "shutdown", ".webm", "vp8"},
		{"h264 server shutdown", "h264", "shutdown", ".mp4", "h264"},
		{"vp9 ended by DELETE room live", "vp9", "delete", ".mp4", "vp9"},
		{"av1 presenter dropped", "av1", "drop", ".mp4", "av1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			testRecording(t, clips[c.codec], c.end, c.ext, c.probed)
		})
	}
}

func testRecording(t *testing.T, clip recordtest.Clip, end, ext, probed string) {
	dir := t.TempDir()
	hook, hooks := hookServer(t)
	srv := testpeer.StartServer(t, func(c *config.Config) {
		c.RecordDir = dir
		c.RecordHookURL = hook.URL + "/uploaded"
	})
	origin := strings.TrimSuffix(srv.URL, srv.Config.BasePath)
	const email, roomID, title, profile = "artist@x", "room-1", "Live at noon", "http://img/1.png"

	pub := newMediaPublisher(t, clip.VideoMime)
	var (
		ws       *testpeer.WS
		sessID   string
		resource string
	)
	if end == "whip" {
		resource = pub.publishWHIP(t, origin, roomID, email, title, profile)
		sessID = resource[strings.LastIndexByte(resource, '/')+1:]
	} else {
		wantStatus(t, srv.REST.CreateRoom(email, roomID, title, profile), http.StatusCreated)
		var err error
		if ws, err = testpeer.DialWS(within(t), srv.WSURL); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ws.Close)
		sessID = ws.SessionID
		pub.presentWS(t, ws, roomID, email)
	}
	waitEndpoints(t, srv, email, "presenter:"+email, "recorder:"+roomID)

	pub.send(t, clip)
	// The broadcast's length is the clip's: RTP timestamps follow the
	// samples' durations, even if a loaded machine sends some late.
	sent := clip.Length
	for _, ep := range endpointsOf(t, srv, email) {
		if ep.EndpointName == "recorder:"+roomID && (ep.Stats.State != "recording" || ep.Stats.PacketsOut == 0) {
			t.Errorf("recorder endpoint %+v: want state recording, packets out", ep)
		}
	}
	if list := recordings(t, srv); len(list) != 1 || !list[0].Recording {
		t.Errorf("while live: recordings %+v, want one being written", list)
	}

	switch end {
	case "delete":
		wantStatus(t, srv.REST.EndRoom(email), http.StatusNoContent)
	case "whip":
		req, _ := http.NewRequestWithContext(within(t), http.MethodDelete, resource, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("WHIP DELETE: %d", resp.StatusCode)
		}
	case "drop":
		ws.Drop()
	case "shutdown":
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := srv.App.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}

	var h map[string]any
	select {
	case h = <-hooks:
	case <-time.After(timeout):
		t.Fatal("no upload hook")
	}
	path, _ := h["path"].(string)
	for k, want := range map[string]any{"liveSessionId": sessID, "roomId": roomID, "title": title, "profileUrl": profile} {
		if h[k] != want {
			t.Errorf("upload hook %s = %v, want %v", k, h[k], want)
		}
	}
	if filepath.Dir(path) != dir || filepath.Ext(path) != ext {
		t.Fatalf("upload hook path %q, want a %s file in %s", path, ext, dir)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if size, _ := h["size"].(float64); int64(size) != fi.Size() {
		t.Errorf("upload hook size %v, file has %d bytes", h["size"], fi.Size())
	}
	if codecs, _ := h["codecs"].([]any); len(codecs) != 2 || codecs[0] != clip.VideoMime {
		t.Errorf("upload hook codecs %v", h["codecs"])
	}
	wantDuration(t, "upload hook duration", h["duration"], sent)

	p := recordtest.Probe(t, path)
	if codecs := p.Codecs(); codecs["video"] != probed || codecs["audio"] != "opus" || len(p.Streams) != 2 {
		t.Errorf("ffprobe %s: streams %+v, want %s and opus", path, p.Streams, probed)
	}
	wantDuration(t, "ffprobe duration", p.Duration, sent)

	if end == "shutdown" {
		return // the API is gone with the server
	}
	waitNoRooms(t, srv)
	var metrics string
	if !testpeer.Eventually(timeout, func() bool {
		resp, err := http.Get(origin + "/metrics")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		metrics = string(body)
		return strings.Contains(metrics, `onair_recordings_total{outcome="finished"} 1`) &&
			strings.Contains(metrics, `onair_recordings_total{outcome="uploaded"} 1`)
	}) {
		t.Errorf("/metrics does not count the recording finished and uploaded:\n%s", grepLines(metrics, "onair_recordings_total"))
	}
	list := recordings(t, srv)
	if len(list) != 1 || list[0].Name != filepath.Base(path) || list[0].Size != fi.Size() || list[0].Recording ||
		list[0].Duration == nil || list[0].RoomID != roomID {
		t.Fatalf("recordings %+v, want %s finished", list, path)
	}
	wantDuration(t, "listed duration", *list[0].Duration, sent)
	r := srv.REST.Do(http.MethodGet, "/media/recordings/"+list[0].Name, "", nil)
	if r.Status != http.StatusOK || int64(len(r.Body)) != fi.Size() {
		t.Errorf("download: %d, %d bytes; want 200, %d", r.Status, len(r.Body), fi.Size())
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/media/recordings/"+list[0].Name, nil)
	req.Header.Set("Range", "bytes=4-99")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	file, _ := os.ReadFile(path)
	if resp.StatusCode != http.StatusPartialContent || string(part) != string(file[4:100]) {
		t.Errorf("range request: %d, %d bytes", resp.StatusCode, len(part))
	}
	for _, bad := range []string{"..%2F..%2Fetc%2Fpasswd", "nope.webm", "room-1-20990101T000000.000Z.webm"} {
		if r := srv.REST.Do(http.MethodGet, "/media/recordings/"+bad, "", nil); r.Status != http.StatusBadRequest && r.Status != http.StatusNotFound {
			t.Errorf("GET /media/recordings/%s: %s, want 400 or 404", bad, r)
		}
	}
}

func wantDuration(t *testing.T, what string, v any, sent time.Duration) {
	t.Helper()
	secs, ok := v.(float64)
	if d := time.Duration(secs * float64(time.Second)); !ok || d < sent*8/10 || d > sent*12/10 {
		t.Errorf("%s %v, want %s ± 20%%", what, v, sent.Round(time.Millisecond))
	}
}

type listedRecording struct {
	Name      string   `json:"name"`
	RoomID    string   `json:"roomId"`
	Size      int64    `json:"size"`
	Start     string   `json:"start"`
	Duration  *float64 `json:"duration"`
	Recording bool     `json:"recording"`
}

func recordings(t *testing.T, srv *testpeer.Server) []listedRecording {
	t.Helper()
	var list []listedRecording
	r := srv.REST.Do(http.MethodGet, "/media/recordings", "", nil)
	if err := r.Want(http.StatusOK); err != nil {
		t.Fatal(err)
	}
	if err := r.Decode(&list); err != nil {
		t.Fatal(err)
	}
	return list
}

func endpointsOf(t *testing.T, srv *testpeer.Server, email string) []testpeer.Endpoint {
	t.Helper()
	eps, err := srv.REST.Endpoints(email)
	if err != nil {
		t.Fatal(fmt.Errorf("endpoints of %s: %w", email, err))
	}
	return eps
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
