package sfu

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/codec"
	"github.com/onair-live/onair/internal/media"
)

// supportedMimes are the codecs the SFU forwards, by lower-case encoding name.
var supportedMimes = map[string]string{
	"vp8":  codec.VP8,
	"vp9":  codec.VP9,
	"h264": codec.H264,
	"av1":  codec.AV1,
	"opus": codec.Opus,
}

// forwardedExtensions are the RTP header extensions carried from the
// presenter to viewers, their ids rewritten to each viewer's. Extensions that
// describe one hop (transport-wide sequence numbers, send times, MID/RID) are
// not forwarded.
var forwardedExtensions = []string{
	"urn:ietf:params:rtp-hdrext:ssrc-audio-level",
	"urn:3gpp:video-orientation",
	"http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
	"http://www.webrtc.org/experiments/rtp-hdrext/video-content-type",
	"http://www.webrtc.org/experiments/rtp-hdrext/color-space",
}

// sectionExtensions are registered for publishers so that pion can demux
// streams that do not declare their SSRCs.
var sectionExtensions = []string{
	"urn:ietf:params:rtp-hdrext:sdes:mid",
	"urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
	"urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
}

// offeredCodec is one codec of an offer's media section.
type offeredCodec struct {
	pt       uint8
	mime     string // canonical, e.g. video/VP8
	clock    uint32
	channels uint16
	fmtp     string
	rtx      uint8 // the RTX payload type negotiated with it (simulcast only), 0 for none
}

// offeredSection is one m= section of an offer.
type offeredSection struct {
	mid        string
	kind       webrtc.RTPCodecType
	codecs     []offeredCodec  // supported codecs only, in the offer's order
	extensions map[string]int  // URI to id
	simulcast  bool            // a=simulcast
	rids       []string        // a=rid ... send, in the offer's order
	rtx        map[uint8]uint8 // the RTX payload type of each media payload type (apt)
	track      string          // a=msid's track id
	direction  string          // sendrecv, sendonly, recvonly, inactive, or "" when not said
}

// parseOffer reads the media sections of an SDP offer.
func parseOffer(offer string) ([]offeredSection, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer); err != nil {
		return nil, fmt.Errorf("%w: %v", media.ErrBadOffer, err)
	}
	var out []offeredSection
	for _, md := range sd.MediaDescriptions {
		var kind webrtc.RTPCodecType
		switch md.MediaName.Media {
		case "audio":
			kind = webrtc.RTPCodecTypeAudio
		case "video":
			kind = webrtc.RTPCodecTypeVideo
		default:
			continue
		}
		sec := offeredSection{kind: kind, extensions: map[string]int{}, rtx: map[uint8]uint8{}}
		rtpmap := map[uint8]offeredCodec{}
		fmtp := map[uint8]string{}
		var rtx []uint8
		for _, a := range md.Attributes {
			switch a.Key {
			case "mid":
				sec.mid = a.Value
			case "msid":
				if f := strings.Fields(a.Value); len(f) == 2 {
					sec.track = f[1]
				}
			case "sendrecv", "sendonly", "recvonly", "inactive":
				sec.direction = a.Key
			case "simulcast":
				sec.simulcast = true
			case "rid":
				if rid, ok := parseRid(a.Value); ok {
					sec.rids = append(sec.rids, rid)
				}
			case "rtpmap":
				pt, c, ok := parseRtpmap(a.Value)
				if ok {
					rtpmap[pt] = c
				} else if pt, ok := parseRtxRtpmap(a.Value); ok {
					rtx = append(rtx, pt)
				}
			case "fmtp":
				ptStr, rest, ok := strings.Cut(a.Value, " ")
				if pt, err := strconv.ParseUint(ptStr, 10, 8); ok && err == nil {
					fmtp[uint8(pt)] = strings.TrimSpace(rest)
				}
			case "extmap":
				idStr, rest, ok := strings.Cut(a.Value, " ")
				idStr, _, _ = strings.Cut(idStr, "/")
				id, err := strconv.Atoi(idStr)
				if ok && err == nil {
					uri, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
					sec.extensions[uri] = id
				}
			}
		}
		for _, f := range md.MediaName.Formats {
			pt64, err := strconv.ParseUint(f, 10, 8)
			if err != nil {
				continue
			}
			c, ok := rtpmap[uint8(pt64)]
			if !ok {
				continue
			}
			c.fmtp = fmtp[c.pt]
			sec.codecs = append(sec.codecs, c)
		}
		for _, pt := range rtx {
			if apt, err := strconv.ParseUint(fmtpParam(fmtp[pt], "apt"), 10, 8); err == nil {
				sec.rtx[uint8(apt)] = pt
			}
		}
		out = append(out, sec)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no audio or video section", media.ErrBadOffer)
	}
	return out, nil
}

