package sfu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/randid"
)

// Endpoint implements media.Endpoint: one peer's connection.
type Endpoint struct {
	p       *Pipeline
	id      string
	name    string
	role    media.Role
	ev      media.Events
	created time.Time
	log     *slog.Logger

	negotiate sync.Mutex // serializes offers

	mu        sync.Mutex
	pc        *webrtc.PeerConnection
	remoteSet bool
	early     media.CandidateQueue // remote candidates that came before the offer
	released  bool
	connected bool
	timer     *time.Timer // connect or disconnect deadline
	state     webrtc.PeerConnectionState
	offerAt   time.Time // when the offer being negotiated arrived

	failed bool // Failed was reported (guarded by mu; a relay pull resets it: relay.go)
	done   chan struct{}
	wg     sync.WaitGroup // the endpoint's own goroutines

	tracks []*upTrack  // publisher: what it publishes
	home   *shard      // a viewer's shard socket, held until Release (writers.go)
	sub    *subscriber // subscriber: its queue and tracks
	rec    *recording  // recorder (recorder.go): set at creation, never changed
	pull   *pullState  // a relay pull (relay.go): set by its first Pull

	pin atomic.Int32 // a viewer's pinned simulcast layer plus one, 0 for none (layer.go)
	// relayAll: a relay to another node, sent every simulcast layer (relay.go)
	relayAll atomic.Bool

	packetsIn, packetsOut, dropped, nacks, plis atomic.Uint64
	bytesIn, bytesOut                           atomic.Uint64
	duplicates                                  atomic.Uint64 // of packetsIn, dropped by upTrack.dispatch
}

var _ media.Endpoint = (*Endpoint)(nil)

func newEndpoint(p *Pipeline, role media.Role, name string, ev media.Events) *Endpoint {
	id := randid.New()
	return &Endpoint{
		p: p, id: id, name: name, role: role, ev: ev,
		created: time.Now(),
		log:     p.log.With("endpoint", id, "endpointName", name, "role", role.String()),
		done:    make(chan struct{}),
	}
}

func (e *Endpoint) ID() string       { return e.id }
func (e *Endpoint) Name() string     { return e.name }
func (e *Endpoint) Role() media.Role { return e.role }

// ProcessOffer negotiates and returns the answer; candidates trickle after.
func (e *Endpoint) ProcessOffer(ctx context.Context, offer string) (string, error) {
	return e.processOffer(ctx, offer, false)
}

// ProcessOfferGathered negotiates and returns an answer with every candidate.
func (e *Endpoint) ProcessOfferGathered(ctx context.Context, offer string) (string, error) {
	return e.processOffer(ctx, offer, true)
}

func (e *Endpoint) processOffer(ctx context.Context, offer string, gathered bool) (string, error) {
	e.negotiate.Lock()
	defer e.negotiate.Unlock()
	e.mu.Lock()
	switch {
	case e.released:
		e.mu.Unlock()
		return "", media.ErrReleased
	case e.pc != nil:
		e.mu.Unlock()
		return "", media.ErrAlreadyNegotiated
	case e.rec != nil:
		e.mu.Unlock()
		return "", errRecorderOffer
	}
	e.offerAt = time.Now()
	e.mu.Unlock()

	var (
		answer string
		err    error
	)
	if e.role == media.Publisher {
		answer, err = e.negotiatePublisher(ctx, offer, gathered)
	} else {
		answer, err = e.negotiateSubscriber(ctx, offer, gathered)
	}
	if err != nil {
		e.dropPC()
		return "", err
	}
	return answer, nil
}

// newPC creates the peer connection and wires the events every role shares.
func (e *Endpoint) newPC(api *webrtc.API) (*webrtc.PeerConnection, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.released {
		e.mu.Unlock()
		_ = pc.Close()
		return nil, media.ErrReleased
	}
	e.pc = pc
	e.mu.Unlock()
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil || e.ev.Candidate == nil {
			return
		}
		j := c.ToJSON()
		e.ev.Candidate(media.Candidate{Candidate: j.Candidate, SDPMid: j.SDPMid,
			SDPMLineIndex: j.SDPMLineIndex, UsernameFragment: j.UsernameFragment})
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { e.onState(pc, s) })
	return pc, nil
}

// setRole records what the endpoint publishes or subscribes to, before its
// peer connection exists, so that Release always sees it.
func (e *Endpoint) setRole(tracks []*upTrack, sub *subscriber) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.released {
		return media.ErrReleased
	}
	e.tracks, e.sub = tracks, sub
	return nil
}

