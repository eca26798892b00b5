// Package codec knows just enough of each video codec's RTP payload format to
// tell whether a packet starts a keyframe. It owns no state and touches no
// network.
package codec

import "strings"

// Video codec MIME types, as pion spells them.
const (
	VP8  = "video/VP8"
	VP9  = "video/VP9"
	H264 = "video/H264"
	AV1  = "video/AV1"
	Opus = "audio/opus"
)

// IsKeyframe reports whether an RTP payload of the given codec carries the
// start of a keyframe (an intra frame a decoder can start from).
func IsKeyframe(mimeType string, payload []byte) bool {
	switch {
	case strings.EqualFold(mimeType, VP8):
		return vp8Keyframe(payload)
	case strings.EqualFold(mimeType, VP9):
		return vp9Keyframe(payload)
	case strings.EqualFold(mimeType, H264):
		return h264Keyframe(payload)
	case strings.EqualFold(mimeType, AV1):
		return av1Keyframe(payload)
	}
	return false
}

// vp8Keyframe reads the VP8 payload descriptor (RFC 7741 section 4.2) and the
// first byte of the VP8 payload header: P (inverse key frame flag) is 0 on a
// keyframe, and only the first packet of partition 0 carries it.
func vp8Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	x := p[0]&0x80 != 0
	start := p[0]&0x10 != 0
	pid := p[0] & 0x07
	if !start || pid != 0 {
		return false
	}
	i := 1
	if x {
		if len(p) < 2 {
			return false
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: picture id
			if len(p) <= i {
				return false
			}
			if p[i]&0x80 != 0 { // M: 15-bit picture id
				i++
			}
			i++
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if ext&0x30 != 0 { // T or K: TID/Y/KEYIDX
			i++
		}
	}
	if len(p) <= i {
		return false
	}
	return p[i]&0x01 == 0
}

// vp9Keyframe reads the VP9 payload descriptor (RFC 9628 section 4.2): a
// packet that begins a frame (B), is not inter-picture predicted (P=0) and
// belongs to the base spatial layer starts a keyframe.
func vp9Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	i, l, f, b := p[0]&0x80 != 0, p[0]&0x20 != 0, p[0]&0x10 != 0, p[0]&0x08 != 0
	interPredicted := p[0]&0x40 != 0
	if !b || interPredicted {
		return false
	}
	if !l {
		return true
	}
	n := 1
	if i {
		if len(p) <= n {
			return false
		}
		if p[n]&0x80 != 0 {
			n++
		}
		n++
	}
	if len(p) <= n {
		return false
	}
	sid := (p[n] >> 1) & 0x07
	_ = f
	return sid == 0
}

// h264Keyframe looks for an IDR slice or a sequence parameter set (RFC 6184):
// in a single NAL unit, in a STAP-A aggregate, or at the start of an FU-A.
func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch nal := p[0] & 0x1f; nal {
	case 5, 7: // IDR, SPS
		return true
	case 24: // STAP-A
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if size == 0 || i+size > len(p) {
				return false
			}
			if t := p[i] & 0x1f; t == 5 || t == 7 {
				return true
			}
			i += size
		}
	case 28: // FU-A
		if len(p) < 2 {
			return false
		}
		start := p[1]&0x80 != 0
		t := p[1] & 0x1f
		return start && (t == 5 || t == 7)
	}
	return false
}

// av1Keyframe reads the AV1 aggregation header (AV1 RTP spec section 4.4):
// N is set on the first packet of a coded video sequence, which starts with
// a keyframe.
func av1Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	z := p[0]&0x80 != 0
	n := p[0]&0x08 != 0
	return n && !z
}
