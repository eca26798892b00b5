package testpeer

import (
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// H.264 and stereo Opus, as encoders (OBS, FFmpeg, GStreamer) offer them.
// The synthetic frames are those of media.go: frame n is one NAL unit, an
// IDR slice for a keyframe and a non-IDR slice otherwise, whose bytes after
// the NAL header are FrameBytes(n, key); it goes as a single NAL unit packet
// when small and in FU-A fragments otherwise (packetization-mode 1).
const (
	h264PT    = 102
	h264PM0PT = 104 // offered first, so that the server must pick mode 1
	nalIDR    = 0x65
	nalSlice  = 0x41
	nalFUA    = 28
)

// H264Fmtp is the fmtp of the H.264 codec the test peers send and take.
const H264Fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"

// StereoOpusFmtp is the fmtp of their stereo Opus.
const StereoOpusFmtp = "minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1"

func h264Codec() webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: VideoClockRate, SDPFmtpLine: H264Fmtp,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}},
		},
		PayloadType: h264PT,
	}
}

func stereoOpusCodec() webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: StereoOpusFmtp,
		},
		PayloadType: opusPT,
	}
}

// newH264APIParts is newAPIParts with H.264 (packetization mode 0 offered
// first when withMode0, then mode 1) and stereo Opus.
func newH264APIParts(withMode0 bool) (*webrtc.MediaEngine, *interceptor.Registry, error) {
	m := &webrtc.MediaEngine{}
	if withMode0 {
		pm0 := h264Codec()
		pm0.PayloadType = h264PM0PT
		pm0.SDPFmtpLine = "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f"
		if err := m.RegisterCodec(pm0, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, nil, err
		}
	}
	if err := m.RegisterCodec(h264Codec(), webrtc.RTPCodecTypeVideo); err != nil {
		return nil, nil, err
	}
	if err := m.RegisterCodec(stereoOpusCodec(), webrtc.RTPCodecTypeAudio); err != nil {
		return nil, nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(m, ir); err != nil {
		return nil, nil, err
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, nil, err
	}
	return m, ir, nil
}

// NewH264Publisher is NewPublisher sending H.264 (packetization-mode 1,
// offered after a mode 0 alternative) and stereo Opus.
func NewH264Publisher(opts PublisherOptions) (*Publisher, error) {
	m, ir, err := newH264APIParts(true)
	if err != nil {
		return nil, err
	}
	return newPublisher(opts, m, ir, h264Codec(), stereoOpusCodec(), packetizeH264)
}

// packetizeH264 makes the frame one NAL unit and packs it (RFC 6184): a
// single NAL unit packet, or FU-A fragments of at most maxVP8Chunk bytes.
func packetizeH264(frame []byte, key bool) [][]byte {
	hdr := byte(nalSlice)
	if key {
		hdr = nalIDR
	}
	if len(frame) <= maxVP8Chunk {
		return [][]byte{append([]byte{hdr}, frame...)}
	}
	var out [][]byte
	for i := 0; i < len(frame); i += maxVP8Chunk {
		end := min(i+maxVP8Chunk, len(frame))
		fu := hdr & 0x1f
		if i == 0 {
			fu |= 0x80 // S
		}
		if end == len(frame) {
			fu |= 0x40 // E
		}
		p := make([]byte, 0, 2+end-i)
		p = append(p, hdr&0xe0|nalFUA, fu)
		out = append(out, append(p, frame[i:end]...))
	}
	return out
}

// NewH264ViewerPeer is NewViewerPeer taking H.264 (packetization-mode 1)
// and stereo Opus. Each video packet is turned into the VP8 packet that would
// carry the same frame bytes (h264AsVP8), which it checks as the VP8 viewer
// does.
func NewH264ViewerPeer() (*ViewerPeer, error) {
	m, ir, err := newH264APIParts(false)
	if err != nil {
		return nil, err
	}
	return newViewerPeer(m, ir, Network{}, h264AsVP8)
}

// h264AsVP8 rewrites an H.264 packet of packetizeH264 in place into the VP8
// packet of packetize that carries the same bytes of the frame.
func h264AsVP8(pkt *rtp.Packet) error {
	p := pkt.Payload
	if len(p) < 2 {
		return errShortH264
	}
	switch nal := p[0] & 0x1f; {
	case nal == 1 || nal == 5: // a single NAL unit: the frame after the header
		p[0] = vp8DescStart
	case nal == nalFUA:
		if t := p[1] & 0x1f; t != 1 && t != 5 {
			return errNALType
		}
		desc := byte(vp8DescCont)
		if p[1]&0x80 != 0 {
			desc = vp8DescStart
		}
		pkt.Payload = append([]byte{desc}, p[2:]...)
	default:
		return errNALType
	}
	return nil
}

type h264Error string

func (e h264Error) Error() string { return string(e) }

const (
	errShortH264 = h264Error("H.264 payload shorter than 2 bytes")
	errNALType   = h264Error("not a slice, IDR or FU-A of one")
)