// dropPC discards a peer connection whose negotiation failed, so that the
// client may offer again.
func (e *Endpoint) dropPC() {
	e.mu.Lock()
	pc := e.pc
	e.pc, e.remoteSet = nil, false
	e.early.Take()
	e.mu.Unlock()
	if pc != nil {
		_ = pc.Close()
	}
}

// finishOffer sets the answer, applies queued candidates and starts the
// connect deadline. With gathered, it waits for gathering and returns the
// local description with its candidates.
func (e *Endpoint) finishOffer(ctx context.Context, pc *webrtc.PeerConnection, gathered bool) (string, error) {
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("sfu: create answer: %w", err)
	}
	var gatherDone <-chan struct{}
	if gathered {
		gatherDone = webrtc.GatheringCompletePromise(pc)
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("sfu: set answer: %w", err)
	}
	e.mu.Lock()
	e.remoteSet = true
	early := e.early.Take()
	if !e.connected && e.timer == nil {
		e.timer = time.AfterFunc(e.p.engine.cfg.ConnectTimeout, func() {
			e.fail(fmt.Sprintf("media did not connect within %s", e.p.engine.cfg.ConnectTimeout))
		})
	}
	e.mu.Unlock()
	for _, c := range early {
		if err := pc.AddICECandidate(iceCandidateInit(c)); err != nil {
			e.log.Debug("queued candidate rejected", "err", err)
		}
	}
	if gathered {
		select {
		case <-gatherDone:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return bundleCandidates(pc.LocalDescription().SDP), nil
	}
	return answer.SDP, nil
}

// AddCandidate adds a remote candidate, or queues it until the offer.
func (e *Endpoint) AddCandidate(c media.Candidate) error {
	if !strings.HasPrefix(strings.TrimSpace(c.Candidate), "candidate:") && strings.TrimSpace(c.Candidate) != "" {
		return fmt.Errorf("%w: %q", media.ErrBadCandidate, c.Candidate)
	}
	e.mu.Lock()
	if e.released {
		e.mu.Unlock()
		return media.ErrReleased
	}
	if !e.remoteSet {
		defer e.mu.Unlock()
		if !e.early.Push(c) {
			return media.ErrTooManyCandidates
		}
		return nil
	}
	pc := e.pc
	e.mu.Unlock()
	if err := pc.AddICECandidate(iceCandidateInit(c)); err != nil {
		return fmt.Errorf("%w: %v", media.ErrBadCandidate, err)
	}
	return nil
}

// iceCandidateInit is a candidate in pion's shape.
func iceCandidateInit(c media.Candidate) webrtc.ICECandidateInit {
	return webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid,
		SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
}

// onState follows the connection: connected starts media to a viewer;
// disconnected starts the configured deadline; failed ends the endpoint.
func (e *Endpoint) onState(pc *webrtc.PeerConnection, s webrtc.PeerConnectionState) {
	e.log.Debug("connection state", "state", s.String())
	e.mu.Lock()
	if e.pc != pc {
		e.mu.Unlock() // a connection dropped after a failed negotiation
		return
	}
	e.state = s
	if e.released {
		e.mu.Unlock()
		return
	}
	first, took := false, time.Duration(0)
	sub := e.sub
	switch s {
	case webrtc.PeerConnectionStateConnected:
		if e.timer != nil {
			e.timer.Stop()
			e.timer = nil
		}
		first = !e.connected
		e.connected = true
		took = time.Since(e.offerAt)
	case webrtc.PeerConnectionStateDisconnected:
		if e.pull != nil {
			// The node pulled from went silent: pull again at once (relay.go).
			e.mu.Unlock()
			e.fail("the relay source went silent")
			return
		}
		if e.timer != nil {
			e.timer.Stop()
		}
		timeout := e.p.engine.cfg.DisconnectTimeout
		e.timer = time.AfterFunc(timeout-iceSilence(timeout), func() {
			e.fail(fmt.Sprintf("no media for %s", timeout))
		})
	case webrtc.PeerConnectionStateFailed:
		e.mu.Unlock()
		e.fail("media connection failed (ICE or DTLS)")
		return
	case webrtc.PeerConnectionStateClosed:
		// Not released by us, so the peer closed it (DTLS close_notify).
		e.mu.Unlock()
		e.fail("the peer closed the media connection")
		return
	}
	e.mu.Unlock()
	if first {
		e.log.Info("media connected", "took", took.Round(time.Millisecond))
		e.p.engine.connected(e.role, took)
		if sub != nil {
			if sub.direct != nil {
				sub.direct.start(pc.CurrentRemoteDescription())
			}
			sub.attach(pc)
		}
	}
}

