package record

import (
	"github.com/onair-live/onair/internal/media"
)

// Frame is one whole video picture or audio packet of a track.
type Frame struct {
	// Data is a VP8 or VP9 frame, an AV1 temporal unit (OBUs with size
	// fields), an H.264 access unit with 4-byte NAL lengths (AVCC), or one
	// Opus packet.
	Data []byte
	// Timestamp is the frame's RTP timestamp; Arrival is when the engine
	// received its first packet.
	Timestamp uint32
	Key       bool
	Arrival   int64 // ns since the Unix epoch
}

// Depacketizer turns one track's RTP packets into whole frames, as the
// recorder does (other sinks, such as the HLS muxer, share it): packets are
// put back in order, a video frame that lost a packet is dropped whole.
type Depacketizer struct {
	reorder *reorderBuffer
	asm     *assembler // nil for audio

	first    int64 // arrival of the frame being assembled
	lost     bool  // packets were lost since the last frame out
	reported int   // asm.dropped at the last frame out
}

// NewDepacketizer follows a track as media.Sink.Start describes it.
func NewDepacketizer(t media.Track) *Depacketizer {
	if t.Kind == "video" {
		return &Depacketizer{reorder: newReorderBuffer(videoReorderSize, videoReorderDelay),
			asm: &assembler{mime: t.MimeType}}
	}
	return &Depacketizer{reorder: newReorderBuffer(audioReorderSize, audioReorderDelay)}
}

// Push takes one packet and calls out for each frame it completes; lost
// says that frames were lost before this one (ask for a keyframe, and skip
// to it). Payloads are parsed here: a malformed one may panic, which the
// caller should recover from.
func (d *Depacketizer) Push(p media.Packet, out func(f Frame, lost bool)) {
	d.reorder.push(p, func(p media.Packet, lost int) { d.inOrder(p, lost, out) })
}

// Flush releases what is held, at the end of the stream.
func (d *Depacketizer) Flush(out func(f Frame, lost bool)) {
	d.reorder.flush(func(p media.Packet, lost int) { d.inOrder(p, lost, out) })
}

func (d *Depacketizer) inOrder(p media.Packet, lost int, out func(Frame, bool)) {
	if d.asm == nil {
		if len(p.Payload) > 0 {
			out(Frame{Data: p.Payload, Timestamp: p.Timestamp, Key: true, Arrival: p.Arrival.UnixNano()}, lost > 0)
		}
		return
	}
	if !d.asm.active || p.Timestamp != d.asm.ts {
		d.first = p.Arrival.UnixNano()
	}
	d.lost = d.lost || lost > 0
	f, ok := d.asm.push(p, lost)
	if !ok {
		return
	}
	lostSome := d.lost || d.asm.dropped != d.reported
	d.lost, d.reported = false, d.asm.dropped
	out(Frame{Data: f.data, Timestamp: f.ts, Key: f.key, Arrival: d.first}, lostSome)
}

// EachNAL calls fn with each NAL unit of an H.264 frame (AVCC).
func EachNAL(b []byte, fn func(nal []byte)) { eachNAL(b, fn) }
