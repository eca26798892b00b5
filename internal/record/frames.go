package record

import (
	"encoding/binary"
	"strings"

	"github.com/pion/rtp/codecs"

	"github.com/onair-live/onair/internal/codec"
	"github.com/onair-live/onair/internal/media"
)

// frame is one whole video picture or audio packet, as the container
// stores it.
type frame struct {
	data []byte
	ts   uint32 // RTP timestamp
	key  bool
}

// assembler turns one video track's packets, in sequence order, into whole
// frames: the packets of one RTP timestamp, from a packet that can begin a
// frame to the one with the marker bit. A frame that lost a packet, or whose
// beginning or end is missing, is dropped whole.
type assembler struct {
	mime    string
	pkts    []media.Packet
	ts      uint32
	active  bool // collecting the packets of ts
	broken  bool // and one is missing
	dropped int  // frames dropped so far
}

// push adds a packet; lost is how many packets were lost just before it.
// It returns a frame when p completes one.
func (a *assembler) push(p media.Packet, lost int) (frame, bool) {
	if lost > 0 && a.active {
		a.broken = true
	}
	if a.active && p.Timestamp != a.ts {
		a.dropFrame() // it never saw its marker
	}
	if !a.active {
		a.active, a.ts, a.pkts = true, p.Timestamp, a.pkts[:0]
		a.broken = !a.isHead(p.Payload)
	}
	a.pkts = append(a.pkts, p)
	if !p.Marker {
		return frame{}, false
	}
	a.active = false
	if a.broken {
		a.dropped++
		return frame{}, false
	}
	f, ok := a.depacketize()
	if !ok {
		a.dropped++
	}
	return f, ok
}

func (a *assembler) dropFrame() {
	a.active = false
	a.dropped++
}

// isHead reports whether a packet can be the first of a frame.
func (a *assembler) isHead(payload []byte) bool {
	if len(payload) == 0 {
		return false
	}
	switch {
	case strings.EqualFold(a.mime, codec.VP8):
		// S (start of partition) with partition index 0.
		return payload[0]&0x10 != 0 && payload[0]&0x07 == 0
	case strings.EqualFold(a.mime, codec.VP9):
		return payload[0]&0x08 != 0 // B: beginning of a frame
	case strings.EqualFold(a.mime, codec.H264):
		return (&codecs.H264Packet{}).IsPartitionHead(payload)
	case strings.EqualFold(a.mime, codec.AV1):
		return payload[0]&0x80 == 0 // Z = 0: not the continuation of an OBU
	}
	return false
}

// depacketize joins the frame's payloads into the codec's bitstream as the
// container takes it: VP8/VP9 frames, AV1 temporal units (OBUs with size
// fields), H.264 access units with 4-byte NAL lengths (AVCC).
func (a *assembler) depacketize() (frame, bool) {
	var (
		out []byte
		err error
	)
	f := frame{ts: a.ts}
	switch {
	case strings.EqualFold(a.mime, codec.VP8):
		for _, p := range a.pkts {
			var d codecs.VP8Packet
			var b []byte
			if b, err = d.Unmarshal(p.Payload); err != nil {
				return f, false
			}
			out = append(out, b...)
		}
		f.key = len(out) > 0 && out[0]&0x01 == 0
	case strings.EqualFold(a.mime, codec.VP9):
		for _, p := range a.pkts {
			var d codecs.VP9Packet
			var b []byte
			if b, err = d.Unmarshal(p.Payload); err != nil {
				return f, false
			}
			out = append(out, b...)
		}
		f.key = codec.IsKeyframe(codec.VP9, a.pkts[0].Payload)
	case strings.EqualFold(a.mime, codec.H264):
		d := codecs.H264Packet{IsAVC: true}
		for _, p := range a.pkts {
			var b []byte
			if b, err = d.Unmarshal(p.Payload); err != nil {
				return f, false
			}
			out = append(out, b...)
		}
		eachNAL(out, func(nal []byte) {
			if nal[0]&0x1f == 5 {
				f.key = true
			}
		})
	case strings.EqualFold(a.mime, codec.AV1):
		var d codecs.AV1Depacketizer
		for _, p := range a.pkts {
			var b []byte
			if b, err = d.Unmarshal(p.Payload); err != nil {
				return f, false
			}
			out = append(out, b...)
		}
		f.key = codec.IsKeyframe(codec.AV1, a.pkts[0].Payload) || av1SequenceHeader(out) != nil
	default:
		return f, false
	}
	if len(out) == 0 {
		return f, false
	}
	f.data = out
	return f, true
}

// eachNAL calls fn with each NAL unit of an AVCC buffer (4-byte lengths).
func eachNAL(b []byte, fn func(nal []byte)) {
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b))
		b = b[4:]
		if n <= 0 || n > len(b) {
			return
		}
		fn(b[:n])
		b = b[n:]
	}
}
