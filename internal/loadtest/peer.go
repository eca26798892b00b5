package loadtest

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/codec"
	"github.com/onair-live/onair/internal/netcap"
)

// The codecs the tool offers, under the payload types browsers commonly use.
var (
	h264Codec = webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: codec.H264, ClockRate: 90000,
			SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
			RTCPFeedback: videoFeedback},
		PayloadType: 102,
	}
	vp8Codec = webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: codec.VP8, ClockRate: 90000,
			RTCPFeedback: videoFeedback},
		PayloadType: 96,
	}
	opusCodec = webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: codec.Opus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: 111,
	}
	videoFeedback = []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
)

// socketBuffer is the receive buffer asked for each peer's UDP socket. A
// viewer that joins is sent the whole group of pictures at once (the
// server's replay); on loopback it arrives faster than pion reads it, and
// the default buffer (208 KiB) overflows at a few hundred packets, which
// would show as loss that the server did not cause. The kernel caps the
// size at net.core.rmem_max.
const socketBuffer = 2 << 20

// bufferedNet is the standard network with larger UDP receive buffers.
type bufferedNet struct{ transport.Net }

func (n bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		if b, ok := c.(interface{ SetReadBuffer(int) error }); ok {
			_ = b.SetReadBuffer(socketBuffer)
		}
	}
	return c, err
}

// settingEngine is what every peer of the tool shares: no mDNS, loopback
// candidates allowed, and with loopbackOnly nothing but 127.0.0.1.
func settingEngine(loopbackOnly bool) (webrtc.SettingEngine, error) {
	se := webrtc.SettingEngine{}
	std, err := stdnet.NewNet()
	if err != nil {
		return se, err
	}
	se.SetNet(bufferedNet{std})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	// AES-GCM first, as the server prefers: the cheapest to decrypt.
	se.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	if loopbackOnly {
		lo := net.IPv4(127, 0, 0, 1)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
		se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(lo) })
	}
	return se, nil
}

// publisherAPI negotiates the one video codec the publisher sends (and Opus)
// and answers the server's NACKs, as an encoder does.
func publisherAPI(video webrtc.RTPCodecParameters, loopbackOnly, simulcast bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(video, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	if simulcast {
		if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
			return nil, err
		}
	}
	if err := m.RegisterCodec(opusCodec, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	responder, err := nack.NewResponderInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(responder)
	se, err := settingEngine(loopbackOnly)
	if err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(se)), nil
}

// viewerAPI offers what a browser offers (H.264, VP8, Opus) with no
// interceptor at all: a viewer sends no NACK (so sequence numbers show every
// loss) and no receiver report, which keeps the tool's cost per viewer low.
// For a simulcast broadcast it sends transport-wide congestion control
// feedback, from which the server estimates its downlink; capBPS > 0 drops
// what it receives over that rate.
// With mux set (-shared-sockets), its peers use that socket.
func viewerAPI(loopbackOnly, simulcast bool, capBPS int, mux ice.UDPMux) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	for _, c := range []webrtc.RTPCodecParameters{h264Codec, vp8Codec} {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	if err := m.RegisterCodec(opusCodec, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	se, err := settingEngine(loopbackOnly)
	if err != nil {
		return nil, err
	}
	if capBPS > 0 {
		std, err := stdnet.NewNet()
		if err != nil {
			return nil, err
		}
		se.SetNet(netcap.New(bufferedNet{std}, int64(capBPS)))
	}
	if mux != nil {
		se.SetICEUDPMux(mux)
	}
	ir := &interceptor.Registry{}
	if simulcast {
		if err := webrtc.ConfigureTWCCSender(m, ir); err != nil {
			return nil, err
		}
	} else {
		// Replay protection guards a real client against an attacker; here
		// it is a few percent of the tool's CPU per packet for nothing. (A
		// simulcast viewer keeps it: the server's probes must not count
		// copies as received.)
		se.DisableSRTPReplayProtection(true)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(se)), nil
}

// offer is a local offer with its candidates gathered: the SDP without them
// (for trickle) and with them (for WHIP and WHEP).
type offer struct {
	trickleSDP  string
	gatheredSDP string
	candidates  []webrtc.ICECandidateInit
}

// makeOffer creates and sets the local offer and waits for ICE gathering.
func makeOffer(ctx context.Context, pc *webrtc.PeerConnection) (offer, error) {
	var (
		mu    sync.Mutex
		cands []webrtc.ICECandidateInit
	)
	gathered := make(chan struct{})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		mu.Lock()
		defer mu.Unlock()
		if c == nil {
			close(gathered)
			return
		}
		cands = append(cands, c.ToJSON())
	})
	o, err := pc.CreateOffer(nil)
	if err != nil {
		return offer{}, fmt.Errorf("create offer: %w", err)
	}
	if err := pc.SetLocalDescription(o); err != nil {
		return offer{}, fmt.Errorf("set offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return offer{}, fmt.Errorf("ICE gathering: %w", ctx.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(cands) == 0 {
		return offer{}, fmt.Errorf("no ICE candidate gathered")
	}
	return offer{trickleSDP: o.SDP, gatheredSDP: pc.LocalDescription().SDP, candidates: cands}, nil
}
