package sfu

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/sfu/udpbatch"
)

// A viewer's direct path sends its forwarded RTP without pion's RTPSender:
// the writer marshals each packet into the batch of the viewer's socket
// (its own, or its writer shard's: shardsock.go), encrypts it there
// (AES-GCM profiles with the SFU's own sealer, srtpseal.go; others with the
// viewer's pion SRTP context) and sends it with the batch (see udpbatch).
// Every packet of a viewer, retransmissions too, is written by its shard's
// writer, under mu: the sealer's per-SSRC state needs no lock of its own.
// Pion's path for the same packet goes through the
// track's interceptors, pion's SRTP session and the ICE connection, and
// costs several copies and locks more.
//
// It is used for a viewer of a broadcast without simulcast whose selected
// ICE candidate pair is UDP from one of the viewer's own sockets or its
// shard's (not ICE-TCP, not a TURN relay, not the one UDP port of
// Config.UDPMuxPort), and whose DTLS handshake the SFU answered as the
// server (the keys are then known: srtpkeys.go). Everything else (RTCP
// both ways, DTLS, ICE) stays pion's.
//
// The path is chosen once, when the viewer connects, before its first
// packet. It follows the selected pair to another of the viewer's sockets.
// If the pair moves where it cannot go (a relay), pion's path takes over,
// which is only correct while no sequence number has wrapped: pion's SRTP
// context never saw the packets sent directly, so it would encrypt later
// ones with a stale rollover counter. Past that, the viewer is failed, and
// reconnects.
type directPath struct {
	sub  *subscriber
	keys dtlsSecrets
	// packets counts those sent directly (EndpointStats.PacketsDirect);
	// dropped, those of them a full socket dropped, when the socket is
	// shared with other viewers (udpbatch.Dropper).
	packets, dropped atomic.Uint64

	mu    sync.Mutex           // the writer's; the pair watcher's when it switches
	ice   *webrtc.ICETransport // set before the viewer connects
	state directState
	route directRoute
	ctx   *srtp.Context
	// RTP with an AEAD GCM profile (srtpseal.go), if sealed; ctx's if not.
	seal   gcmSealer
	sealed bool
	tag    int // the bytes SRTP adds to a packet
	// Header extensions are encrypted (RFC 9335): a packet with CSRCs
	// but no extension gets an empty one, 4 bytes more (room).
	cryptex bool
	hdr     rtp.Header // EncryptRTP's scratch
	// The packet Fill writes.
	h       *rtp.Header
	payload []byte
}

type directState uint8

const (
	directPending directState = iota // not connected yet
	directOn
	directOff // pion's path, for good
)

// directRoute is where the direct path sends: the socket of the selected
// pair's local candidate, to its remote candidate.
type directRoute struct {
	conn *udpbatch.Conn
	to   netip.AddrPort
}

func newDirectPath(sub *subscriber) *directPath {
	return &directPath{sub: sub}
}

// wantsDTLSServer tells whether an offer has the SFU be the DTLS client
// (setup:passive). Pion answers setup:passive whenever it is told to answer
// as the server, even to such an offer, so the direct path is not offered.
func wantsDTLSServer(offer string) bool {
	return strings.Contains(offer, "a=setup:passive")
}

// configure has the viewer's DTLS handshake tell the path its secrets: the
// SFU answers as the DTLS server (the browser's offer is actpass), so that
// it writes the ServerHello, which carries the server random, the cipher
// suite and the SRTP profile; the key log carries the client random and the
// master secret. A viewer that insists on being the server (setup:passive)
// keeps pion's path (wantsDTLSServer).
func (o *directPath) configure(se *webrtc.SettingEngine) error {
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		return err
	}
	se.SetDTLSKeyLogWriter(&o.keys)
	se.SetDTLSServerHelloMessageHook(o.keys.serverHello)
	return nil
}

// watch follows the viewer's selected candidate pair.
func (o *directPath) watch(ice *webrtc.ICETransport) {
	o.mu.Lock()
	o.ice = ice
	o.mu.Unlock()
	ice.OnSelectedCandidatePairChange(func(pair *webrtc.ICECandidatePair) { o.follow(pair) })
}

// start chooses the viewer's path once it is connected, before its first
// packet. offer is the viewer's.
func (o *directPath) start(offer *webrtc.SessionDescription) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.state != directPending {
		return
	}
	o.state = directOff
	if o.ice == nil || offer == nil {
		return
	}
	// Pion encrypts header extensions too (RFC 9335) when the viewer
	// declares it can receive them: on every RTP section, as pion refuses a
	// mix.
	cryptex := strings.Contains(offer.SDP, "\na=cryptex")
	ctx, sealed, tag, err := o.keys.context(cryptex, &o.seal)
	if err != nil {
		o.sub.ep.log.Debug("viewer keeps the pion send path", "reason", err)
		return
	}
	pair, err := o.ice.GetSelectedCandidatePair()
	if err != nil {
		return
	}
	r, ok := o.resolve(pair)
	if !ok {
		o.sub.ep.log.Debug("viewer keeps the pion send path", "reason", "candidate pair", "pair", pair.String())
		return
	}
	o.ctx, o.sealed, o.tag, o.cryptex, o.route, o.state = ctx, sealed, tag, cryptex, r, directOn
	o.sub.ep.log.Debug("viewer's RTP sent directly", "to", r.to)
}

