package sfu

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/onair-live/onair/internal/media"
)

// stallingSink blocks in WritePacket until released: a recorder whose disk
// stalls.
type stallingSink struct {
	release chan struct{}
	refuse  error

	mu      sync.Mutex
	tracks  []media.Track
	written atomic.Int64
	closed  int
	after   bool // a packet was written after Close
}

func (s *stallingSink) Start(tracks []media.Track, _ func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tracks = tracks
	return s.refuse
}

func (s *stallingSink) WritePacket(media.Packet) {
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed > 0 {
		s.after = true
	}
	s.written.Add(1)
}

func (s *stallingSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
	return nil
}

// A recorder is one more consumer of a published track: a stalled sink
// drops its own packets and costs the viewers nothing; it is listed with
// the endpoints, and its sink is closed once, after its last packet.
func TestStalledRecorderCostsViewersNothing(t *testing.T) {
	up, subs, stop := benchTrack(t, 1)
	defer stop()
	healthy := &recordingWriter{}
	setWriter(subs[0].downs[0], healthy)
	p := up.ep.p
	p.publish([]*upTrack{up})
	sink := &stallingSink{release: make(chan struct{})}
	ep, err := p.NewRecorder("recorder:bench", sink)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return ep.Stats().State == recRecording })
	if got := p.Endpoints(); len(got) != 1 || got[0].Name() != "recorder:bench" || got[0].Role() != media.Recorder {
		t.Errorf("endpoints %v, want the recorder", got)
	}
	if len(sink.tracks) != 1 || sink.tracks[0].MimeType != "video/VP8" || sink.tracks[0].Kind != "video" {
		t.Errorf("sink started with %+v", sink.tracks)
	}

	const packets = 5000 // more than the recorder's queue holds
	for i := 0; i < packets; i++ {
		pkt, err := newPacket(rawPacket(uint16(i)))
		if err != nil {
			t.Fatal(err)
		}
		up.dispatch(pkt)
		if i%256 == 255 {
			waitEmpty(t, subs[0])
		}
	}
	waitFor(t, func() bool { return healthy.n.Load() == packets })
	if d := ep.Stats().PacketsDropped; d == 0 {
		t.Error("the stalled recorder dropped nothing: its queue should have overflowed")
	}
	if d := subs[0].ep.dropped.Load(); d != 0 {
		t.Errorf("the viewer dropped %d packets", d)
	}
	close(sink.release)
	ep.Release()
	if sink.closed != 1 || sink.after {
		t.Errorf("sink closed %d times (written after close: %v), want once, last", sink.closed, sink.after)
	}
	if n := sink.written.Load(); n == 0 || ep.Stats().PacketsOut != uint64(n) {
		t.Errorf("sink got %d packets, stats say %d out", n, ep.Stats().PacketsOut)
	}
	if len(p.Endpoints()) != 0 {
		t.Errorf("endpoints after release: %v", p.Endpoints())
	}
}

// A sink that refuses the broadcast gets no packet, says so in its state,
// and is still closed on release.
func TestRefusedRecorder(t *testing.T) {
	up, _, stop := benchTrack(t, 1)
	defer stop()
	p := up.ep.p
	p.publish([]*upTrack{up})
	sink := &stallingSink{release: make(chan struct{}), refuse: errors.New("no")}
	close(sink.release)
	ep, err := p.NewRecorder("recorder:bench", sink)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return ep.Stats().State == recRefused })
	up.mu.Lock()
	n := len(up.downs)
	for _, f := range up.fans {
		n += len(f.downs)
	}
	up.mu.Unlock()
	if n != 1 {
		t.Errorf("%d consumers of the track, want the viewer only", n)
	}
	if _, err := ep.ProcessOffer(t.Context(), "v=0"); !errors.Is(err, errRecorderOffer) {
		t.Errorf("offer to a recorder: %v", err)
	}
	ep.Release()
	if sink.closed != 1 {
		t.Errorf("sink closed %d times, want once", sink.closed)
	}
}
