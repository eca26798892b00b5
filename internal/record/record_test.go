package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/record/recordtest"
)

// stream is a clip as the engine would hand it to a sink: its RTP packets
// (video track 0, audio track 1) in arrival order.
func stream(t *testing.T, c recordtest.Clip) []media.Packet {
	t.Helper()
	var payloader rtp.Payloader
	switch c.VideoMime {
	case webrtc.MimeTypeVP8:
		payloader = &codecs.VP8Payloader{EnablePictureID: true}
	case webrtc.MimeTypeVP9:
		payloader = &codecs.VP9Payloader{}
	case webrtc.MimeTypeH264:
		payloader = &codecs.H264Payloader{}
	case webrtc.MimeTypeAV1:
		payloader = &codecs.AV1Payloader{}
	}
	start := time.Unix(1_700_000_000, 0)
	var out []media.Packet
	add := func(track int, p *rtp.Packet, at time.Duration) {
		out = append(out, media.Packet{Track: track, SequenceNumber: p.SequenceNumber, Timestamp: p.Timestamp,
			Marker: p.Marker, Payload: p.Payload, Arrival: start.Add(at)})
	}
	vp := rtp.NewPacketizer(1200, 96, 1, payloader, rtp.NewRandomSequencer(), 90000)
	var at time.Duration
	for _, s := range recordtest.VideoSamples(t, c) {
		for _, p := range vp.Packetize(s.Data, uint32(s.Duration.Seconds()*90000)) {
			add(0, p, at)
		}
		at += s.Duration
	}
	ap := rtp.NewPacketizer(1200, 111, 2, &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000)
	at = 7 * time.Millisecond // audio's clock starts elsewhere
	for _, s := range recordtest.AudioSamples(t, c) {
		for _, p := range ap.Packetize(s.Data, uint32(s.Duration.Seconds()*48000)) {
			add(1, p, at)
		}
		at += s.Duration
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Arrival.Before(out[j].Arrival) })
	return out
}

func tracksOf(c recordtest.Clip) []media.Track {
	return []media.Track{
		{Kind: "video", MimeType: c.VideoMime, ClockRate: 90000},
		{Kind: "audio", MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
	}
}

func newTestRecorder(t *testing.T, cfg Config) *Recorder {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(t.Context()) })
	return r
}

// record feeds packets to a new recording and finalizes it.
func record(t *testing.T, r *Recorder, c recordtest.Clip, pkts []media.Packet) (Result, int) {
	t.Helper()
	rec := r.Start(Info{RoomID: "room/1", Title: "T"})
	keyframes := 0
	if err := rec.Start(tracksOf(c), func() { keyframes++ }); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		rec.WritePacket(p)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	res, ok := rec.Result()
	if !ok {
		t.Fatal("nothing recorded")
	}
	return res, keyframes
}

// checkFile checks a recording with ffprobe: both streams, the codecs and
// a duration within 20% of want.
func checkFile(t *testing.T, res Result, video, ext string, want time.Duration) {
	t.Helper()
	if filepath.Ext(res.Path) != ext {
		t.Errorf("file %s, want a %s", res.Path, ext)
	}
	p := recordtest.Probe(t, res.Path)
	codecs := p.Codecs()
	if codecs["video"] != video || codecs["audio"] != "opus" || len(p.Streams) != 2 {
		t.Errorf("%s: streams %+v, want %s video and opus audio", res.Path, p.Streams, video)
	}
	if d := time.Duration(p.Duration * float64(time.Second)); d < want*8/10 || d > want*12/10 {
		t.Errorf("%s: ffprobe duration %s, want %s ± 20%%", res.Path, d, want)
	}
	if d := res.Duration; d < want*8/10 || d > want*12/10 {
		t.Errorf("%s: recorded duration %s, want %s ± 20%%", res.Path, d, want)
	}
	for _, s := range p.Streams {
		if s.CodecType == "video" && (s.Width != 320 || s.Height != 240) {
			t.Errorf("%s: video %dx%d, want 320x240", res.Path, s.Width, s.Height)
		}
	}
	if fi, err := os.Stat(res.Path); err != nil || fi.Size() != res.Bytes {
		t.Errorf("%s: size %v (%v), result says %d", res.Path, fi, err, res.Bytes)
	}
}

// Real clips, packetized as a sender would, are written to files that
// ffprobe opens, with both streams and their duration, and that ffmpeg
// decodes without an error.
func TestRecordClips(t *testing.T) {
	cases := []struct{ codec, probeName, ext string }{
		{"vp8", "vp8", ".webm"},
		{"h264", "h264", ".mp4"},
		{"vp9", "vp9", ".mp4"},
		{"av1", "av1", ".mp4"},
	}
	for _, c := range cases {
		t.Run(c.codec, func(t *testing.T) {
			clip := recordtest.MakeClip(t, t.TempDir(), c.codec, 3*time.Second)
			r := newTestRecorder(t, Config{})
			res, _ := record(t, r, clip, stream(t, clip))
			checkFile(t, res, c.probeName, c.ext, 3*time.Second)
			if errs := recordtest.Decode(t, res.Path); errs != "" {
				t.Errorf("decoding %s: %s", res.Path, errs)
			}
			if got := strings.Join(res.Codecs, ","); got != clip.VideoMime+","+webrtc.MimeTypeOpus {
				t.Errorf("codecs %q", got)
			}
		})
	}
}