// parseRtpmap reads "96 VP8/90000" or "111 opus/48000/2".
func parseRtpmap(v string) (uint8, offeredCodec, bool) {
	ptStr, enc, ok := strings.Cut(v, " ")
	if !ok {
		return 0, offeredCodec{}, false
	}
	pt, err := strconv.ParseUint(ptStr, 10, 8)
	if err != nil {
		return 0, offeredCodec{}, false
	}
	parts := strings.Split(strings.TrimSpace(enc), "/")
	mime, ok := supportedMimes[strings.ToLower(parts[0])]
	if !ok || len(parts) < 2 {
		return 0, offeredCodec{}, false
	}
	clock, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return 0, offeredCodec{}, false
	}
	c := offeredCodec{pt: uint8(pt), mime: mime, clock: uint32(clock)}
	if len(parts) > 2 {
		if ch, err := strconv.ParseUint(parts[2], 10, 16); err == nil {
			c.channels = uint16(ch)
		}
	}
	return uint8(pt), c, true
}

// fmtpParam returns one parameter of an fmtp line.
func fmtpParam(fmtp, key string) string {
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// h264Profile is the profile_idc and constraint flags of a profile-level-id,
// the part two H.264 codecs must share to interoperate (the level may differ).
func h264Profile(fmtp string) string {
	p := strings.ToLower(fmtpParam(fmtp, "profile-level-id"))
	if len(p) < 4 {
		return "42e0" // RFC 6184 default: constrained baseline
	}
	return p[:4]
}

func packetizationMode(fmtp string) string {
	if m := fmtpParam(fmtp, "packetization-mode"); m != "" {
		return m
	}
	return "0"
}

// choosePublished picks the codec a presenter will send on a section: the
// first the SFU supports, in the presenter's order of preference (for H.264,
// the first with packetization-mode 1 if any).
func choosePublished(sec offeredSection) (offeredCodec, bool) {
	if len(sec.codecs) == 0 {
		return offeredCodec{}, false
	}
	first := sec.codecs[0]
	if first.mime == codec.H264 && packetizationMode(first.fmtp) != "1" {
		for _, c := range sec.codecs {
			if c.mime == codec.H264 && packetizationMode(c.fmtp) == "1" {
				return c, true
			}
		}
	}
	return first, true
}

// matchViewer finds, in a viewer's section, the codec that can carry the
// published one, and returns its payload type.
func matchViewer(sec offeredSection, up webrtc.RTPCodecParameters) (uint8, bool) {
	best, found := uint8(0), false
	for _, c := range sec.codecs {
		if !strings.EqualFold(c.mime, up.MimeType) {
			continue
		}
		switch up.MimeType {
		case codec.H264:
			if packetizationMode(c.fmtp) != packetizationMode(up.SDPFmtpLine) {
				continue
			}
			if h264Profile(c.fmtp) == h264Profile(up.SDPFmtpLine) {
				return c.pt, true
			}
		case codec.VP9:
			if fmtpParam(c.fmtp, "profile-id") != fmtpParam(up.SDPFmtpLine, "profile-id") {
				continue
			}
		}
		if !found {
			best, found = c.pt, true
		}
	}
	return best, found
}

func videoFeedback(publisher bool) []webrtc.RTCPFeedback {
	fb := []webrtc.RTCPFeedback{
		{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"},
	}
	if publisher {
		fb = append(fb, webrtc.RTCPFeedback{Type: "goog-remb"})
	}
	return fb
}

func codecParams(c offeredCodec, kind webrtc.RTPCodecType, publisher bool) webrtc.RTPCodecParameters {
	var fb []webrtc.RTCPFeedback
	if kind == webrtc.RTPCodecTypeVideo {
		fb = videoFeedback(publisher)
	}
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: c.mime, ClockRate: c.clock, Channels: c.channels,
			SDPFmtpLine: c.fmtp, RTCPFeedback: fb,
		},
		PayloadType: webrtc.PayloadType(c.pt),
	}
}

