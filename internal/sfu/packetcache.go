package sfu

import (
	"time"

	"github.com/pion/rtp"
)

// packet is one RTP packet as the presenter sent it. Once made it is never
// modified, so that every viewer's writer can read it at once; a writer that
// must change a field copies the header first.
type packet struct {
	header   rtp.Header
	payload  []byte
	keyframe bool // starts a keyframe
	layer    int8 // the simulcast layer it belongs to (0 without simulcast)
	exts     []extension
	arrival  time.Time // when it was read from the presenter (for recorders)
	// wake: with this packet, a viewer's writer has a whole burst to send (an
	// audio packet, the end of a video frame, a late packet): see enqueue.
	wake bool
}

// extension is one header extension of a packet, read once on arrival.
type extension struct {
	id      uint8
	payload []byte
}

// newPacket copies buf and parses it, so the packet owns its bytes.
func newPacket(buf []byte) (*packet, error) {
	b := make([]byte, len(buf))
	copy(b, buf)
	p := &packet{}
	n, err := p.header.Unmarshal(b)
	if err != nil {
		return nil, err
	}
	end := len(b)
	if p.header.Padding && end > n {
		pad := int(b[end-1])
		if pad == 0 || end-pad < n {
			return nil, errBadPadding
		}
		end -= pad
	}
	p.header.Padding, p.header.PaddingSize = false, 0
	for _, id := range p.header.GetExtensionIDs() {
		p.exts = append(p.exts, extension{id: id, payload: p.header.GetExtension(id)})
	}
	p.payload = b[n:end]
	return p, nil
}

// packetCache is a track's recent history, shared by all its viewers: NACKs
// are answered from it and a new viewer is started from its last keyframe.
// It is not safe for concurrent use; its track's mutex guards it.
type packetCache struct {
	slots []*packet // indexed by sequence number modulo len
	mask  uint16
	last  uint16 // newest sequence number stored
	any   bool
}

// newPacketCache makes a cache of size packets, rounded up to a power of two.
func newPacketCache(size int) *packetCache {
	n := 1
	for n < size && n < 1<<15 {
		n <<= 1
	}
	return &packetCache{slots: make([]*packet, n), mask: uint16(n - 1)}
}

func (c *packetCache) put(p *packet) {
	seq := p.header.SequenceNumber
	c.slots[seq&c.mask] = p
	if !c.any || seqNewer(seq, c.last) {
		c.last, c.any = seq, true
	}
}

func (c *packetCache) get(seq uint16) *packet {
	p := c.slots[seq&c.mask]
	if p == nil || p.header.SequenceNumber != seq {
		return nil
	}
	return p
}

// since returns the packets from seq to the newest, in order, skipping those
// not held; nil if seq has already left the cache.
func (c *packetCache) since(seq uint16) []*packet {
	if !c.any {
		return nil
	}
	n := int(c.last-seq) + 1
	if n <= 0 || n > len(c.slots) {
		return nil
	}
	out := make([]*packet, 0, n)
	for i := 0; i < n; i++ {
		if p := c.get(seq + uint16(i)); p != nil {
			out = append(out, p)
		}
	}
	return out
}

// seqNewer reports whether a is after b in RTP sequence order.
func seqNewer(a, b uint16) bool {
	return a != b && a-b < 0x8000
}
