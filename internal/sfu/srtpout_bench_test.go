package sfu

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/webrtc/v4"
)

// BenchmarkSendPath compares the cost of sending one forwarded packet to
// one viewer on the SFU's own path (rewrite, marshal into the batch, SRTP
// encrypt in place: srtpout.go) and on pion's (rewrite, RTPSender writer,
// interceptors, pion's SRTP session, ICE connection, copy into the batch),
// with a real pion viewer connected over loopback, whose socket discards
// the RTP: frames of 4 packets of 1,200 bytes, each frame one batch (one
// GSO send). ns/op is per packet; cpu-ns/op is the process's CPU time
// (every goroutine, user and system) per packet, less sensitive to a busy
// machine than ns/op.
//
//	go test -run '^$' -bench SendPath -benchmem ./internal/sfu
func BenchmarkSendPath(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	eng, mp := newLoopbackPipeline(b, Config{}, "bench")
	pres := newDirectPresenter(ctx, b, mp)
	v := newDirectViewer(ctx, b, mp, "viewer", webrtc.Configuration{}, dtls.SRTP_AEAD_AES_128_GCM, false)
	defer func() { _ = v.pc.Close(); _ = v.mux.Close(); _ = pres.pc.Close(); _ = eng.Close() }()
	waitFor(b, func() bool { return v.ep.Stats().State == "connected" })
	v.conn.sink.Store(true)
	sub := v.ep.sub
	var d *downTrack
	for _, x := range sub.downs {
		if x.up.isVideo {
			d = x
		}
	}
	p, err := newPacket(rawPacket(1))
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []struct {
		name  string
		state directState
	}{{"direct", directOn}, {"pion", directOff}} {
		b.Run(path.name, func(b *testing.B) {
			sub.direct.mu.Lock()
			sub.direct.state = path.state
			sub.direct.mu.Unlock()
			before := sub.direct.packets.Load()
			cpu0 := processCPU()
			b.ReportAllocs()
			b.SetBytes(int64(len(p.payload)))
			for i := 0; b.Loop(); i++ {
				if i%4 == 0 {
					sub.begin()
				}
				p.header.SequenceNumber++
				d.write(p)
				if i%4 == 3 {
					sub.flush()
				}
			}
			sub.flush()
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			if sent := sub.direct.packets.Load() - before; (path.state == directOn) != (sent > 0) {
				b.Fatalf("%d packets sent directly on the %s path", sent, path.name)
			}
		})
	}
}

// processCPU is the CPU time the process has used, user and system, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