// publisherAPI builds a pion API that negotiates exactly the chosen codecs,
// so that the codec each published track carries is known from the answer.
func (e *Engine) publisherAPI(chosen map[webrtc.RTPCodecType]offeredCodec) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	for kind, c := range chosen {
		if err := m.RegisterCodec(codecParams(c, kind, true), kind); err != nil {
			return nil, err
		}
		if c.rtx != 0 {
			if err := m.RegisterCodec(rtxCodec(c.pt, c.rtx), kind); err != nil {
				return nil, err
			}
		}
		for _, uri := range append(append([]string{}, forwardedExtensions...), sectionExtensions...) {
			if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, kind); err != nil {
				return nil, err
			}
		}
	}
	ir, err := receiverInterceptors()
	if err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureTWCCSender(m, ir); err != nil {
		return nil, err
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(e.setting)), nil
}

// receiverInterceptors are those of a connection the SFU receives a
// broadcast on (a presenter's, a relay pull's): NACKs for what it lost, and
// receiver reports.
func receiverInterceptors() (*interceptor.Registry, error) {
	ir := &interceptor.Registry{}
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(gen)
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return nil, err
	}
	ir.Add(rr)
	return ir, nil
}

// subscriberAPI builds a pion API for one viewer: each published codec under
// the viewer's own payload type. NACKs are answered by the SFU from the
// track's shared history, so no per-viewer NACK responder is registered.
// With a batching network, the viewer's sockets are opened through it, so
// that its writer can send a frame's packets in one system call.
func (e *Engine) subscriberAPI(tracks []*upTrack, pts map[*upTrack]uint8, sub *subscriber) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	simulcast := false
	layered := perLayer(tracks) // a relay's layers: no estimate, no TWCC
	for _, t := range tracks {
		pt, ok := pts[t]
		if !ok {
			continue
		}
		c := t.codec
		c.PayloadType = webrtc.PayloadType(pt)
		c.RTCPFeedback = nil
		if t.kind == webrtc.RTPCodecTypeVideo {
			c.RTCPFeedback = videoFeedback(false)
		}
		if t.group != nil && !layered {
			simulcast = true
			c.RTCPFeedback = append(c.RTCPFeedback, webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC})
		}
		if err := m.RegisterCodec(c, t.kind); err != nil {
			return nil, err
		}
		for uri := range t.extensions {
			if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, t.kind); err != nil {
				return nil, err
			}
		}
	}
	ir := &interceptor.Registry{}
	se := e.setting
	if sub.batch != nil {
		se.SetNet(sub.batch)
	}
	if sub.homeSock != nil {
		se.SetICEUDPMux(sub.homeSock.mux)
	}
	if simulcast {
		sr, err := report.NewSenderInterceptor()
		if err != nil {
			return nil, err
		}
		ir.Add(sr)
		if err := addEstimator(m, ir, sub); err != nil {
			return nil, err
		}
		sub.direct = nil
	} else {
		// The SFU writes the sender reports (srreport.go), and may send
		// the viewer's RTP itself (srtpout.go).
		sub.reports = true
		if sub.direct != nil {
			if err := sub.direct.configure(&se); err != nil {
				return nil, err
			}
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir),
		webrtc.WithSettingEngine(se)), nil
}

// capBandwidth adds b=AS and b=TIAS lines to an answer's video sections.
func capBandwidth(answer string, bitrate int) string {
	if bitrate <= 0 {
		return answer
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(answer); err != nil {
		return answer
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "video" {
			continue
		}
		md.Bandwidth = append(md.Bandwidth,
			sdp.Bandwidth{Type: "AS", Bandwidth: uint64((bitrate + 999) / 1000)},
			sdp.Bandwidth{Type: "TIAS", Bandwidth: uint64(bitrate)},
		)
	}
	out, err := sd.Marshal()
	if err != nil {
		return answer
	}
	return string(out)
}
