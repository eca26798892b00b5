package loadtest

import (
	"encoding/binary"
	"strings"

	"github.com/onair-live/onair/internal/codec"
)

// Synthetic media: frames that no decoder could show, but whose RTP
// packetization is valid for the codec, so that the server's keyframe
// detection (internal/codec) and group-of-pictures replay work on them as on
// a real encoder's output. The first bytes of every frame carry a stamp (the
// send time and the frame number) from which viewers compute forwarding
// latency.

const (
	// maxPayload bounds an RTP payload, as browsers do, so that a packet with
	// SRTP and header extensions stays under a 1280-byte path MTU.
	maxPayload = 1200
	// stampLen is the size of a stamp: magic, send time, frame number.
	stampLen = 2 + 8 + 4
	// keyframeWeight is how many inter frames' worth of bytes a keyframe
	// carries (real encoders: 5 to 10 at this kind of bitrate).
	keyframeWeight = 6
	// opusPayload is one 20 ms Opus packet at 32 kbit/s.
	opusPayload = 80
)

var stampMagic = [2]byte{'L', 'T'}

// stamp is what the publisher writes at the start of each frame.
type stamp struct {
	sentNanos int64 // unix nanoseconds when the frame was sent
	frame     uint32
}

func (s stamp) put(b []byte) {
	copy(b, stampMagic[:])
	binary.BigEndian.PutUint64(b[2:], uint64(s.sentNanos))
	binary.BigEndian.PutUint32(b[10:], s.frame)
}

func getStamp(b []byte) (stamp, bool) {
	if len(b) < stampLen || b[0] != stampMagic[0] || b[1] != stampMagic[1] {
		return stamp{}, false
	}
	return stamp{sentNanos: int64(binary.BigEndian.Uint64(b[2:])), frame: binary.BigEndian.Uint32(b[10:])}, true
}

// fill writes a filler pattern that never forms an H.264 start code.
func fill(b []byte) {
	for i := range b {
		b[i] = byte(0x40 | i&0x3f)
	}
}

// H.264, RFC 6184 packetization mode 1. The parameter sets are those of a
// 640x480 constrained-baseline stream; they are never decoded.
var (
	h264SPS = []byte{0x67, 0x42, 0xe0, 0x1f, 0xda, 0x02, 0x80, 0xf6, 0x9b, 0x80, 0x80, 0x83, 0x01}
	h264PPS = []byte{0x68, 0xce, 0x3c, 0x80}
)

const (
	h264NRI   = 0x60 // nal_ref_idc 3
	nalIDR    = 5
	nalSlice  = 1
	nalSTAPA  = 24
	nalFUA    = 28
	fuStart   = 0x80
	fuEnd     = 0x40
	vp8XBit   = 0x80
	vp8SBit   = 0x10
	vp8IBit   = 0x80
	vp8MBit   = 0x80
	vp8PidLen = 4 // X|S|PID, I, and a 15-bit picture id
)

// h264Frame returns the RTP payloads of one frame of about size bytes: a
// keyframe is a STAP-A with SPS and PPS, then an IDR slice; another frame is
// one non-IDR slice. A slice larger than a packet is split into FU-As.
func h264Frame(size int, key bool, st stamp) [][]byte {
	var out [][]byte
	hdr := byte(h264NRI | nalSlice)
	if key {
		hdr = h264NRI | nalIDR
		stap := []byte{h264NRI | nalSTAPA}
		for _, ps := range [][]byte{h264SPS, h264PPS} {
			stap = binary.BigEndian.AppendUint16(stap, uint16(len(ps)))
			stap = append(stap, ps...)
		}
		out = append(out, stap)
	}
	nal := make([]byte, max(size, 1+stampLen))
	nal[0] = hdr
	st.put(nal[1:])
	fill(nal[1+stampLen:])
	if len(nal) <= maxPayload {
		return append(out, nal)
	}
	body := nal[1:]
	for first := true; len(body) > 0; first = false {
		n := min(len(body), maxPayload-2)
		fu := make([]byte, 2+n)
		fu[0] = hdr&0xe0 | nalFUA
		fu[1] = hdr & 0x1f
		if first {
			fu[1] |= fuStart
		}
		if n == len(body) {
			fu[1] |= fuEnd
		}
		copy(fu[2:], body[:n])
		out = append(out, fu)
		body = body[n:]
	}
	return out
}

