package sfu

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"

	"github.com/onair-live/onair/internal/media"
)

// Recorder states, as Stats reports them.
const (
	recWaiting   = "waiting"   // for the presenter's offer to be negotiated
	recRecording = "recording" // attached to the published tracks
	recRefused   = "refused"   // the sink would not record this broadcast
	recReleased  = "released"
)

// NewRecorder creates a recorder endpoint: it is fed the published tracks
// like a viewer (a bounded queue and a goroutine of its own, so the
// presenter's read loop never waits on it) and hands each packet to sink.
// It is listed with the pipeline's endpoints and released with them; sink
// is closed when it is.
func (p *Pipeline) NewRecorder(name string, sink media.Sink) (media.Endpoint, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		return nil, media.ErrReleased
	}
	ep := newEndpoint(p, media.Recorder, name, media.Events{})
	ep.rec = &recording{ep: ep, sink: sink, queue: make(chan recPacket, p.engine.cfg.QueueLength)}
	ep.rec.st.Store(recWaiting)
	p.endpoints[ep.id] = ep
	ep.goroutine(ep.rec.run)
	ep.log.Debug("recorder created")
	return ep, nil
}

// recording is a recorder endpoint's side of the broadcast.
type recording struct {
	ep    *Endpoint
	sink  media.Sink
	queue chan recPacket
	st    atomic.Value // string: one of the rec* states

	mu       sync.Mutex
	tracks   []*recTrack
	detached bool
	finished bool
}

// recTrack is one published track as the recorder receives it.
type recTrack struct {
	rec   *recording
	up    *upTrack
	index int
}

type recPacket struct {
	t *recTrack
	p *packet
}

func (r *recording) state() string { return r.st.Load().(string) }

// run waits for the published tracks, starts the sink and writes queued
// packets to it until the endpoint is released.
func (r *recording) run() {
	p := r.ep.p
	select {
	case <-p.ready:
	case <-r.ep.done:
		return
	}
	p.mu.Lock()
	ups := p.tracks
	p.mu.Unlock()
	if ups = recordedLayers(ups, r.ep.done); ups == nil {
		return // released while waiting
	}
	infos := make([]media.Track, len(ups))
	var video *upTrack
	for i, t := range ups {
		infos[i] = media.Track{Kind: t.kind.String(), MimeType: t.codec.MimeType,
			ClockRate: t.codec.ClockRate, Channels: t.codec.Channels, Fmtp: t.codec.SDPFmtpLine}
		if t.kind == webrtc.RTPCodecTypeVideo && video == nil {
			video = t
		}
	}
	requestKeyframe := func() {
		if video != nil {
			video.requestKeyframe()
		}
	}
	if err := r.sink.Start(infos, requestKeyframe); err != nil {
		r.st.Store(recRefused)
		r.ep.log.Warn("not recording", "err", err)
		return
	}
	if !r.attach(ups) {
		return
	}
	r.st.Store(recRecording)
	r.ep.log.Info("recording", "tracks", describe(infos))
	for {
		select {
		case rp := <-r.queue:
			r.sink.WritePacket(media.Packet{
				Track: rp.t.index, SequenceNumber: rp.p.header.SequenceNumber,
				Timestamp: rp.p.header.Timestamp, Marker: rp.p.header.Marker,
				Payload: rp.p.payload, Arrival: rp.p.arrival,
			})
			r.ep.packetsOut.Add(1)
			r.ep.bytesOut.Add(uint64(len(rp.p.payload)))
		case <-r.ep.done:
			return
		}
	}
}

// attach joins the recorder to the published tracks, unless it was released.
func (r *recording) attach(ups []*upTrack) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.detached {
		return false
	}
	for i, up := range ups {
		t := &recTrack{rec: r, up: up, index: i}
		r.tracks = append(r.tracks, t)
		up.addDown(t)
	}
	return true
}

// detach leaves the published tracks; nothing is queued after it.
func (r *recording) detach() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.detached = true
	for _, t := range r.tracks {
		t.up.removeDown(t)
	}
	r.tracks = nil
}

// finish closes the sink, once its writer has stopped.
func (r *recording) finish() {
	r.mu.Lock()
	done := r.finished
	r.finished = true
	r.mu.Unlock()
	if done {
		return
	}
	r.st.Store(recReleased)
	if err := r.sink.Close(); err != nil {
		r.ep.log.Warn("recording did not close cleanly", "err", err)
	}
}

// enqueue queues a packet for the sink without waiting. When the queue is
// full the packet is dropped, and the sink will see a gap in the sequence.
func (t *recTrack) enqueue(p *packet) {
	select {
	case t.rec.queue <- recPacket{t: t, p: p}:
	default:
		ep := t.rec.ep
		if ep.dropped.Add(1)%100 == 1 {
			ep.log.Warn("recorder queue full, dropping packets", "dropped", ep.dropped.Load())
		}
		if t.up.isVideo {
			t.up.requestKeyframe()
		}
	}
}

func describe(tracks []media.Track) string {
	names := make([]string, len(tracks))
	for i, t := range tracks {
		names[i] = t.MimeType
	}
	return strings.Join(names, ",")
}