// Lost and reordered packets: the file is still whole and playable, frames
// that lost a packet are left out, and the recording asks for keyframes.
func TestRecordLossAndReorder(t *testing.T) {
	clip := recordtest.MakeClip(t, t.TempDir(), "vp8", 3*time.Second)
	pkts := stream(t, clip)
	var lossy []media.Packet
	video, lost := 0, 0
	for i := 0; i < len(pkts); i++ {
		p := pkts[i]
		if p.Track == 0 {
			video++
			if video > 30 && video%40 == 0 { // one video packet in 40 is lost
				lost++
				continue
			}
		}
		if i%9 == 0 && i+1 < len(pkts) { // and one packet in 9 swapped with the next
			lossy = append(lossy, pkts[i+1], p)
			i++
			continue
		}
		lossy = append(lossy, p)
	}
	if lost == 0 {
		t.Fatal("the test lost no packet")
	}
	r := newTestRecorder(t, Config{})
	res, keyframes := record(t, r, clip, lossy)
	checkFile(t, res, "vp8", ".webm", 3*time.Second)
	if keyframes == 0 {
		t.Error("no keyframe asked for after losses")
	}
	if errs := recordtest.Decode(t, res.Path); errs != "" {
		t.Errorf("decoding %s: %s", res.Path, errs)
	}
}