// follow moves the path to a new selected pair.
func (o *directPath) follow(pair *webrtc.ICECandidatePair) {
	if reason := o.switchTo(pair); reason != "" {
		o.sub.ep.fail(reason)
	}
}

// switchTo moves the path to pair, or leaves it to pion; it returns why
// the viewer must reconnect if neither is correct.
func (o *directPath) switchTo(pair *webrtc.ICECandidatePair) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.state != directOn {
		return "" // start reads the pair; pion's path follows it itself
	}
	if r, ok := o.resolve(pair); ok {
		o.route = r
		return ""
	}
	o.state, o.route = directOff, directRoute{}
	for _, d := range o.sub.downs {
		if b := d.bind.Load(); b != nil {
			if roc, ok := o.roc(b.ssrc); ok && roc > 0 {
				return "the media path moved to a relay after its sequence numbers wrapped"
			}
		}
	}
	o.sub.ep.log.Info("viewer's RTP now sent by pion", "pair", pair.String())
	return ""
}

// resolve finds the socket and the address a pair sends from and to.
func (o *directPath) resolve(pair *webrtc.ICECandidatePair) (directRoute, bool) {
	if pair == nil || pair.Local == nil || pair.Remote == nil ||
		pair.Local.Protocol != webrtc.ICEProtocolUDP || pair.Remote.Protocol != webrtc.ICEProtocolUDP {
		return directRoute{}, false
	}
	addr, port := pair.Local.Address, pair.Local.Port
	switch pair.Local.Typ {
	case webrtc.ICECandidateTypeHost:
	case webrtc.ICECandidateTypeSrflx: // sent from its base
		addr, port = pair.Local.RelatedAddress, pair.Local.RelatedPort
	default: // a relay: the TURN client's socket
		return directRoute{}, false
	}
	local, err := netip.ParseAddr(addr)
	if err != nil {
		return directRoute{}, false
	}
	remote, err := netip.ParseAddr(pair.Remote.Address)
	if err != nil {
		return directRoute{}, false
	}
	c := o.sub.sockets().Lookup(netip.AddrPortFrom(local, port))
	if c == nil {
		return directRoute{}, false
	}
	return directRoute{conn: c, to: netip.AddrPortFrom(remote.Unmap(), pair.Remote.Port)}, true
}

// send writes a packet on the direct path. It returns false when the
// viewer is on pion's path; otherwise whether the packet was sent, and
// err when it could not be.
func (o *directPath) send(h *rtp.Header, payload []byte) (direct bool, err error) {
	if o == nil {
		return false, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.state != directOn {
		return false, nil
	}
	o.h, o.payload = h, payload
	_, err = o.route.conn.WriteFilled(o.route.to, o.room(h, payload), o)
	o.h, o.payload = nil, nil
	if err == nil {
		o.packets.Add(1)
	}
	return true, err
}

// room is the most bytes the SRTP packet of h and payload takes: with
// cryptex, pion's context adds an empty extension block (RFC 9335 5.1) to a
// packet with CSRCs and none, in place, which needs the room for it.
func (o *directPath) room(h *rtp.Header, payload []byte) int {
	n := h.MarshalSize() + len(payload) + o.tag
	if o.cryptex && len(h.CSRC) > 0 && !h.Extension {
		n += 4
	}
	return n
}

// Dropped counts packets of the viewer's that its shard's socket dropped
// (udpbatch.Dropper).
func (o *directPath) Dropped(n int) { o.dropped.Add(uint64(n)) }

var errSRTPGrew = errors.New("sfu: the SRTP packet outgrew its room")

// roc tells the rollover counter of an SSRC's packets sent directly.
func (o *directPath) roc(ssrc uint32) (uint32, bool) {
	if o.sealed {
		return o.seal.roc(ssrc)
	}
	return o.ctx.ROC(ssrc)
}

// Fill marshals the packet into dst and encrypts it in place
// (udpbatch.Filler): with the viewer's sealer if it has one, with its pion
// context otherwise or for a packet the sealer leaves to pion.
func (o *directPath) Fill(dst []byte) (int, error) {
	hl, err := o.h.MarshalTo(dst)
	if err != nil {
		return 0, err
	}
	n := hl + copy(dst[hl:], o.payload)
	if !o.sealed {
		return o.fillPion(dst, n)
	}
	if n+o.tag > len(dst) {
		return 0, errSRTPGrew
	}
	st := o.seal.stream(o.h.SSRC)
	roc, err := st.next(o.h.SequenceNumber)
	if err != nil {
		return 0, err
	}
	if !o.seal.sealable(o.h) {
		// pion's context has not seen the stream's packets: it is
		// given their rollover counter, which it uses for the next one.
		o.ctx.SetROC(o.h.SSRC, roc)
		return o.fillPion(dst, n)
	}
	return o.seal.seal(st, roc, o.h, dst, hl, n), nil
}

// fillPion encrypts the packet dst[:n] in place with the pion context.
func (o *directPath) fillPion(dst []byte, n int) (int, error) {
	out, err := o.ctx.EncryptRTP(dst[:0:len(dst)], dst[:n], &o.hdr)
	if err != nil {
		return 0, err
	}
	if len(out) == 0 || &out[0] != &dst[0] {
		return 0, errSRTPGrew
	}
	return len(out), nil
}
