package sfu

import (
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/interceptor/pkg/gcc"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Each simulcast viewer's downlink is estimated from transport-wide
// congestion control feedback (TWCC): pion/interceptor's gcc send-side
// estimator reads it and reports the loss and whether delay is building
// (overuse); the viewer's receiver reports are a backstop for the loss.
// From those and the rate the viewer is actually sent, the estimate is:
//   - unknown (no limit seen) until loss or delay first shows one;
//   - on loss over lossDown, or delay building for overuseFor: what got
//     through, less a margin, at once (down fast);
//   - otherwise at least what is being sent without loss.
//
// A viewer goes down as soon as the estimate is below its layer's bitrate
// (and the audio's), to the best layer the estimate carries. It goes up
// only when the estimate has held above the next layer's bitrate for
// upHold. As the estimate cannot rise above what is sent, the viewer is
// probed first: padding packets (which its decoder skips) raise what it is
// sent, by steps, to a little over the next layer's bitrate. A probe stops
// at the first loss (over lossProbe) or delay, and the next waits a
// backoff that doubles up to probeBackoffMax.
const (
	bweTick         = 200 * time.Millisecond
	lossDown        = 0.10
	congestedSteps  = 3 // of bweTick: 600 ms
	lossUp          = 0.02
	lossProbe       = 0.04 // a probe stops at this loss
	overuseFor      = 2 * time.Second
	overuseAfter    = 3 * time.Second // delay is not trusted while a viewer starts
	upHold          = 2 * time.Second
	downSettle      = 1500 * time.Millisecond // after a decrease, its effect is awaited
	probeStep       = 1.3
	probeFineStep   = 1.1 // the steps across the last limit seen
	probeFirstStep  = 1.2
	probeStepEvery  = 500 * time.Millisecond
	probeFirst      = 3 * time.Second
	probeBackoffMax = 6 * time.Second
	probeAgain      = time.Second // after a switch up, the next probe
	keyframeRetry   = time.Second // re-ask a keyframe a switch still waits for
	reportMaxAge    = 1500 * time.Millisecond
	reportInterval  = time.Second
)

// estimator is the gcc estimator of a viewer's connection.
type estimator struct{ cc.BandwidthEstimator }

// addEstimator has a viewer's connection send transport-wide sequence
// numbers and feed TWCC feedback to a gcc estimator, which it hands to sub.
// No pacer: packets leave as the writer sends them.
func addEstimator(m *webrtc.MediaEngine, ir *interceptor.Registry, sub *subscriber) error {
	f, err := cc.NewInterceptor(func() (cc.BandwidthEstimator, error) {
		return gcc.NewSendSideBWE(gcc.SendSideBWEPacer(gcc.NewNoOpPacer()))
	})
	if err != nil {
		return err
	}
	f.OnNewPeerConnection(func(_ string, est cc.BandwidthEstimator) {
		sub.bwe.Store(&estimator{est})
	})
	ir.Add(f)
	// Video only: a receiver that records arrivals as each stream is read
	// (pion does) would otherwise report video packets read after later
	// audio ones as lost.
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI},
		webrtc.RTPCodecTypeVideo); err != nil {
		return err
	}
	hx, err := twcc.NewHeaderExtensionInterceptor()
	if err != nil {
		return err
	}
	ir.Add(hx)
	return nil
}

// bweState is the estimator's state, its goroutine's only.
type bweState struct {
	startedAt    time.Time
	decreasedAt  time.Time
	congestedFor int     // steps in a row with loss or delay
	est          float64 // bit/s; 0: no limit seen
	sendRate     float64 // bit/s, smoothed
	lastBytes    uint64
	lastAt       time.Time
	overuseSince time.Time
	aboveSince   time.Time // the estimate carries the next layer since
	probing      bool
	probeRate    float64
	probeBase    float64 // the estimate when the probe began
	// sent is the most the viewer was sent without loss since the estimate
	// last fell for congestion: what it is known to carry.
	sent float64
	// limit is what got through when the estimate last fell for
	// congestion: a policer's rate, or a queue's.
	limit       float64
	probeStepAt time.Time
	probeNext   time.Time
	backoff     time.Duration

	rrLoss atomic.Uint32 // the newest receiver report's fraction lost (of 256)
	rrAt   atomic.Int64  // when it came, in Unix nanoseconds
}

// onReport notes the loss a viewer's receiver report gives (its video).
func (s *layerSel) onReport(rr *rtcp.ReceiverReport) {
	for _, r := range rr.Reports {
		if b := s.d.bind.Load(); b != nil && r.SSRC == b.ssrc {
			s.bwe.rrLoss.Store(uint32(r.FractionLost))
			s.bwe.rrAt.Store(time.Now().UnixNano())
		}
	}
}

// run chooses the viewer's layer every bweTick until the endpoint ends.
func (s *layerSel) run(ep *Endpoint, sub *subscriber, audio *upTrack) {
	tick := time.NewTicker(bweTick)
	defer tick.Stop()
	s.bwe.probeNext = time.Now().Add(probeFirst)
	s.bwe.backoff = probeFirst
	for {
		select {
		case <-ep.done:
			return
		case now := <-tick.C:
			s.step(now, ep, sub, audio)
		}
	}
}

