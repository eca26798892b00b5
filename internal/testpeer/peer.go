package testpeer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

// plug is the UDP socket of a peer, which a test can unplug: from then on
// every packet it would send or receive is silently dropped, as when a phone
// loses its network, while the peer connection itself stays open (no DTLS
// close, no ICE restart) and the WebSocket is untouched.
type plug struct {
	net.PacketConn
	unplugged atomic.Bool
	noSTUN    atomic.Bool // drop outgoing STUN only (MuteSTUN, whip.go)
}

func (p *plug) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := p.PacketConn.ReadFrom(b)
		if err != nil || !p.unplugged.Load() {
			return n, addr, err
		}
	}
}

func (p *plug) WriteTo(b []byte, addr net.Addr) (int, error) {
	if p.unplugged.Load() || (p.noSTUN.Load() && isSTUN(b)) {
		return len(b), nil
	}
	return p.PacketConn.WriteTo(b, addr)
}

// muxLog silences the UDP mux, which logs an error for each packet that
// arrives for a connection its peer has just closed: the server keeps
// sending until it sees the close, so every test would print some.
type muxLog struct{}

func (muxLog) Trace(string)          {}
func (muxLog) Tracef(string, ...any) {}
func (muxLog) Debug(string)          {}
func (muxLog) Debugf(string, ...any) {}
func (muxLog) Info(string)           {}
func (muxLog) Infof(string, ...any)  {}
func (muxLog) Warn(string)           {}
func (muxLog) Warnf(string, ...any)  {}
func (muxLog) Error(string)          {}
func (muxLog) Errorf(string, ...any) {}

// peer is what publishers and viewers share: a pion peer connection on its
// own unpluggable loopback socket, and trickle ICE through the WebSocket.
type peer struct {
	pc      *webrtc.PeerConnection
	mux     *ice.UDPMuxDefault
	plug    *plug
	created time.Time

	mu            sync.Mutex
	remoteSet     bool
	pendingRemote []webrtc.ICECandidateInit
	local         []webrtc.ICECandidateInit
	onLocal       func(webrtc.ICECandidateInit)
	state         webrtc.PeerConnectionState
	changed       chan struct{} // closed and replaced on each state change
	closeOnce     sync.Once
}

var loopback = net.IPv4(127, 0, 0, 1)

// newPeer makes a peer connection whose only ICE candidate is its own UDP
// socket on 127.0.0.1.
func newPeer(m *webrtc.MediaEngine, ir *interceptor.Registry) (*peer, error) {
	return newPeerOn(m, ir, Network{})
}

// newPeerOn makes a peer connection that reaches the server as n allows
// (network.go).
func newPeerOn(m *webrtc.MediaEngine, ir *interceptor.Registry, n Network) (*peer, error) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &peer{plug: &plug{PacketConn: conn}, created: time.Now(), changed: make(chan struct{})}
	p.mux = ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: p.plug, Logger: muxLog{}})
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(loopback) })
	n.configure(&se, p.mux)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(se))
	p.pc, err = api.NewPeerConnection(n.configuration())
	if err != nil {
		_ = p.mux.Close()
		return nil, err
	}
	p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init := c.ToJSON()
		p.mu.Lock()
		p.local = append(p.local, init)
		f := p.onLocal
		p.mu.Unlock()
		if f != nil {
			f(init)
		}
	})
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.mu.Lock()
		p.state = s
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	})
	return p, nil
}

// NegotiateOptions change how a peer signals.
type NegotiateOptions struct {
	// CandidatesFirst gathers every local candidate and sends them all on the
	// WebSocket before the offer, whose SDP then carries none.
	CandidatesFirst bool
	// IgnoreServerCandidates drops the server's trickled candidates, so that
	// the connection can only be made from the server's side, with the
	// candidates the client sent (the client learns the server's address
	// from its connectivity checks, as a peer-reflexive candidate).
	IgnoreServerCandidates bool
}

// RejectedError is an offer the server rejected.
type RejectedError struct {
	ResponseID string
	Message    string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("%s rejected: %q", e.ResponseID, e.Message)
}

