package loadtest

import (
	"math"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	var v []float64
	for i := 100; i >= 1; i-- {
		v = append(v, float64(i))
	}
	d := summarize(v)
	want := Dist{N: 100, Mean: 50.5, P50: 50, P95: 95, P99: 99, Max: 100}
	if d != want {
		t.Errorf("summarize(1..100) = %+v, want %+v", d, want)
	}
	if d := summarize([]float64{7}); d.P50 != 7 || d.P99 != 7 || d.Max != 7 {
		t.Errorf("one value: %+v", d)
	}
	if d := summarize(nil); d != (Dist{}) {
		t.Errorf("no value: %+v", d)
	}
	if got := percentile([]float64{1, 2, 3, 4}, 50); got != 2 {
		t.Errorf("p50 of 1..4 = %v, want 2 (nearest rank)", got)
	}
}

func TestHistogram(t *testing.T) {
	h := &histogram{}
	for i := 1; i <= 10_000; i++ {
		h.add(time.Duration(i) * time.Microsecond * 10) // 10 µs to 100 ms
	}
	h.add(-time.Millisecond) // a clock step counts as zero
	d := h.dist()
	if d.N != 10_001 || d.Max != 100 {
		t.Errorf("n %d max %v", d.N, d.Max)
	}
	for _, c := range []struct{ got, want float64 }{{d.P50, 50}, {d.P95, 95}, {d.P99, 99}, {d.Mean, 50}} {
		if math.Abs(c.got-c.want)/c.want > 0.035 {
			t.Errorf("got %.3f ms, want %.1f ms within 3.5%% (%+v)", c.got, c.want, d)
		}
	}
	for _, us := range []uint64{0, 1, 31, 32, 33, 1000, 65_535, 1 << 40, math.MaxUint64} {
		i := histBucket(us)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucket of %d out of range: %d", us, i)
		}
		if v := histValue(i); us >= 32 && math.Abs(float64(v)-float64(us))/float64(us) > 1.0/32 {
			t.Errorf("bucket of %d stands for %d", us, v)
		}
	}
	if (&histogram{}).dist() != (Dist{}) {
		t.Error("an empty histogram is not zero")
	}
}

func TestSeqCounter(t *testing.T) {
	var c seqCounter
	// Across the wrap, with three lost, a late packet and a duplicate (which
	// hides one loss: viewers send no NACK, so the server sends none).
	for _, s := range []uint16{65530, 65531, 65533, 65534, 0, 3, 3, 1, 4} {
		c.add(s, 100)
	}
	received, lost := c.lossCounts()
	// Sent: 65530..65535 and 0..4, 11; received 9 (one twice).
	if received != 9 || lost != 2 {
		t.Errorf("received %d lost %d, want 9 and 2", received, lost)
	}
	if c.bytes.Load() != 900 {
		t.Errorf("bytes %d", c.bytes.Load())
	}
	// A packet older than the first one extends the range back.
	var d seqCounter
	for _, s := range []uint16{10, 11, 8} {
		d.add(s, 1)
	}
	if r, l := d.lossCounts(); r != 3 || l != 1 {
		t.Errorf("received %d lost %d, want 3 and 1", r, l)
	}
	if got := lossPercent(99, 1); got != 1 {
		t.Errorf("lossPercent(99, 1) = %v", got)
	}
}

func TestProcWatch(t *testing.T) {
	m := newMachineWatch()
	w := newProcWatch("self")
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
	} // burn some CPU
	w.sample()
	u, err := w.usage()
	if err != nil || u.Seconds <= 0 || u.RSSMaxMB <= 0 || u.Cores <= 0 {
		t.Errorf("usage %+v, %v", u, err)
	}
	if p, ok := m.busyPercent(); !ok || p <= 0 || p > 100 {
		t.Errorf("machine busy %v%% (%v) while this test burnt CPU", p, ok)
	}
}

func TestBitrateFlag(t *testing.T) {
	for in, want := range map[string]int{"2000k": 2_000_000, "2M": 2_000_000, "2.5M": 2_500_000, "300000": 300_000} {
		var b bitrate
		if err := b.Set(in); err != nil || int(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	var b bitrate
	if b.Set("-1k") == nil || b.Set("k") == nil {
		t.Error("a bad bitrate was accepted")
	}
}

// The HLS reader lists a media playlist's parts with their segment and
// index, and finds the playlists and the hold-back.
func TestParseHLSPlaylists(t *testing.T) {
	pl := []byte("#EXTM3U\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.58200\n#EXT-X-MEDIA-SEQUENCE:7\n" +
		"#EXTINF:1.0,\nseg7.mp4\n#EXT-X-PART:DURATION=0.2,URI=\"p0.mp4\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.2,URI=\"p1.mp4\"\n" +
		"#EXTINF:0.4,\nseg8.mp4\n#EXT-X-PART:DURATION=0.2,URI=\"p2.mp4\"\n")
	parts := parseMediaPlaylist(pl)
	want := []hlsPart{{8, 0, "p0.mp4"}, {8, 1, "p1.mp4"}, {9, 0, "p2.mp4"}}
	if len(parts) != len(want) {
		t.Fatalf("parts %v, want %v", parts, want)
	}
	for i := range want {
		if parts[i] != want[i] {
			t.Errorf("part %d: %v, want %v", i, parts[i], want[i])
		}
	}
	if hb := partHoldBackMs(pl); hb != 582 {
		t.Errorf("hold back %d ms, want 582", hb)
	}
	mv := []byte("#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio2\",URI=\"audio2_stream.m3u8\"\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1.42e01f,opus\",AUDIO=\"audio\"\nvideo1_stream.m3u8\n")
	if v, a := mediaPlaylists(mv); v != "video1_stream.m3u8" || a != "audio2_stream.m3u8" {
		t.Errorf("media playlists %q, %q", v, a)
	}
}