// fail reports a dead media connection to the owner, once.
func (e *Endpoint) fail(reason string) {
	e.mu.Lock()
	if e.released || e.failed {
		e.mu.Unlock()
		return
	}
	e.failed = true
	e.mu.Unlock()
	e.log.Warn("media connection lost", "reason", reason)
	if e.ev.Failed != nil {
		e.p.engine.reportFailure(func() { e.ev.Failed(reason) })
	}
}

// Stats reports the endpoint's counters.
func (e *Endpoint) Stats() media.EndpointStats {
	e.mu.Lock()
	state := e.state.String()
	if e.pc == nil {
		state = "new"
	}
	sub := e.sub
	e.mu.Unlock()
	if e.rec != nil {
		state = e.rec.state()
	}
	s := media.EndpointStats{
		State: state, PacketsIn: e.packetsIn.Load(), PacketsOut: e.packetsOut.Load(),
		BytesIn: e.bytesIn.Load(), BytesOut: e.bytesOut.Load(),
		PacketsDropped: e.dropped.Load(), NACKs: e.nacks.Load(), PLIs: e.plis.Load(),
		PacketsDuplicate: e.duplicates.Load(),
	}
	if sub != nil && sub.direct != nil {
		s.PacketsDirect = sub.direct.packets.Load()
	}
	e.layerStats(&s)
	return s
}

// Release closes the peer connection, waits for the endpoint's goroutines and
// leaves the pipeline. Safe to call more than once and from any goroutine
// other than the endpoint's own.
func (e *Endpoint) Release() {
	e.mu.Lock()
	if e.released {
		e.mu.Unlock()
		return
	}
	e.released = true
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	pc, sub, tracks, home := e.pc, e.sub, e.tracks, e.home
	e.home = nil
	e.mu.Unlock()
	close(e.done)
	if sub != nil {
		sub.detach()
	}
	if e.rec != nil {
		e.rec.detach()
	}
	for _, t := range tracks {
		t.close()
	}
	if pc != nil {
		if err := pc.GracefulClose(); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
			e.log.Debug("close peer connection", "err", err)
		}
	}
	e.wg.Wait()
	if home != nil {
		e.p.engine.writers.unreserve(home)
	}
	if sub != nil && sub.batch != nil {
		st := sub.batch.Stats()
		e.log.Debug("viewer sends", "datagrams", st.Datagrams, "sends", st.Sends,
			"gsoSends", st.GSOSends, "errors", st.Errors, "dropped", st.Dropped)
	} else if sub != nil && sub.direct != nil {
		e.log.Debug("viewer sends on its writer's socket", "packets", sub.direct.packets.Load(),
			"dropped", sub.direct.dropped.Load())
	}
	if e.rec != nil {
		e.rec.finish()
	}
	e.p.engine.retire(e) // leaves the pipeline, counters kept
	e.log.Debug("endpoint released")
}

// reserveShard gives the viewer the shard whose sockets serve it, once (a
// second offer after a failed one keeps it), and its sockets.
func (e *Endpoint) reserveShard() (*shard, *shardSocket, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.released {
		return nil, nil, media.ErrReleased
	}
	if e.home == nil {
		sh, err := e.p.engine.writers.reserve()
		if err != nil {
			return nil, nil, err
		}
		e.home = sh
	}
	return e.home, e.p.engine.writers.socketOf(e.home), nil
}

// goroutine runs f as one of the endpoint's goroutines, which Release waits for.
func (e *Endpoint) goroutine(f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
}

// RestartICE applies the peer's new ICE credentials to its last offer,
// answers it (pion restarts ICE on changed remote credentials) and returns
// the local description once its candidates are gathered.
func (e *Endpoint) RestartICE(ctx context.Context, ufrag, pwd string) (string, error) {
	e.negotiate.Lock()
	defer e.negotiate.Unlock()
	e.mu.Lock()
	pc, released := e.pc, e.released
	e.mu.Unlock()
	switch {
	case released:
		return "", media.ErrReleased
	case pc == nil || pc.RemoteDescription() == nil:
		return "", media.ErrNotNegotiated
	}
	offer := replaceICECredentials(pc.RemoteDescription().SDP, ufrag, pwd)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %v", media.ErrBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("sfu: ICE restart answer: %w", err)
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("sfu: ICE restart answer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	e.log.Info("ICE restarted")
	return pc.LocalDescription().SDP, nil
}

// replaceICECredentials sets every ice-ufrag and ice-pwd line of an SDP.
func replaceICECredentials(sdp, ufrag, pwd string) string {
	lines := strings.Split(sdp, "\r\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "a=ice-ufrag:"):
			lines[i] = "a=ice-ufrag:" + ufrag
		case strings.HasPrefix(l, "a=ice-pwd:"):
			lines[i] = "a=ice-pwd:" + pwd
		}
	}
	return strings.Join(lines, "\r\n")
}
