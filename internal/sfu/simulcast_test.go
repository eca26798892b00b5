package sfu

import (
	"context"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onair-live/onair/internal/leakcheck"
	"github.com/onair-live/onair/internal/media"
)

// The layers: 2 Mbit/s, 500 kbit/s and 125 kbit/s.
var scRates = [3]int{125_000, 500_000, 2_000_000}

type scRoom struct {
	eng *Engine
	mp  media.Pipeline
	pub *scPublisher
	vs  []*scViewer
}

// newSCRoom starts an engine and a presenter sending three layers; close
// releases everything and checks no goroutine is left.
func newSCRoom(ctx context.Context, t *testing.T) *scRoom {
	t.Helper()
	return newSCRoomWith(ctx, t, scRates)
}

// newSCRoomWith is newSCRoom with the layers' bitrates (0: not sent).
func newSCRoomWith(ctx context.Context, t *testing.T, rates [3]int) *scRoom {
	t.Helper()
	leakcheck.Check(t)
	eng, mp := newLoopbackPipeline(t, Config{Logger: testLogger()}, "simulcast")
	r := &scRoom{eng: eng, mp: mp, pub: newSCPublisher(t, rates)}
	t.Cleanup(func() {
		for _, v := range r.vs {
			v.close()
		}
		r.pub.close()
		_ = eng.Close()
	})
	ep, err := mp.NewEndpoint(media.Publisher, "presenter", media.Events{})
	if err != nil {
		t.Fatal(err)
	}
	negotiate(ctx, t, r.pub.pc, ep)
	r.pub.start(t)
	return r
}

func (r *scRoom) viewer(ctx context.Context, t *testing.T, name string, capBPS int64, layer string) *scViewer {
	v := newSCViewer(ctx, t, r.mp, name, capBPS, layer)
	r.vs = append(r.vs, v)
	return v
}