// step updates the estimate and acts on it.
func (s *layerSel) step(now time.Time, ep *Endpoint, sub *subscriber, audio *upTrack) {
	b := &s.bwe
	if b.startedAt.IsZero() {
		b.startedAt = now
	}
	bytes := ep.bytesOut.Load()
	if !b.lastAt.IsZero() {
		rate := float64(bytes-b.lastBytes) * 8 / now.Sub(b.lastAt).Seconds()
		b.sendRate = (b.sendRate + rate) / 2
	}
	b.lastBytes, b.lastAt = bytes, now

	loss, overuse := s.signals(sub, b.decreasedAt)
	if overuse && now.Sub(b.startedAt) >= overuseAfter {
		if b.overuseSince.IsZero() {
			b.overuseSince = now
		}
	} else {
		b.overuseSince = time.Time{}
	}
	congested := loss > lossDown || (!b.overuseSince.IsZero() && now.Sub(b.overuseSince) >= overuseFor)
	// One bad feedback is not a limit: it must show at congestedSteps
	// steps in a row (a probe stops at the first).
	if congested {
		b.congestedFor++
	} else {
		b.congestedFor = 0
	}
	signalled := b.congestedFor > 0
	congested = b.congestedFor >= congestedSteps
	switch {
	case b.probing && (signalled || loss >= lossProbe):
		// The probe's padding found the limit: without it, the path
		// carried the step before this one.
		ep.log.Debug("simulcast probe stopped", "loss", loss, "reportLoss", float64(b.rrLoss.Load())/256,
			"probe", int(b.probeRate), "send", int(b.sendRate))
		b.est, b.decreasedAt = max(b.probeBase, b.probeRate/probeStep), now
		s.probeFailed(now)
	case congested && now.Sub(b.decreasedAt) < downSettle:
		// the last decrease has not shown its effect yet
	case congested:
		through := b.sendRate * (1 - loss) * 0.9
		if b.est == 0 || through < b.est {
			b.est, b.decreasedAt, b.sent = through, now, 0
			b.limit = b.sendRate * (1 - loss)
		}
		b.overuseSince = time.Time{}
		s.probeFailed(now)
	case loss < lossUp && b.est > 0:
		b.est = max(b.est, b.sendRate)
		b.sent = max(b.sent, b.sendRate)
	}
	s.estimate.Store(int64(b.est))
	s.choose(now, audio)
}

// signals reads the estimator's loss and delay, and the loss of a receiver
// report that came after the estimate last went down.
func (s *layerSel) signals(sub *subscriber, since time.Time) (loss float64, overuse bool) {
	if e := sub.bwe.Load(); e != nil {
		st := e.GetStats()
		loss, _ = st["averageLoss"].(float64)
		u, _ := st["usage"].(string)
		overuse = u == "overuse"
	}
	// A report covers the second before it: one that came within a second
	// of a decrease still counts the loss that caused it.
	if at := time.Unix(0, s.bwe.rrAt.Load()); at.After(since.Add(reportInterval)) && time.Since(at) < reportMaxAge {
		loss = max(loss, float64(s.bwe.rrLoss.Load())/256)
	}
	return loss, overuse
}

// choose switches down when the estimate is below the current layer, up
// when it has carried the next for upHold, and probes in between.
func (s *layerSel) choose(now time.Time, audio *upTrack) {
	b := &s.bwe
	_, want, pin := s.state()
	if d := s.pendingFor(); d > keyframeRetry {
		s.g.layers[want].requestKeyframe() // throttled per layer
	}
	if pin >= 0 {
		s.setTarget(s.g.sentNear(min(pin, int8(len(s.g.layers)-1))))
		s.endProbe()
		return
	}
	var audioRate float64
	if audio != nil {
		audioRate = float64(audio.bitrate())
	}
	need := func(l int8) float64 { return float64(s.g.layers[l].bitrate()) + audioRate }
	top := int8(len(s.g.layers) - 1)
	if s.g.layers[want].bitrate() == 0 && !s.g.starting(want) {
		// The presenter paused this layer (or never sent it): the best
		// layer that flows, within the estimate.
		for l := top; l >= 0; l-- {
			if r := s.g.layers[l].bitrate(); r > 0 && (b.est == 0 || need(l) <= b.est || l == 0) {
				if l != want {
					s.d.sub.ep.log.Debug("simulcast layer not sent by the presenter", "from", want, "to", l)
				}
				s.setTarget(l)
				break
			}
		}
		return
	}
	if b.est > 0 && b.est < need(want)*0.95 && want > 0 {
		l := want - 1
		for l > 0 && need(l) > b.est {
			l--
		}
		s.d.sub.ep.log.Debug("simulcast layer down", "from", want, "to", l, "estimate", int(b.est))
		s.setTarget(l)
		s.wentDown(now)
		b.aboveSince = time.Time{}
		return
	}
	if want == top {
		s.endProbe()
		return
	}
	next := want + 1
	if s.g.layers[next].bitrate() == 0 {
		return // paused by the presenter
	}
	// Up only on what was sent: an estimate left by a decrease (what got
	// through a congested path, less a margin) may be just above the next
	// layer, but the next layer's rate varies more than that margin. (sent
	// never exceeds est: both grow with the send rate, and a decrease
	// lowers est and restarts sent from zero.)
	if b.est == 0 || b.sent >= need(next) {
		if b.aboveSince.IsZero() {
			b.aboveSince = now
		}
		if now.Sub(b.aboveSince) >= upHold {
			s.d.sub.ep.log.Debug("simulcast layer up", "from", want, "to", next, "estimate", int(b.est))
			s.setTarget(next)
			s.wentUp(now)
			b.aboveSince = time.Time{}
			return
		}
	} else {
		b.aboveSince = time.Time{}
	}
	s.stepProbe(now, need(want), need(next)*1.1)
}