// A codec the containers cannot take is not recorded, and the reason is
// logged.
func TestRecordUnsupportedCodec(t *testing.T) {
	var logs bytes.Buffer
	r, err := New(Config{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rec := r.Start(Info{RoomID: "r"})
	err = rec.Start([]media.Track{{Kind: "video", MimeType: "video/H265"}, {Kind: "audio", MimeType: "audio/opus"}}, nil)
	if !errors.Is(err, ErrUnsupportedCodec) {
		t.Fatalf("Start: %v, want ErrUnsupportedCodec", err)
	}
	if !strings.Contains(logs.String(), "video/H265") || !strings.Contains(logs.String(), "not recorded") {
		t.Errorf("log does not say why: %s", logs.String())
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.Result(); ok {
		t.Error("a result for an unrecorded broadcast")
	}
	if list, _ := r.List(); len(list) != 0 {
		t.Errorf("files: %+v", list)
	}
}

// Recordings are listed with their duration, opened by name, and names that
// leave the directory are refused.
func TestListAndOpen(t *testing.T) {
	clip := recordtest.MakeClip(t, t.TempDir(), "vp8", 2*time.Second)
	dir := t.TempDir()
	r := newTestRecorder(t, Config{Dir: dir})
	res, _ := record(t, r, clip, stream(t, clip))
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "secret.webm"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := r.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != filepath.Base(res.Path) || list[0].RoomID != "room_1" ||
		list[0].Size != res.Bytes || list[0].Recording {
		t.Fatalf("list %+v, want %s", list, res.Path)
	}
	if d := list[0].Duration; d < 1600*time.Millisecond || d > 2400*time.Millisecond {
		t.Errorf("listed duration %s", d)
	}
	if time.Since(list[0].Start) > time.Minute {
		t.Errorf("listed start %s", list[0].Start)
	}
	f, err := r.Open(list[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	for _, bad := range []string{"../secret.webm", "..", "", "x/../../secret.webm", "/etc/passwd", `..\secret.webm`,
		"room-20260101T000000.000Z.txt"} {
		if f, err := r.Open(bad); err == nil {
			_ = f.Close()
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
}

// The upload hook is posted the broadcast's fields and the file's, and
// retried with backoff until it is taken.
func TestUploadHook(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies []map[string]any
		calls  int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var m map[string]any
		if err := json.NewDecoder(req.Body).Decode(&m); err != nil {
			t.Errorf("hook body: %v", err)
		}
		bodies = append(bodies, m)
	}))
	defer srv.Close()
	clip := recordtest.MakeClip(t, t.TempDir(), "vp8", 2*time.Second)
	r := newTestRecorder(t, Config{HookURL: srv.URL, HookBackoff: 10 * time.Millisecond})
	rec := r.Start(Info{RoomID: "r1", Title: "Title", ProfileURL: "http://p/1.png", SessionID: "s-1"})
	if err := rec.Start(tracksOf(clip), nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range stream(t, clip) {
		rec.WritePacket(p)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	res, _ := rec.Result()
	r.Close(t.Context()) // waits for the hook
	mu.Lock()
	defer mu.Unlock()
	if calls != 3 || len(bodies) != 1 {
		t.Fatalf("%d calls, %d bodies taken; want 3 calls, 1 body", calls, len(bodies))
	}
	b := bodies[0]
	for k, v := range map[string]any{"liveSessionId": "s-1", "roomId": "r1", "title": "Title",
		"profileUrl": "http://p/1.png", "path": res.Path, "size": float64(res.Bytes)} {
		if b[k] != v {
			t.Errorf("hook %s = %v, want %v", k, b[k], v)
		}
	}
	if d, _ := b["duration"].(float64); d < 1.6 || d > 2.4 {
		t.Errorf("hook duration %v", b["duration"])
	}
	if c, _ := b["codecs"].([]any); len(c) != 2 {
		t.Errorf("hook codecs %v", b["codecs"])
	}
}

// Garbage from a presenter never crashes the recorder: random payloads,
// markers and sequence numbers, in every codec.
func TestRecordRandomInput(t *testing.T) {
	for _, mime := range []string{webrtc.MimeTypeVP8, webrtc.MimeTypeVP9, webrtc.MimeTypeH264, webrtc.MimeTypeAV1} {
		t.Run(mime, func(t *testing.T) {
			r := newTestRecorder(t, Config{})
			rec := r.Start(Info{RoomID: "fuzz"})
			if err := rec.Start([]media.Track{{Kind: "video", MimeType: mime, ClockRate: 90000},
				{Kind: "audio", MimeType: webrtc.MimeTypeOpus, ClockRate: 48000}}, nil); err != nil {
				t.Fatal(err)
			}
			rnd := rand.New(rand.NewSource(int64(len(mime))))
			at := time.Unix(0, 0)
			var seq [2]uint16
			var ts [2]uint32
			for i := 0; i < 20000; i++ {
				track := rnd.Intn(2)
				payload := make([]byte, rnd.Intn(64))
				rnd.Read(payload)
				if len(payload) > 0 && rnd.Intn(4) == 0 {
					payload[0] = []byte{0x10, 0x08, 0x65, 0x67, 0x7c, 0x18, 0x28}[rnd.Intn(7)] // plausible heads
				}
				if rnd.Intn(10) == 0 {
					ts[track] += uint32(rnd.Intn(6000))
				}
				seq[track] += uint16(1 + rnd.Intn(2))
				at = at.Add(time.Duration(rnd.Intn(3)) * time.Millisecond)
				rec.WritePacket(media.Packet{Track: track, SequenceNumber: seq[track], Timestamp: ts[track],
					Marker: rnd.Intn(3) == 0, Payload: payload, Arrival: at})
			}
			_ = rec.Close()
		})
	}
}

// Real streams with corrupted bytes (a presenter's buggy encoder) are
// recorded as well as they can be, without crashing.
func TestRecordCorruptedClips(t *testing.T) {
	for _, codec := range []string{"vp8", "h264", "av1"} {
		t.Run(codec, func(t *testing.T) {
			clip := recordtest.MakeClip(t, t.TempDir(), codec, time.Second)
			rnd := rand.New(rand.NewSource(7))
			var pkts []media.Packet
			for _, p := range stream(t, clip) {
				if rnd.Intn(10) == 0 && len(p.Payload) > 0 {
					b := append([]byte(nil), p.Payload...)
					for k := 0; k < 1+rnd.Intn(4); k++ {
						b[rnd.Intn(len(b))] ^= byte(1 + rnd.Intn(255))
					}
					p.Payload = b
				}
				pkts = append(pkts, p)
			}
			r := newTestRecorder(t, Config{})
			rec := r.Start(Info{RoomID: "corrupt"})
			if err := rec.Start(tracksOf(clip), nil); err != nil {
				t.Fatal(err)
			}
			for _, p := range pkts {
				rec.WritePacket(p)
			}
			_ = rec.Close()
			if res, ok := rec.Result(); ok {
				recordtest.Probe(t, res.Path) // opens, whatever it holds
			}
		})
	}
}

// An MP4 recording cut short (the server killed mid-broadcast) plays up to
// its last fragment: a copy of the file as it is on disk while it is being
// written is read by ffprobe and decoded by ffmpeg.
func TestMP4CutShortPlays(t *testing.T) {
	clip := recordtest.MakeClip(t, t.TempDir(), "h264", 4*time.Second)
	pkts := stream(t, clip)
	r := newTestRecorder(t, Config{})
	rec := r.Start(Info{RoomID: "room-1"})
	if err := rec.Start(tracksOf(clip), func() {}); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts[:len(pkts)*3/4] {
		rec.WritePacket(p)
	}
	b, err := os.ReadFile(rec.path)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.mp4")
	if err := os.WriteFile(cut, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	p := recordtest.Probe(t, cut)
	if codecs := p.Codecs(); codecs["video"] != "h264" || codecs["audio"] != "opus" {
		t.Errorf("the cut file: streams %+v, want h264 and opus", p.Streams)
	}
	if errs := recordtest.Decode(t, cut); errs != "" {
		t.Errorf("decoding the cut file: %s", errs)
	}
	if d := time.Duration(p.Duration * float64(time.Second)); d < time.Second {
		t.Errorf("the cut file lasts %s, want the fragments written (over 1 s)", d)
	}
}
