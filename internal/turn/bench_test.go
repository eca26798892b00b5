package turn_test

import (
	"net"
	"syscall"
	"testing"
	"time"
)

const (
	benchPacket = 1200 // bytes: a full video RTP packet
	benchWindow = 64   // packets in flight: a burst, without overflowing socket buffers
)

// BenchmarkRelayToViewer is the cost of relaying media packets to a
// viewer: the media socket sends them to the relay, the TURN server wraps
// each and sends it on to the client, whose TURN client reads it. Compare
// with BenchmarkDirectToViewer, the same packets without the relay; the
// difference in cpu-ns/pkt (this process's CPU time, user and system, per
// packet) is what a relayed viewer costs. Both ends are in this process,
// so the viewer's share (reading, and unwrapping in the TURN client) is
// counted too: an upper bound of the server's.
func BenchmarkRelayToViewer(b *testing.B) {
	n := startNode(b, nil)
	_, relay := allocate(b, n, "ann")
	// A packet from the client first: the permission, and the relay's
	// address as the media socket sees it.
	if _, err := relay.WriteTo([]byte("hello"), n.media.LocalAddr()); err != nil {
		b.Fatal(err)
	}
	_, relayAddr, err := readWithin(n.media, wait)
	if err != nil {
		b.Fatal(err)
	}
	pump(b, n.media, relayAddr, relay)
}

// BenchmarkDirectToViewer is BenchmarkRelayToViewer's packets sent
// straight to the viewer's socket.
func BenchmarkDirectToViewer(b *testing.B) {
	media, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer media.Close()
	viewer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer viewer.Close()
	pump(b, media, viewer.LocalAddr(), viewer)
}

// pump sends b.N packets from src to dst, at most benchWindow unread, and
// reads them from recv; it reports the CPU time per packet.
func pump(b *testing.B, src net.PacketConn, dst net.Addr, recv net.PacketConn) {
	pkt := make([]byte, benchPacket)
	window := make(chan struct{}, benchWindow)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1500)
		for range b.N {
			_ = recv.SetReadDeadline(time.Now().Add(wait))
			if _, _, err := recv.ReadFrom(buf); err != nil {
				done <- err
				return
			}
			<-window
		}
		done <- nil
	}()
	b.SetBytes(benchPacket)
	b.ReportAllocs()
	before := cpuTime(b)
	b.ResetTimer()
	for range b.N {
		window <- struct{}{}
		if _, err := src.WriteTo(pkt, dst); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatalf("reading (a packet lost?): %v", err)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-before).Nanoseconds())/float64(b.N), "cpu-ns/pkt")
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
