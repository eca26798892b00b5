package sfu

import (
	"container/heap"
	"math/rand/v2"
	"time"

	"github.com/pion/rtcp"
)

// senderReportInterval is how often a viewer is sent sender reports, as pion's
// report interceptor does.
const senderReportInterval = time.Second

// senderStats is what a viewer's sender reports say of one of its tracks
// (RFC 3550 6.4.1). The SFU writes the reports of viewers without simulcast
// itself, whichever path their packets take (srtpout.go): pion's report
// interceptor sees only the packets sent through pion. Only the viewer's
// shard writer touches it (downTrack.write, subscriber.sendReports), one
// writer at a time (writerPool.start), so it takes no lock.
type senderStats struct {
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
	if !s.any || !arrival.Before(s.at) {
		s.ts, s.at = ts, arrival
	}
	s.any = true
	s.packets++
	s.octets += uint32(payload)
}

// report is the track's sender report at now, or false before its first
// packet.
func (s *senderStats) report(ssrc, clockRate uint32, now time.Time) (*rtcp.SenderReport, bool) {
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

// The sender reports of a viewer are sent by its shard's writer (writers.go),
// not by a goroutine and ticker of its own: at 200 viewers those cost more
// than the reports themselves, and most at low bitrates. The writer keeps
// its viewers in a queue by when each is next due. A report is sent at the
// first wake of the writer from reportSlack before it is due, in the batch
// of the viewer's media if it has some in that burst (one system call for
// both); a timer set for the earliest due wakes the writer when no media
// does. Each viewer's first report is due at a random point of the first
// interval, so that viewers who join together do not all report at once;
// each later one an interval after the one before, so that a viewer gets
// one report per senderReportInterval and track, give or take reportSlack.
// A viewer that leaves (gone) is dropped from the queue when it comes up.
//
// pion's WriteRTCP, from the writer, goes the way of the viewer's media
// through pion: batched (and dropped when the socket is full) on the
// viewer's own sockets; sent at once on the shared UDP port, as its media;
// and a viewer over ICE-TCP, whose write can block, has a writer of its own.

// reportSlack is how early a viewer's report may be sent, to go with its
// media instead of on a wake of its own: more than the 20 ms between audio
// packets.
const reportSlack = senderReportInterval / 20

// reporters is a shard's viewers that are sent sender reports, a min-heap by
// when each is next due (container/heap). The writer alone uses it.
type reporters []*subscriber

func (h reporters) Len() int           { return len(h) }
func (h reporters) Less(i, j int) bool { return h[i].srNext.Before(h[j].srNext) }
func (h reporters) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *reporters) Push(x any)        { *h = append(*h, x.(*subscriber)) }
func (h *reporters) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return s
}

// reportTo has the shard's writer send the viewer's sender reports from now
// on, until the viewer is gone.
func (sh *shard) reportTo(s *subscriber) {
	sh.joinMu.Lock()
	sh.joins = append(sh.joins, s)
	sh.joined.Store(true)
	sh.joinMu.Unlock()
	sh.wakeup()
}

// takeJoins queues the viewers added since the last wake, each first due at
// a random point of the interval.
func (sh *shard) takeJoins(now time.Time) {
	sh.joinMu.Lock()
	joins := sh.joins
	sh.joins = nil
	sh.joined.Store(false)
	sh.joinMu.Unlock()
	for _, s := range joins {
		if !s.gone.Load() {
			s.srNext = now.Add(rand.N(senderReportInterval))
			heap.Push(&sh.reporters, s)
		}
	}
}

// dueReports marks the viewers whose reports are due for this burst, adding
// those without media in it, and sets the timer for the next.
func (sh *shard) dueReports() {
	if len(sh.reporters) == 0 && !sh.joined.Load() {
		return
	}
	now := time.Now()
	if sh.joined.Load() {
		sh.takeJoins(now)
	}
	until := now.Add(reportSlack)
	for len(sh.reporters) > 0 && !sh.reporters[0].srNext.After(until) {
		s := sh.reporters[0]
		if s.gone.Load() {
			heap.Pop(&sh.reporters)
			continue
		}
		if len(s.pending) == 0 {
			sh.active = append(sh.active, s)
		}
		s.srDue = true
		s.srNext = s.srNext.Add(senderReportInterval)
		if !s.srNext.After(until) {
			// The writer was held up: no catching up, and the viewer
			// keeps its place in the interval, so that viewers do not
			// all fall due at once from then on.
			late := until.Sub(s.srNext)/senderReportInterval + 1
			s.srNext = s.srNext.Add(late * senderReportInterval)
		}
		heap.Fix(&sh.reporters, 0)
	}
	sh.armReports(now)
}

// armReports sets the timer for the earliest report due, or stops it.
func (sh *shard) armReports(now time.Time) {
	if len(sh.reporters) == 0 {
		if !sh.reportAt.IsZero() {
			sh.reportTimer.Stop()
			sh.reportAt = time.Time{}
		}
		return
	}
	at := sh.reporters[0].srNext
	if !at.Equal(sh.reportAt) {
		sh.reportTimer.Reset(at.Sub(now))
		sh.reportAt = at
	}
}

// stopReports hands the viewers still there to the shard's next writer (one
// may have joined as this one was ending) and stops the timer.
func (sh *shard) stopReports() {
	sh.reportTimer.Stop()
	sh.reportAt = time.Time{}
	var keep []*subscriber
	for _, s := range sh.reporters {
		if !s.gone.Load() {
			keep = append(keep, s)
		}
	}
	clear(sh.reporters)
	sh.reporters = sh.reporters[:0]
	if len(keep) > 0 {
		sh.joinMu.Lock()
		sh.joins = append(sh.joins, keep...)
		sh.joined.Store(true)
		sh.joinMu.Unlock()
	}
}

// sendReports sends the viewer's sender report of each of its tracks that
// has been sent media.
func (s *subscriber) sendReports() {
	if s.gone.Load() || s.pc == nil {
		return
	}
	now := time.Now()
	pkts := s.srPkts[:0]
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
		_ = s.pc.WriteRTCP(pkts)
	}
	clear(pkts)
	s.srPkts = pkts[:0]
}