// negotiate makes the offer and sends it as offerID ("presenter" or
// "viewer"), then applies the answer; candidates trickle both ways.
func (p *peer) negotiate(ctx context.Context, ws *WS, offerID, roomID, email string, o NegotiateOptions) error {
	if !o.IgnoreServerCandidates {
		ws.OnCandidate(p.addRemote)
	}
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	var gathered <-chan struct{}
	if o.CandidatesFirst {
		gathered = webrtc.GatheringCompletePromise(p.pc)
	} else {
		p.trickleTo(ws, roomID)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return err
	}
	if o.CandidatesFirst {
		select {
		case <-gathered:
		case <-ctx.Done():
			return fmt.Errorf("gathering: %w", ctx.Err())
		}
		if strings.Contains(offer.SDP, "a=candidate") {
			return errors.New("the offer to send carries candidates")
		}
		p.trickleTo(ws, roomID) // sends every gathered candidate now
		if len(p.localCandidates()) == 0 {
			return errors.New("no local candidate gathered")
		}
	}
	if err := ws.Send(OfferMessage{ID: offerID, RoomID: roomID, Email: email, SDPOffer: offer.SDP}); err != nil {
		return err
	}
	respID := offerID + "Response"
	resp, err := ws.Next(ctx, respID)
	if err != nil {
		return err
	}
	if resp.Response != "accepted" {
		return &RejectedError{ResponseID: respID, Message: resp.Message}
	}
	return p.setAnswer(resp.SDPAnswer)
}

// trickleTo sends the local candidates gathered so far, and those to come,
// on the WebSocket.
func (p *peer) trickleTo(ws *WS, roomID string) {
	send := func(c webrtc.ICECandidateInit) { _ = ws.SendCandidate(roomID, c) }
	p.mu.Lock()
	p.onLocal = send
	old := append([]webrtc.ICECandidateInit(nil), p.local...)
	p.mu.Unlock()
	for _, c := range old {
		send(c)
	}
}

func (p *peer) localCandidates() []webrtc.ICECandidateInit {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]webrtc.ICECandidateInit(nil), p.local...)
}

// addRemote adds a server candidate, or keeps it until the answer is set.
func (p *peer) addRemote(c webrtc.ICECandidateInit) {
	p.mu.Lock()
	if !p.remoteSet {
		p.pendingRemote = append(p.pendingRemote, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = p.pc.AddICECandidate(c)
}

func (p *peer) setAnswer(sdp string) error {
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return fmt.Errorf("set answer: %w", err)
	}
	p.mu.Lock()
	p.remoteSet = true
	pending := p.pendingRemote
	p.pendingRemote = nil
	p.mu.Unlock()
	for _, c := range pending {
		_ = p.pc.AddICECandidate(c)
	}
	return nil
}

// State is the peer connection's state.
func (p *peer) State() webrtc.PeerConnectionState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// WaitState waits for the peer connection to reach state s.
func (p *peer) WaitState(ctx context.Context, s webrtc.PeerConnectionState) error {
	for {
		p.mu.Lock()
		cur, changed := p.state, p.changed
		p.mu.Unlock()
		if cur == s {
			return nil
		}
		if s == webrtc.PeerConnectionStateConnected &&
			(cur == webrtc.PeerConnectionStateFailed || cur == webrtc.PeerConnectionStateClosed) {
			return fmt.Errorf("peer connection %s", cur)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("peer connection is %s, waiting for %s: %w", cur, s, ctx.Err())
		}
	}
}

// WaitEnded waits for the media connection to be over: closed (the other
// side's DTLS close arrived), or failed or disconnected (it did not, but no
// more traffic comes).
func (p *peer) WaitEnded(ctx context.Context) error {
	for {
		p.mu.Lock()
		cur, changed := p.state, p.changed
		p.mu.Unlock()
		switch cur {
		case webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateFailed,
			webrtc.PeerConnectionStateDisconnected:
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("peer connection is still %s: %w", cur, ctx.Err())
		}
	}
}

// WaitConnected waits for the media connection to be up.
func (p *peer) WaitConnected(ctx context.Context) error {
	return p.WaitState(ctx, webrtc.PeerConnectionStateConnected)
}

// Unplug drops every packet the peer sends or receives from now on, without
// closing anything.
func (p *peer) Unplug() { p.plug.unplugged.Store(true) }

// close closes the peer connection and its socket.
func (p *peer) close() {
	p.closeOnce.Do(func() {
		_ = p.pc.GracefulClose()
		_ = p.mux.Close() // closes the socket too
	})
}