// stepProbe starts a probe when its time has come, and raises it by steps.
func (s *layerSel) stepProbe(now time.Time, sending, goal float64) {
	b := &s.bwe
	switch {
	case !b.probing && now.After(b.probeNext):
		b.probing, b.probeStepAt = true, now
		// from what the layer needs, or straight to the estimate if it
		// is known to be higher, but never a whole step above both
		b.probeRate = max(sending*probeFirstStep, min(b.est, sending*probeStep))
		b.probeBase = max(b.est, sending)
	case b.probing && now.Sub(b.probeStepAt) >= probeStepEvery:
		b.probeStepAt = now
		// Across the last limit seen, small steps: a probe over a
		// policer's rate drops media too until its loss shows, and the
		// larger the step over, the more.
		f := probeStep
		if b.probeRate*probeStep > b.limit && b.probeRate < b.limit*probeStep {
			f = probeFineStep
		}
		b.probeRate *= f
	}
	if !b.probing {
		return
	}
	b.probeRate = min(b.probeRate, goal)
	s.probeBPS.Store(int64(max(0, b.probeRate-sending)))
}

// endProbe stops sending padding.
func (s *layerSel) endProbe() {
	s.probeBPS.Store(0)
	s.bwe.probing = false
}

// probeFailed ends a probe that met loss or delay: the next waits twice as
// long as the last did (up to probeBackoffMax).
func (s *layerSel) probeFailed(now time.Time) {
	b := &s.bwe
	if !b.probing {
		return
	}
	b.backoff = min(2*b.backoff, probeBackoffMax)
	b.probeNext = now.Add(b.backoff)
	s.endProbe()
}

// wentDown waits at least probeFirst before probing again: what the viewer
// is sent must first settle on its new layer.
func (s *layerSel) wentDown(now time.Time) {
	b := &s.bwe
	s.endProbe()
	b.backoff = max(b.backoff, probeFirst)
	b.probeNext = now.Add(b.backoff)
}

// wentUp probes again soon, for the next layer, and forgets past failures.
func (s *layerSel) wentUp(now time.Time) {
	b := &s.bwe
	s.endProbe()
	b.backoff = probeFirst
	b.probeNext = now.Add(probeAgain)
}

// probeBudget is the writer's account of the probe's bytes, and its
// padding packet.
type probeBudget struct {
	bytes float64
	last  time.Time
	hdr   rtp.Header
	pad   [maxPadding]byte
}

const (
	// maxPadding is the largest RTP padding (its length is one byte).
	maxPadding = 255
	// maxPaddingPackets bounds the padding sent after one frame.
	maxPaddingPackets = 40
)

// pad sends padding-only packets after a frame of the current layer while
// a probe asks for more than the media: they load the viewer's path as more
// media would, and its decoder skips them. They take sequence numbers of
// their own, so they count in the transport-wide feedback (a copy of a
// media packet would not: SRTP's replay check drops it). It runs on the
// writer goroutine, after p was written.
func (s *layerSel) pad(w webrtc.TrackLocalWriter, b *binding, p *packet) {
	bps := s.probeBPS.Load()
	now := p.arrival
	if bps == 0 {
		s.probe.bytes, s.probe.last = 0, time.Time{}
		return
	}
	if !s.probe.last.IsZero() && now.After(s.probe.last) {
		s.probe.bytes = min(s.probe.bytes+float64(bps)/8*now.Sub(s.probe.last).Seconds(), 64*1024)
	}
	if now.After(s.probe.last) {
		s.probe.last = now
	}
	const size = maxPadding + 12
	n := min(maxPaddingPackets, int(s.probe.bytes/size))
	if !p.header.Marker || n == 0 {
		return
	}
	first, ts, ok := s.reserve(p, uint16(n))
	if !ok {
		return
	}
	h := &s.probe.hdr
	s.probe.pad[maxPadding-1] = maxPadding
	for i := 0; i < n; i++ {
		*h = rtp.Header{Version: 2, Padding: true, PayloadType: b.pt, SequenceNumber: first + uint16(i),
			Timestamp: ts, SSRC: b.ssrc, Extensions: h.Extensions[:0]}
		if _, err := w.WriteRTP(h, s.probe.pad[:]); err != nil {
			return
		}
		s.probe.bytes -= size
		s.d.sub.ep.bytesOut.Add(size)
	}
}
