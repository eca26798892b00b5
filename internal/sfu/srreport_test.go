package sfu

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/leakcheck"
)

// Viewers sharing a writer are sent their sender reports by it, with no
// goroutine of their own: each track gets one about every interval while
// media flows, mapping its RTP clock to the wall clock as the presenter's
// packets do, and none once the viewer has left the broadcast (its
// connection still up). The shard's writer ends with its last viewer, and a
// viewer who joins after gets its reports from the next.
func TestSenderReportsFromTheShardWriter(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	eng, mp := newLoopbackPipeline(t, Config{Writers: 1}, "reports")
	pres := newDirectPresenter(ctx, t, mp)
	defer func() { _ = pres.pc.Close(); _ = eng.Close() }()
	before := endpointGoroutines()

	join := func(name string) *directViewer {
		v := newDirectViewer(ctx, t, mp, name, webrtc.Configuration{}, dtls.SRTP_AEAD_AES_128_GCM, false)
		waitFor(t, func() bool { return v.ep.Stats().State == "connected" && v.ep.sub.sh.Load() != nil })
		return v
	}
	viewers := []*directViewer{join("a"), join("b"), join("c")}
	defer func() {
		for _, v := range viewers {
			_ = v.pc.Close()
			_ = v.mux.Close()
		}
	}()
	// A viewer's goroutines are its tracks' RTCP readers, no more.
	readers := 0
	for _, v := range viewers {
		readers += len(v.ep.sub.downs)
	}
	waitFor(t, func() bool { return endpointGoroutines() == before+readers })
	if n := writerGoroutines(); n != 1 {
		t.Errorf("%d writers, want 1", n)
	}

	marks := pres.sendRealtime(t, 3500*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // the last reports on their way
	for _, v := range viewers {
		v.checkReports(t, marks, 3, 5)
	}

	// Viewer a leaves; b and c still get theirs.
	viewers[0].ep.sub.detach()
	time.Sleep(100 * time.Millisecond) // a report being written as it left
	left := viewers[0].reportCount()
	others := viewers[1].reportCount()
	marks = pres.sendRealtime(t, 2500*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	if n := viewers[0].reportCount(); n != left {
		t.Errorf("a: %d sender reports after leaving", n-left)
	}
	if n := viewers[1].reportCount() - others; n < 2*2 {
		t.Errorf("b: %d sender reports in 2.5 s, want at least 2 per track", n)
	}
	viewers[1].checkReports(t, marks, 2, 4)

	// The writer ends with the last viewer; the next starts with one who
	// joins, and reports to it.
	for _, v := range viewers {
		v.ep.Release()
	}
	waitFor(t, func() bool { return writerGoroutines() == 0 })
	viewers = append(viewers, join("d"))
	marks = pres.sendRealtime(t, 2500*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	viewers[3].checkReports(t, marks, 2, 4)
}

// endpointGoroutines counts the goroutines the endpoints run (Endpoint.goroutine).
func endpointGoroutines() int { return countGoroutines("sfu.(*Endpoint).goroutine") }

// writerGoroutines counts the shards' writers.
func writerGoroutines() int { return countGoroutines("sfu.(*shard).run") }

func countGoroutines(frame string) int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, frame) {
			n++
		}
	}
	return n
}

// mark is when the presenter's newest video and audio packets were sent,
// and their timestamps.
type mark struct {
	at           time.Time
	video, audio uint32
}

// sendRealtime sends for d a one-packet video frame and an audio packet
// every 20 ms, their timestamps at their clock rates (90 and 48 kHz).
func (p *directPresenter) sendRealtime(t *testing.T, d time.Duration) []mark {
	buf := make([]byte, videoSize)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var marks []mark
	for end := time.Now().Add(d); time.Now().Before(end); {
		<-tick.C
		p.frame++
		p.seq[0]++
		h := rtp.Header{Version: 2, Marker: true, SequenceNumber: p.seq[0], Timestamp: p.frame * 1800}
		if err := p.video.WriteRTP(&rtp.Packet{Header: h, Payload: mediaPayload(buf, p.frame, 0, true, time.Now())}); err != nil {
			t.Error(err)
		}
		p.audioN++
		p.seq[1]++
		h = rtp.Header{Version: 2, SequenceNumber: p.seq[1], Timestamp: p.audioN * 960}
		_ = h.SetExtension(p.levelID, []byte{byte(p.audioN % 127)})
		if err := p.audio.WriteRTP(&rtp.Packet{Header: h, Payload: mediaPayload(buf[:audioSize], p.audioN, 0, false, time.Now())}); err != nil {
			t.Error(err)
		}
		marks = append(marks, mark{at: time.Now(), video: p.frame * 1800, audio: p.audioN * 960})
	}
	return marks
}

func (v *directViewer) reportCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, srs := range v.srs {
		n += len(srs)
	}
	return n
}

// checkReports checks the viewer's sender reports of each track while marks
// were sent: between lo and hi of them, about an interval apart, each
// mapping its NTP time to the RTP time the presenter's clock had then.
func (v *directViewer) checkReports(t *testing.T, marks []mark, lo, hi int) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	start, end := marks[0].at, marks[len(marks)-1].at
	for kind, tr := range v.tracks {
		rate := map[webrtc.RTPCodecType]float64{webrtc.RTPCodecTypeVideo: 90000, webrtc.RTPCodecTypeAudio: 48000}[kind]
		var in []rtcp.SenderReport
		for _, sr := range v.srs[uint32(tr.SSRC())] {
			if at := ntpToTime(sr.NTPTime); !at.Before(start) && !at.After(end) {
				in = append(in, sr)
			}
		}
		if len(in) < lo || len(in) > hi {
			t.Errorf("%s %s: %d sender reports in %s, want %d to %d", v.name, kind, len(in), end.Sub(start), lo, hi)
			continue
		}
		first, last := ntpToTime(in[0].NTPTime), ntpToTime(in[len(in)-1].NTPTime)
		if gap := last.Sub(first) / time.Duration(len(in)-1); gap < 800*time.Millisecond || gap > 1250*time.Millisecond {
			t.Errorf("%s %s: sender reports %s apart, want about %s", v.name, kind, gap, senderReportInterval)
		}
		for _, sr := range in {
			if off := mappingOffset(sr, marks, kind, rate); off < -0.25 || off > 0.05 {
				t.Errorf("%s %s: report at %s maps RTP time %d, %.3f s from the presenter's clock",
					v.name, kind, ntpToTime(sr.NTPTime).Format("15:04:05.000"), sr.RTPTime, off)
			}
		}
	}
}

// mappingOffset is how far, in seconds, a report's RTP time is from the
// presenter's clock at the report's NTP time: the newest packet sent by
// then, plus the time since at the track's clock rate. It is a little
// negative, by how long the packets took to reach the SFU.
func mappingOffset(sr rtcp.SenderReport, marks []mark, kind webrtc.RTPCodecType, rate float64) float64 {
	at := ntpToTime(sr.NTPTime)
	i := 0
	for i+1 < len(marks) && !marks[i+1].at.After(at) {
		i++
	}
	ts := marks[i].video
	if kind == webrtc.RTPCodecTypeAudio {
		ts = marks[i].audio
	}
	want := ts + uint32(at.Sub(marks[i].at).Seconds()*rate)
	return float64(int32(sr.RTPTime-want)) / rate
}

// ntpToTime is ntpTime's inverse.
func ntpToTime(ntp uint64) time.Time {
	const unixToNTP = 2208988800
	return time.Unix(int64(ntp>>32)-unixToNTP, int64((ntp&0xffffffff)*uint64(time.Second)>>32))
}
