package record

import (
	"time"

	"github.com/onair-live/onair/internal/media"
)

// reorderBuffer puts one track's RTP packets back in sequence order. A
// packet is released as soon as every packet before it has been; a missing
// packet is waited for until the packets held behind it are maxDelay older
// than the newest arrival (time enough for a retransmission), or until they
// fill half the buffer, and then given up as lost. Late packets (behind
// what was released) and duplicates are dropped. The first packets are held
// for maxDelay too, so that a first packet overtaken by the next still
// starts the stream.
type reorderBuffer struct {
	slots    []media.Packet
	held     []bool
	next     uint16 // the next sequence number to release
	started  bool
	first    time.Time // arrival of the first packet
	warm     bool      // releasing: next only moves forward
	count    int       // packets held
	maxDelay time.Duration
}

// newReorderBuffer holds up to size packets, rounded up to a power of two
// so that sequence numbers keep their slots across the 16-bit wrap.
func newReorderBuffer(size int, maxDelay time.Duration) *reorderBuffer {
	n := 2
	for n < size && n < 1<<15 {
		n *= 2
	}
	size = n
	return &reorderBuffer{slots: make([]media.Packet, size), held: make([]bool, size), maxDelay: maxDelay}
}

// push adds p and calls out for each packet that can now be released, in
// order; lost is how many packets were given up just before that one.
func (b *reorderBuffer) push(p media.Packet, out func(p media.Packet, lost int)) {
	if !b.started {
		b.started, b.next, b.first = true, p.SequenceNumber, p.Arrival
	}
	d := int(int16(p.SequenceNumber - b.next))
	switch {
	case d < 0 && !b.warm && -d < len(b.slots)/4:
		b.next = p.SequenceNumber // an earlier first packet
	case d < 0:
		return // late: its place was released or given up
	case d >= len(b.slots):
		// A jump past the window (a long outage or a restarted sender):
		// release what is held and start again from p.
		b.flush(out)
		b.next = p.SequenceNumber
	}
	i := b.index(p.SequenceNumber)
	if b.held[i] {
		return // duplicate
	}
	b.slots[i], b.held[i] = p, true
	b.count++
	if !b.warm {
		if p.Arrival.Sub(b.first) < b.maxDelay && b.count < len(b.slots)/2 {
			return
		}
		b.warm = true
	}
	b.release(out, 0)
	for b.count > 0 && b.stale(p.Arrival) {
		b.release(out, b.skip())
	}
}

// flush releases everything held, giving up on the gaps.
func (b *reorderBuffer) flush(out func(p media.Packet, lost int)) {
	b.warm = true
	for b.count > 0 {
		b.release(out, b.skip())
	}
}

func (b *reorderBuffer) index(seq uint16) int { return int(seq) % len(b.slots) }

// release hands out the run of held packets starting at next.
func (b *reorderBuffer) release(out func(p media.Packet, lost int), lost int) {
	for {
		i := b.index(b.next)
		if !b.held[i] {
			return
		}
		p := b.slots[i]
		b.slots[i], b.held[i] = media.Packet{}, false
		b.count--
		b.next++
		out(p, lost)
		lost = 0
	}
}

// skip gives up on the missing packets before the first held one and
// returns how many they were.
func (b *reorderBuffer) skip() int {
	n := 0
	for !b.held[b.index(b.next)] {
		b.next++
		n++
	}
	return n
}

// stale reports whether the gap at next has been waited for long enough.
func (b *reorderBuffer) stale(now time.Time) bool {
	if b.count >= len(b.slots)/2 {
		return true
	}
	for k := 1; k < len(b.slots); k++ {
		if i := b.index(b.next + uint16(k)); b.held[i] {
			return now.Sub(b.slots[i].Arrival) >= b.maxDelay
		}
	}
	return false
}