// vp8Frame returns the RTP payloads of one frame of about size bytes (RFC
// 7741): each has a payload descriptor with a 15-bit picture id, S=1 and
// PID=0 on the first; the frame starts with a frame tag whose P bit is 0 on a
// keyframe, followed on a keyframe by the start code and dimensions.
func vp8Frame(size int, key bool, st stamp, pictureID uint16) [][]byte {
	head := 3
	if key {
		head = 10
	}
	frame := make([]byte, max(size, head+stampLen))
	tag := uint32(len(frame)-head)<<5 | 1<<4 // first_part_size, show_frame
	if !key {
		tag |= 1 // P: inter frame
	}
	frame[0], frame[1], frame[2] = byte(tag), byte(tag>>8), byte(tag>>16)
	if key {
		copy(frame[3:], []byte{0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01}) // start code, 640x480
	}
	st.put(frame[head:])
	fill(frame[head+stampLen:])
	var out [][]byte
	for first := true; len(frame) > 0; first = false {
		n := min(len(frame), maxPayload-vp8PidLen)
		p := make([]byte, vp8PidLen+n)
		p[0] = vp8XBit
		if first {
			p[0] |= vp8SBit
		}
		p[1] = vp8IBit
		p[2] = vp8MBit | byte(pictureID>>8)&0x7f
		p[3] = byte(pictureID)
		copy(p[vp8PidLen:], frame[:n])
		out = append(out, p)
		frame = frame[n:]
	}
	return out
}

// opusFrame returns one 20 ms Opus packet: a TOC byte (CELT fullband, 20 ms,
// one frame), then the stamp and filler.
func opusFrame(st stamp) []byte {
	p := make([]byte, opusPayload)
	p[0] = 0xfc
	st.put(p[1:])
	fill(p[1+stampLen:])
	return p
}

// frameStamp reads the stamp of a packet that starts a frame, for the codec
// of the track it arrived on. Packets that do not start a frame, and frames
// of a publisher other than this tool, have none.
func frameStamp(mimeType string, p []byte) (stamp, bool) {
	switch {
	case strings.EqualFold(mimeType, codec.H264):
		if len(p) < 2 {
			return stamp{}, false
		}
		switch p[0] & 0x1f {
		case nalIDR, nalSlice:
			return getStamp(p[1:])
		case nalFUA:
			if p[1]&fuStart != 0 {
				return getStamp(p[2:])
			}
		}
	case strings.EqualFold(mimeType, codec.VP8):
		i, ok := vp8FrameStart(p)
		if !ok {
			return stamp{}, false
		}
		if p[i]&1 == 0 { // keyframe: tag, start code, dimensions
			return getStamp(p[min(i+10, len(p)):])
		}
		return getStamp(p[i+3:])
	case strings.EqualFold(mimeType, codec.Opus):
		if len(p) > 1 {
			return getStamp(p[1:])
		}
	}
	return stamp{}, false
}

// vp8FrameStart returns where the VP8 frame begins in the first packet of a
// frame (after the payload descriptor).
func vp8FrameStart(p []byte) (int, bool) {
	if len(p) < 1 || p[0]&vp8SBit == 0 || p[0]&0x07 != 0 {
		return 0, false
	}
	i := 1
	if p[0]&vp8XBit != 0 {
		if len(p) < 2 {
			return 0, false
		}
		ext := p[1]
		i = 2
		if ext&vp8IBit != 0 {
			if len(p) <= i {
				return 0, false
			}
			if p[i]&vp8MBit != 0 {
				i++
			}
			i++
		}
		if ext&0x40 != 0 {
			i++
		}
		if ext&0x30 != 0 {
			i++
		}
	}
	if len(p) < i+3 {
		return 0, false
	}
	return i, true
}

// frameSizes returns the sizes, in bytes, of a keyframe and of another frame
// that together make bitrate (bit/s) at fps frames per second with a
// keyframe every gop frames.
func frameSizes(bitrate int, fps float64, gop int) (key, inter int) {
	gop = max(gop, 1)
	bytesPerGOP := float64(bitrate) / 8 * float64(gop) / fps
	inter = int(bytesPerGOP / float64(keyframeWeight+gop-1))
	key = keyframeWeight * inter
	if gop == 1 {
		key = int(bytesPerGOP)
	}
	const least = 64
	return max(key, least), max(inter, least)
}
