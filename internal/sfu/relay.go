package sfu

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/media"
)

// A relay pull: a Publisher endpoint whose media comes from another server
// (another onair node, over WHEP) rather than from a presenter. The endpoint
// makes the offer itself (recvonly audio and video), the node pulled from
// answers with the broadcast's codecs, and the tracks that arrive are
// published to the pipeline exactly as a presenter's: viewers, the
// group-of-pictures replay, the NACK history and the keyframe throttle work
// unchanged, and a viewer's keyframe request goes upstream as a PLI on the
// pull's receiver. NACKs for what this hop lost are sent upstream by the
// pull's own NACK generator and answered from the history of the node
// pulled from; a viewer's NACKs are answered here.
//
// When the node pulled from goes away, the owner calls Pull again with
// another node: the new connection feeds the same tracks. Every node
// forwards the presenter's sequence numbers and timestamps unchanged, so
// the new connection continues the old one's numbering: the viewers see a
// short freeze (a gap, then the group-of-pictures replay of the new node
// pulled from), not a new stream.

var errNotPublisher = errors.New("sfu: only a publisher endpoint can pull")

// relayICESilence is how long a pull's connection may be silent before ICE
// calls it disconnected and the owner pulls again: short, because a relay
// carries media continuously and its viewers are frozen meanwhile.
const relayICESilence = 1500 * time.Millisecond

// pullState is a pull's current connection: packets of older ones, still
// being read as they close, are dropped.
type pullState struct {
	mu  sync.Mutex
	gen uint64
}

// Pull implements media.Puller.
func (e *Endpoint) Pull(ctx context.Context, exchange media.Exchange) error {
	e.negotiate.Lock()
	defer e.negotiate.Unlock()
	e.mu.Lock()
	switch {
	case e.released:
		e.mu.Unlock()
		return media.ErrReleased
	case e.role != media.Publisher || e.rec != nil:
		e.mu.Unlock()
		return errNotPublisher
	}
	if e.pull == nil {
		e.pull = &pullState{}
	}
	old := e.pc
	e.pc, e.remoteSet, e.connected, e.failed = nil, false, false, false
	e.early.Take()
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.offerAt = time.Now()
	ps := e.pull
	tracks := e.tracks
	e.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	// Keyframes asked before the new connection's tracks arrive are sent
	// when they do (an older connection's SSRCs mean nothing to the new one).
	for _, t := range tracks {
		t.ssrc.Store(0)
	}
	if err := e.pullOnce(ctx, ps, exchange); err != nil {
		e.dropPC()
		return err
	}
	return nil
}

func (e *Endpoint) pullOnce(ctx context.Context, ps *pullState, exchange media.Exchange) error {
	api, err := e.p.engine.pullAPI()
	if err != nil {
		return fmt.Errorf("sfu: media engine: %w", err)
	}
	pc, err := e.newPC(api)
	if err != nil {
		return err
	}
	// An audio section, and a video section for each simulcast layer
	// (relaylayers.go).
	kinds := []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio}
	for range maxLayers {
		kinds = append(kinds, webrtc.RTPCodecTypeVideo)
	}
	for _, kind := range kinds {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return fmt.Errorf("sfu: relay %s transceiver: %w", kind, err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("sfu: relay offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("sfu: relay offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	answer, err := exchange(ctx, bundleCandidates(pc.LocalDescription().SDP))
	if err != nil {
		return err
	}
	tracks, byMid, err := e.relayTracks(answer)
	if err != nil {
		return err
	}
	gen := ps.next()
	pc.OnTrack(func(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		if t := byMid[receiverMid(pc, receiver)]; t != nil {
			e.log.Info("relay track arrived", "kind", t.kind.String(), "codec", remote.Codec().MimeType, "rid", t.rid)
			t.ssrc.Store(uint32(remote.SSRC()))
			e.goroutine(func() { t.readLoop(remote, ps.accept(gen)) })
			e.goroutine(func() { drainRTCP(receiver.Read) })
			t.sendWantedKeyframe()
			return
		}
		e.goroutine(func() { drainRTCP(remote.Read) })
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("%w: the relay's answer: %v", media.ErrBadOffer, err)
	}
	e.mu.Lock()
	e.remoteSet = true
	if !e.connected && e.timer == nil && !e.released {
		e.timer = time.AfterFunc(e.p.engine.cfg.ConnectTimeout, func() {
			e.fail(fmt.Sprintf("relay did not connect within %s", e.p.engine.cfg.ConnectTimeout))
		})
	}
	e.mu.Unlock()
	e.p.publish(tracks)
	return nil
}

// relayTracks makes the pull's tracks of the answer's codecs and layers
// (its first pull), or finds them again (a pull again), and returns those
// to publish and each answered section's track by mid.
func (e *Endpoint) relayTracks(answer string) ([]*upTrack, map[string]*upTrack, error) {
	plain, layers, err := pulledSections(answer)
	if err != nil {
		return nil, nil, err
	}
	e.mu.Lock()
	have := e.tracks
	e.mu.Unlock()
	if have != nil {
		// A first pull may have failed after its tracks were made, and
		// not published them: publish as it would have.
		byMid, err := againRelayTracks(have, plain, layers)
		return publishedOf(have), byMid, err
	}
	if len(plain)+len(layers) == 0 {
		return nil, nil, fmt.Errorf("%w: the relay source answered with no media", media.ErrIncompatible)
	}
	tracks, all, byMid := e.newRelayTracks(plain, layers)
	if err := e.setRole(all, nil); err != nil {
		return nil, nil, err
	}
	return tracks, byMid, nil
}

// receiverMid is the mid of the section a receiver of pc receives.
func receiverMid(pc *webrtc.PeerConnection, receiver *webrtc.RTPReceiver) string {
	for _, tr := range pc.GetTransceivers() {
		if tr.Receiver() == receiver {
			return tr.Mid()
		}
	}
	return ""
}

// next starts a new connection and returns its generation.
func (ps *pullState) next() uint64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.gen++
	return ps.gen
}

// current reports whether gen is the current connection.
func (ps *pullState) current(gen uint64) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.gen == gen
}

// accept keeps the packets of connection gen; an older connection's are
// dropped until it has closed. Those the pipeline has had already (the new
// node pulled from replays its group of pictures) are dropped by dispatch,
// as any presenter's copies are.
func (ps *pullState) accept(gen uint64) func(*packet) bool {
	return func(*packet) bool { return ps.current(gen) }
}

// pullAPI builds a pion API for a relay pull: every codec the SFU forwards
// (the node pulled from answers with the broadcast's), the forwarded header
// extensions, NACKs and receiver reports upstream, and an ICE that calls a
// silent source disconnected quickly.
func (e *Engine) pullAPI() (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		for _, uri := range forwardedExtensions {
			if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, kind); err != nil {
				return nil, err
			}
		}
	}
	ir, err := receiverInterceptors()
	if err != nil {
		return nil, err
	}
	se := e.setting
	se.SetICETimeouts(relayICESilence, e.cfg.DisconnectTimeout+10*time.Second, 500*time.Millisecond)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(se)), nil
}
