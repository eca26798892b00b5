package sfu

import (
	"context"
	"fmt"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/media"
)

// negotiatePublisher answers a presenter's offer with exactly one codec per
// kind, the first of the presenter's choice that the SFU forwards, so that
// each published track's codec is known before its first packet.
func (e *Endpoint) negotiatePublisher(ctx context.Context, offer string, gathered bool) (string, error) {
	sections, err := parseOffer(offer)
	if err != nil {
		return "", err
	}
	chosen := map[webrtc.RTPCodecType]offeredCodec{}
	mids := map[string]webrtc.RTPCodecType{}
	var tracks, all []*upTrack // published (a simulcast video's top layer), and every layer
	for _, sec := range sections {
		if _, dup := chosen[sec.kind]; dup {
			continue // one track of each kind is forwarded
		}
		c, ok := choosePublished(sec)
		if !ok {
			continue
		}
		rids := simulcastRIDs(sec)
		if rids != nil {
			c.rtx = sec.rtx[c.pt]
		}
		chosen[sec.kind] = c
		mids[sec.mid] = sec.kind
		exts := forwardedIDs(sec)
		if rids != nil {
			g := newLayers(e, codecParams(c, sec.kind, true), exts, rids)
			tracks, all = append(tracks, g.top()), append(all, g.layers...)
			continue
		}
		t := newUpTrack(e, sec.kind, codecParams(c, sec.kind, true), exts)
		tracks, all = append(tracks, t), append(all, t)
	}
	measureAudio(all)
	if len(tracks) == 0 {
		return "", fmt.Errorf("%w: the offer has no VP8, VP9, H.264, AV1 or Opus", media.ErrIncompatible)
	}
	api, err := e.p.engine.publisherAPI(chosen)
	if err != nil {
		return "", fmt.Errorf("sfu: media engine: %w", err)
	}
	if err := e.setRole(all, nil); err != nil {
		return "", err
	}
	pc, err := e.newPC(api)
	if err != nil {
		return "", err
	}
	pc.OnTrack(func(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		if t := trackFor(all, remote); t != nil {
			e.log.Info("presenter track arrived", "kind", t.kind.String(),
				"codec", remote.Codec().MimeType, "ssrc", uint32(remote.SSRC()), "rid", t.rid)
			t.start(remote, receiver)
			return
		}
		// Not forwarded (a second track of a kind, a fourth layer): read it
		// so pion does not stall.
		e.goroutine(func() { drainRTCP(remote.Read) })
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %v", media.ErrBadOffer, err)
	}
	if err := preferChosen(pc, mids, chosen); err != nil {
		return "", err
	}
	answer, err := e.finishOffer(ctx, pc, gathered)
	if err != nil {
		return "", err
	}
	e.p.publish(tracks)
	if rate := e.p.engine.cfg.MaxVideoBitrate; rate > 0 {
		e.goroutine(func() { e.sendREMB(all, rate) })
	}
	e.logPublishing(tracks)
	return capBandwidth(answer, e.p.engine.cfg.MaxVideoBitrate), nil
}

// forwardedIDs are the ids a section of the offer gives the RTP header
// extensions that are forwarded to viewers, by URI.
func forwardedIDs(sec offeredSection) map[string]uint8 {
	exts := map[string]uint8{}
	for _, uri := range forwardedExtensions {
		if id, ok := sec.extensions[uri]; ok && id > 0 && id < 256 {
			exts[uri] = uint8(id)
		}
	}
	return exts
}

// preferChosen makes each published transceiver (by mid) answer with the
// codec chosen for its kind, and its RTX if the presenter offered one.
func preferChosen(pc *webrtc.PeerConnection, mids map[string]webrtc.RTPCodecType, chosen map[webrtc.RTPCodecType]offeredCodec) error {
	for _, tr := range pc.GetTransceivers() {
		kind, ok := mids[tr.Mid()]
		if !ok {
			continue
		}
		c := chosen[kind]
		prefs := []webrtc.RTPCodecParameters{codecParams(c, kind, true)}
		if c.rtx != 0 {
			prefs = append(prefs, rtxCodec(c.pt, c.rtx))
		}
		if err := tr.SetCodecPreferences(prefs); err != nil {
			return fmt.Errorf("sfu: codec %s: %w", c.mime, err)
		}
	}
	return nil
}

// logPublishing says what the presenter publishes.
func (e *Endpoint) logPublishing(tracks []*upTrack) {
	for _, t := range tracks {
		layers := 1
		if t.group != nil {
			layers = len(t.group.layers)
		}
		e.log.Info("publishing", "kind", t.kind.String(), "codec", t.codec.MimeType, "fmtp", t.codec.SDPFmtpLine,
			"layers", layers)
	}
}

// sendREMB tells the presenter the video bitrate cap, every second.
func (e *Endpoint) sendREMB(tracks []*upTrack, rate int) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-e.done:
			return
		case <-tick.C:
		}
		var ssrcs []uint32
		for _, t := range tracks {
			if s := t.ssrc.Load(); t.isVideo && s != 0 {
				ssrcs = append(ssrcs, s)
			}
		}
		e.mu.Lock()
		pc := e.pc
		e.mu.Unlock()
		if len(ssrcs) == 0 || pc == nil {
			continue
		}
		_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: float32(rate), SSRCs: ssrcs}})
	}
}