// waitLayer waits until v is sent layer, and returns how long that took.
func waitLayer(t *testing.T, v *scViewer, layer int, within time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for v.layer() != layer {
		if time.Since(start) > within {
			t.Fatalf("%s: on layer %d after %s, want %d", what, v.layer(), within, layer)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// checkSwitches checks that every switch v saw started on a keyframe right
// after the old layer's last packet, and that no run of sequence numbers
// longer than maxGap is missing (0: none may be). It returns the switches.
func checkSwitches(t *testing.T, v *scViewer, name string, maxGap int) int {
	t.Helper()
	n, bad, gap := v.analyze(maxGap > 0)
	if len(bad) > 0 {
		t.Errorf("%s: %d of %d switches not on a keyframe or not contiguous: %s", name, len(bad), n, strings.Join(bad, "; "))
	}
	if gap > maxGap {
		t.Errorf("%s: %d sequence numbers in a row never received, want at most %d", name, gap, maxGap)
	}
	return n
}

// A simulcast presenter's three layers arrive as three tracks; a viewer
// starts on the top one, a pinned viewer on its pin, and a pin moves a
// viewer: each switch on a keyframe of the new layer, with sequence
// numbers that go on without a gap.
func TestSimulcastPinning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := newSCRoom(ctx, t)
	auto := r.viewer(ctx, t, "auto", 0, "")
	low := r.viewer(ctx, t, "low", 0, "l")
	waitLayer(t, auto, 2, 15*time.Second, "unpinned viewer")
	waitLayer(t, low, 0, 15*time.Second, "viewer pinned to l")
	for _, step := range []struct {
		layer string
		rank  int
	}{{"m", 1}, {"h", 2}, {"l", 0}, {"m", 1}} {
		if err := low.ep.SetLayer(step.layer); err != nil {
			t.Fatal(err)
		}
		took := waitLayer(t, low, step.rank, 10*time.Second, "pinned to "+step.layer)
		t.Logf("pinned to %s: switched in %s", step.layer, took.Round(time.Millisecond))
	}
	if err := low.ep.SetLayer("x"); err == nil {
		t.Error("SetLayer(x) accepted")
	}
	time.Sleep(time.Second)
	if n := checkSwitches(t, low, "pinned viewer", 0); n != 4 {
		t.Errorf("pinned viewer switched %d times, want 4", n)
	}
	// (The unpinned viewer's estimator may move it on a busy machine: its
	// switches are checked, not counted; TestSimulcastBottleneck counts.)
	checkSwitches(t, auto, "unpinned viewer", 0)
	if s := auto.ep.Stats(); s.PacketsOut == 0 {
		t.Errorf("unpinned viewer stats: %+v", s)
	}
	for i, n := range []uint64{r.pub.plis[0].Load(), r.pub.plis[1].Load(), r.pub.plis[2].Load()} {
		t.Logf("layer %d: %d PLIs", i, n)
	}
}

// A viewer behind an 800 kbit/s bottleneck settles on a lower layer, with
// little loss once there, while viewers without one stay on the top layer;
// when the bottleneck goes, the viewer climbs back to the top. Every switch
// starts on a keyframe, with no gap in the sequence numbers.
func TestSimulcastBottleneck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := newSCRoom(ctx, t)
	free1 := r.viewer(ctx, t, "free1", 0, "")
	capped := r.viewer(ctx, t, "capped", 800_000, "")
	free2 := r.viewer(ctx, t, "free2", 0, "")
	waitLayer(t, free1, 2, 15*time.Second, "uncapped viewer")
	waitLayer(t, capped, 2, 15*time.Second, "capped viewer, at first")

	start := time.Now()
	for capped.layer() == 2 {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("capped viewer still on the top layer after 10s (estimate %d bit/s)", capped.ep.Stats().EstimateBPS)
		}
		time.Sleep(20 * time.Millisecond)
	}
	settled := time.Since(start)
	time.Sleep(2 * time.Second) // retransmissions of the switch's losses
	from := time.Now()
	time.Sleep(8 * time.Second)
	lost, total := capped.mediaLoss(from)
	t.Logf("capped: down to layer %d in %s; then %d of %d packets lost; estimate %d bit/s",
		capped.layer(), settled.Round(time.Millisecond), lost, total, capped.ep.Stats().EstimateBPS)
	if capped.layer() == 2 {
		t.Errorf("capped viewer back on the top layer while capped")
	}
	if total == 0 || float64(lost) > 0.02*float64(total) {
		t.Errorf("capped viewer lost %d of %d packets once settled, want < 2%%", lost, total)
	}
	for _, v := range []*scViewer{free1, free2} {
		if v.layer() != 2 {
			t.Errorf("uncapped viewer on layer %d", v.layer())
		}
		if n := checkSwitches(t, v, v.ep.Name(), 0); n != 0 {
			t.Errorf("uncapped viewer %s switched %d times", v.ep.Name(), n)
		}
	}

	capped.net.SetRate(0)
	up := waitLayer(t, capped, 2, 20*time.Second, "uncapped again")
	t.Logf("capped viewer back on the top layer %s after the cap went", up.Round(time.Millisecond))
	// Behind the bottleneck, packets are lost (padding is never resent),
	// but a jump in the numbering would leave thousands missing (the
	// layers' numbers are 1,700 apart).
	n := checkSwitches(t, capped, "capped viewer", 500)
	t.Logf("capped viewer: %d switches", n)
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// layerSink records which simulcast layer each video packet it is given
// is of.
type layerSink struct {
	mu     sync.Mutex
	video  int
	layers map[int]int
}

func (s *layerSink) Start(tracks []media.Track, _ func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, t := range tracks {
		if t.Kind == "video" {
			s.video = i
		}
	}
	s.layers = map[int]int{}
	return nil
}

func (s *layerSink) WritePacket(p media.Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Track == s.video && len(p.Payload) > 2 {
		s.layers[int(p.Payload[2])]++
	}
}

func (s *layerSink) Close() error { return nil }

func (s *layerSink) seen() map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.layers)
}

// A recorder takes the top layer; when the presenter does not send its top
// layer (a browser whose camera is too small for it), the highest it sends.
func TestSimulcastRecordingTakesTheTopLayer(t *testing.T) {
	for _, c := range []struct {
		name  string
		rates [3]int
		want  int
	}{
		{"three layers", scRates, 2},
		{"top layer not sent", [3]int{125_000, 500_000, 0}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r := newSCRoomWith(ctx, t, c.rates)
			sink := &layerSink{}
			if _, err := r.mp.NewRecorder("recorder", sink); err != nil {
				t.Fatal(err)
			}
			if !waitUntil(15*time.Second, func() bool { return sink.seen()[c.want] > 30 }) {
				t.Fatalf("the recording got layers %v, want layer %d", sink.seen(), c.want)
			}
			if got := sink.seen(); len(got) != 1 {
				t.Errorf("the recording got layers %v, want only layer %d", got, c.want)
			}
		})
	}
}

func waitUntil(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// A viewer pinned to a layer the presenter does not send is sent the
// highest it sends below it.
func TestSimulcastPinToALayerNotSent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := newSCRoomWith(ctx, t, [3]int{125_000, 500_000, 0})
	v := r.viewer(ctx, t, "pinned-h", 0, "h")
	waitLayer(t, v, 1, 15*time.Second, "viewer pinned to h, which is not sent")
	if s := v.ep.Stats(); s.Layer != "m" || !s.LayerPinned {
		t.Errorf("stats of the viewer pinned to h: layer %q pinned %v, want m, pinned", s.Layer, s.LayerPinned)
	}
}
