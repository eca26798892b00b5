package media

import "time"

// Track describes one published track to a Sink.
type Track struct {
	Kind      string // "audio" or "video"
	MimeType  string // as pion spells it, e.g. "video/VP8", "audio/opus"
	ClockRate uint32
	Channels  uint16
	Fmtp      string
}

// Packet is one RTP packet of a published track, as a Sink receives it.
type Packet struct {
	Track          int // index into the tracks given to Sink.Start
	SequenceNumber uint16
	Timestamp      uint32
	Marker         bool
	// Payload is shared with the engine and the broadcast's viewers: the
	// sink must not modify it, and may keep it.
	Payload []byte
	// Arrival is when the engine received the packet from the presenter.
	Arrival time.Time
}

// Sink receives a broadcast's media: a recorder. The engine feeds it like a
// viewer, from a bounded queue of its own, so a slow sink loses packets
// instead of slowing the broadcast.
type Sink interface {
	// Start is called once, with the published tracks, before any packet.
	// requestKeyframe asks the presenter for a keyframe (throttled by the
	// engine; safe from any goroutine). An error means the sink will not
	// record this broadcast: it is then sent no packet.
	Start(tracks []Track, requestKeyframe func()) error
	// WritePacket is called for each packet, from one goroutine.
	WritePacket(Packet)
	// Close is called once, when the endpoint is released, after the last
	// WritePacket; also when Start was never called or failed.
	Close() error
}
