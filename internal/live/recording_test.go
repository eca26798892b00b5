package live_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/auth"
	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/sfu"
	"github.com/onair-live/onair/internal/store"
	"github.com/onair-live/onair/internal/testpeer"
)

// fakeSink is a recording that records what the engine did with it.
type fakeSink struct {
	mu      sync.Mutex
	started []media.Track
	closed  int
	result  live.Recording
}

func (f *fakeSink) Start(tracks []media.Track, _ func()) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = tracks
	return nil
}
func (f *fakeSink) WritePacket(media.Packet) {}
func (f *fakeSink) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed++
	return nil
}
func (f *fakeSink) Result() (live.Recording, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.result, f.closed == 1
}

type fakeSession struct{ id string }

func (s fakeSession) ID() string                    { return s.id }
func (s fakeSession) SendCandidate(media.Candidate) {}
func (s fakeSession) Stop(live.StopReason)          {}

// presenterOffer is a real browser-like offer: sendonly VP8 and Opus.
func presenterOffer(t *testing.T) string {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, c := range []webrtc.RTPCodecCapability{{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
		{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}} {
		tr, err := webrtc.NewTrackLocalStaticSample(c, c.MimeType, "s")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

func newRecordingService(t *testing.T, factory func(live.RecordingStart) (live.RecordingSink, error), ev *recorder) *live.Service {
	t.Helper()
	testpeer.CheckGoroutines(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine, err := sfu.New(sfu.Config{Loopback: true, ConnectTimeout: time.Minute,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	svc := live.New(store.NewMemory(), engine, live.Options{Logger: log, Recorder: factory, OnEvent: ev.add})
	t.Cleanup(func() {
		svc.Shutdown(context.Background())
		_ = engine.Close()
	})
	return svc
}

// Once the presenter's offer is accepted, a recorder endpoint is attached to
// the pipeline and listed with the others (and is no orphan); when the room
// ends it is released, its sink closed, and recording.finished follows
// room.finished.
func TestRecordingLifecycle(t *testing.T) {
	ctx := context.Background()
	sink := &fakeSink{result: live.Recording{Path: "/r/x.webm", Bytes: 10, Duration: time.Second, Codecs: []string{"video/VP8"}}}
	var got []live.RecordingStart
	ev := &recorder{}
	svc := newRecordingService(t, func(s live.RecordingStart) (live.RecordingSink, error) {
		got = append(got, s)
		return sink, nil
	}, ev)
	if _, err := svc.StartBroadcast(ctx, auth.Trusted("p@x"), live.StartRequest{RoomID: "r1", Title: "T", ProfileURL: "u"}); err != nil {
		t.Fatal(err)
	}
	eps, _ := svc.PresenterEndpoints(ctx, "p@x")
	if len(eps) != 1 {
		t.Fatalf("before the offer: %d endpoints, want the presenter's only", len(eps))
	}
	if _, err := svc.Present(ctx, fakeSession{"sess-1"}, auth.Trusted("p@x"), live.Offer{RoomID: "r1", Email: "p@x", SDP: presenterOffer(t)}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != (live.RecordingStart{RoomID: "r1", Title: "T", ProfileURL: "u", Presenter: "p@x", SessionID: "sess-1"}) {
		t.Fatalf("recorder asked for %+v", got)
	}
	eps, _ = svc.PresenterEndpoints(ctx, "p@x")
	var rec media.Endpoint
	for _, ep := range eps {
		if ep.Role() == media.Recorder {
			rec = ep
		}
	}
	if rec == nil || rec.Name() != "recorder:r1" {
		t.Fatalf("endpoints %v: no recorder:r1", eps)
	}
	if !testpeer.Eventually(10*time.Second, func() bool { return rec.Stats().State == "recording" }) {
		t.Fatalf("recorder state %q, want recording", rec.Stats().State)
	}
	sink.mu.Lock()
	n := len(sink.started)
	sink.mu.Unlock()
	if n != 2 {
		t.Errorf("sink started with %d tracks, want 2", n)
	}
	if _, orphans, err := svc.Orphans(ctx); err != nil || len(orphans) != 0 {
		t.Errorf("orphan endpoints %v (%v), want none", orphans, err)
	}
	if err := svc.EndBroadcast(ctx, auth.Trusted("p@x")); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	closed := sink.closed
	sink.mu.Unlock()
	if closed != 1 {
		t.Errorf("sink closed %d times, want 1", closed)
	}
	s := ev.summary()
	if len(s) < 2 || s[len(s)-2] != "room.finished r1 ended" || s[len(s)-1] != "recording.finished r1" {
		t.Fatalf("events %q: want room.finished then recording.finished", s)
	}
	ev.mu.Lock()
	last := ev.events[len(ev.events)-1]
	ev.mu.Unlock()
	if last.Recording == nil || last.Recording.Path != "/r/x.webm" || last.Title != "T" || last.Presenter != "p@x" {
		t.Errorf("recording.finished %+v", last)
	}
}

// A recorder that cannot start leaves the broadcast alone.
func TestRecordingRefused(t *testing.T) {
	ctx := context.Background()
	ev := &recorder{}
	svc := newRecordingService(t, func(live.RecordingStart) (live.RecordingSink, error) {
		return nil, errors.New("disk full")
	}, ev)
	if _, err := svc.StartBroadcast(ctx, auth.Trusted("p@x"), live.StartRequest{RoomID: "r1", Title: "T", ProfileURL: "u"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Present(ctx, fakeSession{"sess-1"}, auth.Trusted("p@x"), live.Offer{RoomID: "r1", Email: "p@x", SDP: presenterOffer(t)}); err != nil {
		t.Fatalf("offer refused: %v", err)
	}
	eps, _ := svc.PresenterEndpoints(ctx, "p@x")
	if len(eps) != 1 {
		t.Errorf("%d endpoints, want the presenter's only", len(eps))
	}
	if err := svc.EndBroadcast(ctx, auth.Trusted("p@x")); err != nil {
		t.Fatal(err)
	}
	for _, e := range ev.summary() {
		if e == "recording.finished r1" {
			t.Error("recording.finished without a recording")
		}
	}
}
