package sfu

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/codec"
	"github.com/onair-live/onair/internal/leakcheck"
	"github.com/onair-live/onair/internal/media"
)

// Viewers who join a 2 Mbit/s broadcast late in a long group of pictures,
// with their sockets' default buffers, are sent the group's keyframe first
// and then the rest of it and the live stream without loss: the replay of
// the cached group, about 500 KB, is paced rather than sent at once.
func TestLateJoinerGetsTheGroupWithoutLoss(t *testing.T) {
	const (
		viewers   = 2
		keyEvery  = 120 // frames: 4 s at 30 per second
		joinAt    = 54  // frames into the group: 1.8 s, some 450 KB
		lastFrame = 115 // before the next keyframe
		keyPkts   = 40  // a 48 KB keyframe
		deltaPkts = 6   // 7 KB delta frames: 2 Mbit/s with the keyframes
	)
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	eng, mp := newLoopbackPipeline(t, Config{}, "latejoin")
	api := clientAPI(t)
	var pcs []*webrtc.PeerConnection
	defer func() {
		for _, pc := range pcs {
			_ = pc.Close()
		}
		_ = eng.Close()
	}()

	video, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "presenter")
	pub, pubEP := startTestPresenter(ctx, t, api, mp, video)
	pcs = append(pcs, pub)
	// Until the server reads the presenter's packets, they are lost.
	var seq uint16
	buf := make([]byte, 1200)
	waitFor(t, func() bool {
		seq++
		_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Marker: true},
			Payload: vp8Payload(buf, seq, true, false)})
		time.Sleep(20 * time.Millisecond)
		return pubEP.Stats().PacketsIn > 0
	})

	// The presenter sends in real time; the viewers join at joinAt.
	joined := make(chan struct{})
	sent := make(chan struct{})
	gopFirst := seq + 1
	go func() {
		defer close(sent)
		start := time.Now()
		for frame := 0; frame <= lastFrame; frame++ {
			time.Sleep(time.Until(start.Add(time.Duration(frame) * time.Second / 30)))
			if frame == joinAt {
				close(joined)
			}
			n := deltaPkts
			if frame%keyEvery == 0 {
				n = keyPkts
			}
			for i := range n {
				seq++
				if err := video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq,
					Timestamp: uint32(frame+1) * 3000, Marker: i == n-1},
					Payload: vp8Payload(buf, seq, i == 0, frame%keyEvery == 0)}); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()

	<-joined
	logs := make([]*joinLog, viewers)
	for i := range logs {
		logs[i] = &joinLog{}
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
		recvOnly(t, pc, webrtc.RTPCodecTypeVideo)
		l := logs[i]
		pc.OnTrack(func(tr *webrtc.TrackRemote, rc *webrtc.RTPReceiver) {
			go drainRTCP(rc.Read)
			l.read(tr)
		})
		ep, err := mp.NewEndpoint(media.Subscriber, fmt.Sprintf("late%d", i), media.Events{})
		if err != nil {
			t.Fatal(err)
		}
		negotiate(ctx, t, pc, ep)
	}
	<-sent
	// The last packets in flight, and the replays' catching up.
	final := gopFirst + keyPkts + lastFrame*deltaPkts - 1
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		done := true
		for _, l := range logs {
			l.mu.Lock()
			done = done && l.seen != nil && l.last == final
			l.mu.Unlock()
		}
		if done {
			break
		}
	}

	for i, l := range logs {
		l.mu.Lock()
		expected := int(l.last-l.first) + 1
		lost := expected - len(l.seen)
		t.Logf("late viewer %d: %d packets from %d to %d, %d lost", i, len(l.seen), l.first, l.last, lost)
		switch {
		case len(l.seen) == 0:
			t.Errorf("late viewer %d got nothing", i)
		case !l.keyFirst || l.first != gopFirst:
			t.Errorf("late viewer %d: the first packet (%d) does not start the group's keyframe (%d)", i, l.first, gopFirst)
		case l.bad > 0:
			t.Errorf("late viewer %d: %d packets with wrong bytes", i, l.bad)
		case float64(lost) > 0.005*float64(expected):
			t.Errorf("late viewer %d lost %d of %d packets", i, lost, expected)
		case l.last != final:
			t.Errorf("late viewer %d got up to %d, not the last packet %d", i, l.last, final)
		}
		l.mu.Unlock()
	}
}

// vp8Payload is a 1,200-byte VP8 payload: a descriptor that starts a
// (key)frame or continues one, then bytes that are a function of seq.
func vp8Payload(b []byte, seq uint16, first, key bool) []byte {
	b[0], b[1] = 0x00, 0x01
	if first {
		b[0] = 0x10
		if key {
			b[1] = 0x00
		}
	}
	for i := 2; i < len(b); i++ {
		b[i] = byte(int(seq)*7 + i)
	}
	return b
}

// joinLog is what a late viewer received.
type joinLog struct {
	mu          sync.Mutex
	first, last uint16
	keyFirst    bool
	seen        map[uint16]bool
	bad         int
}

func (l *joinLog) read(tr *webrtc.TrackRemote) {
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		l.mu.Lock()
		seq := p.SequenceNumber
		if l.seen == nil {
			l.seen = map[uint16]bool{}
			l.first, l.last = seq, seq
			l.keyFirst = codec.IsKeyframe(webrtc.MimeTypeVP8, p.Payload)
		}
		if seqNewer(seq, l.last) {
			l.last = seq
		}
		l.seen[seq] = true
		for i := 2; i < len(p.Payload); i++ {
			if p.Payload[i] != byte(int(seq)*7+i) {
				l.bad++
				break
			}
		}
		l.mu.Unlock()
	}
}
