package sfu

import (
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// senderReportInterval is how often a viewer is sent sender reports, as pion's
// report interceptor does.
const senderReportInterval = time.Second

// senderStats is what a viewer's sender reports say of one of its tracks
// (RFC 3550 6.4.1). The SFU writes the reports of viewers without simulcast
// itself, whichever path their packets take (srtpout.go): pion's report
// interceptor sees only the packets sent through pion.
type senderStats struct {
	mu      sync.Mutex
	any     bool
	ts      uint32    // the RTP timestamp of the newest packet sent
	at      time.Time // when that packet arrived from the presenter
	packets uint32
	octets  uint32 // payload octets
}

// sent counts a packet. The timestamp mapping is the newest packet's, by
// arrival from the presenter: a retransmission or a replayed packet keeps
// the mapping its own (older) arrival and timestamp would give.
func (s *senderStats) sent(ts uint32, arrival time.Time, payload int) {
	if arrival.IsZero() {
		arrival = time.Now()
	}
	s.mu.Lock()
	if !s.any || !arrival.Before(s.at) {
		s.ts, s.at = ts, arrival
	}
	s.any = true
	s.packets++
	s.octets += uint32(payload)
	s.mu.Unlock()
}

// report is the track's sender report at now, or false before its first
// packet.
func (s *senderStats) report(ssrc, clockRate uint32, now time.Time) (*rtcp.SenderReport, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.any {
		return nil, false
	}
	elapsed := now.Sub(s.at)
	ts := s.ts + uint32(int64(elapsed)*int64(clockRate)/int64(time.Second))
	return &rtcp.SenderReport{SSRC: ssrc, NTPTime: ntpTime(now), RTPTime: ts,
		PacketCount: s.packets, OctetCount: s.octets}, true
}

// ntpTime is t in the 64-bit NTP format: seconds since 1900 and a fraction.
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800
	secs := uint64(t.Unix()) + unixToNTP
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

// reportLoop sends the viewer's sender reports every senderReportInterval until
// the endpoint is released.
func (s *subscriber) reportLoop(pc *webrtc.PeerConnection) {
	tick := time.NewTicker(senderReportInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.ep.done:
			return
		case now := <-tick.C:
			var pkts []rtcp.Packet
			for _, d := range s.downs {
				b := d.bind.Load()
				if b == nil {
					continue
				}
				if sr, ok := d.sr.report(b.ssrc, d.up.codec.ClockRate, now); ok {
					pkts = append(pkts, sr)
				}
			}
			if len(pkts) > 0 {
				_ = pc.WriteRTCP(pkts)
			}
		}
	}
}
