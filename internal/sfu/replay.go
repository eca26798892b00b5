package sfu

import (
	"slices"
	"time"
)

// A joining video viewer is sent the cached group of pictures, so that it
// can decode at once: the keyframe at once, then the rest of the group at
// replaySpeed times its own bitrate, paced by its shard's writer every
// replayTick. Sent all at once, a two-second group at 2 Mbit/s (500 KB)
// overflows a client's default socket buffer (208 KiB on Linux) and the
// late joiner loses part of it. Live packets that come meanwhile are held
// behind the replay and follow it in order; at replaySpeed times the
// bitrate the viewer catches up with the live stream in about half the
// group's length.
const (
	replaySpeed = 3
	replayTick  = 10 * time.Millisecond
	// minReplayRate (bytes/s) is the least a replay is sent at, whatever
	// the group's bitrate: 2 Mbit/s.
	minReplayRate = 250_000
	// replayBurst (bytes) is the most a replay sends at once after a late
	// tick (a busy machine): well within a client's socket buffer.
	replayBurst = 32 << 10
	// maxReplayHeld bounds the live packets held behind a replay; past it
	// the rest is sent unpaced.
	maxReplayHeld = 4096
)

// replay is what is left to send of a viewer's replay: the cached group
// and the live packets held behind it. Its shard's writer alone uses it.
type replay struct {
	pkts   []*packet
	next   int
	rate   float64 // bytes per second
	tokens float64 // bytes that may be sent now
	last   time.Time
}

// newReplay paces pkts, a group of pictures of a track of the given clock
// rate, at replaySpeed times its bitrate (or the track's, if higher).
func newReplay(pkts []*packet, clock uint32, bitrate int64) *replay {
	bytes := 0
	for _, p := range pkts {
		bytes += rtpHeaderSize + len(p.payload)
	}
	span := 0.1
	if clock > 0 {
		span = max(span, float64(pkts[len(pkts)-1].header.Timestamp-pkts[0].header.Timestamp)/float64(clock))
	}
	rate := max(float64(bytes)/span, float64(bitrate)/8) * replaySpeed
	return &replay{pkts: pkts, rate: max(rate, minReplayRate)}
}

// unpaced is a replay rate (bytes/s) that sends whatever is left at the
// next tick.
const unpaced = 1e12

// rtpHeaderSize is what a packet's header is counted as in budgets.
const rtpHeaderSize = 12

// hold queues a live packet behind the replay.
func (r *replay) hold(d *downTrack, p *packet) {
	r.pkts = append(r.pkts, p)
	if len(r.pkts)-r.next > maxReplayHeld && r.rate < unpaced {
		r.rate = unpaced // it would never catch up: send the rest now
		d.sub.ep.log.Warn("replay could not catch up with the live stream, sending the rest unpaced")
	}
}

// startReplay sends a joining viewer's keyframe at once and paces the rest.
func (sh *shard) startReplay(d *downTrack, rp *replay) {
	if d.sub.gone.Load() {
		return
	}
	ts := rp.pkts[0].header.Timestamp
	for rp.next < len(rp.pkts) && rp.pkts[rp.next].header.Timestamp == ts {
		sh.queueFor(d, rp.pkts[rp.next])
		rp.next++
	}
	if rp.next == len(rp.pkts) {
		return
	}
	d.rp, rp.last = rp, time.Now()
	if len(sh.replays) == 0 {
		sh.ticker.Reset(replayTick)
	}
	sh.replays = append(sh.replays, d)
}

// pace sends each replay's share of packets for the time since the last
// tick, and ends the replays that have caught up.
func (sh *shard) pace(now time.Time) {
	for _, d := range sh.replays {
		rp := d.rp
		if d.sub.gone.Load() {
			rp.next = len(rp.pkts)
		}
		if el := now.Sub(rp.last); el > 0 {
			rp.tokens = min(rp.tokens+rp.rate*el.Seconds(), max(replayBurst, rp.rate*2*replayTick.Seconds()))
			rp.last = now
		}
		for rp.tokens > 0 && rp.next < len(rp.pkts) {
			p := rp.pkts[rp.next]
			rp.pkts[rp.next] = nil
			rp.next++
			rp.tokens -= float64(rtpHeaderSize + len(p.payload))
			sh.queueFor(d, p)
		}
		if rp.next == len(rp.pkts) {
			d.rp = nil
		}
	}
	sh.replays = slices.DeleteFunc(sh.replays, func(d *downTrack) bool { return d.rp == nil })
	if len(sh.replays) == 0 {
		sh.ticker.Stop()
	}
}
