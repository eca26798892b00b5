package record

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/onair-live/onair/internal/codec"
	"github.com/onair-live/onair/internal/media"
)

const (
	// Reorder windows: how long a missing packet is waited for (a
	// retransmission takes a round trip), and how many packets may wait.
	videoReorderDelay = 500 * time.Millisecond
	videoReorderSize  = 1024
	audioReorderDelay = 250 * time.Millisecond
	audioReorderSize  = 64
	// interleaveDelay bounds how long a track's frames wait for the other
	// track's, to be written in time order.
	interleaveDelay = time.Second
)

// Recording is one broadcast being written to a file. It implements
// media.Sink: the media engine calls Start, WritePacket and Close from one
// goroutine at a time. The file is created at the first video keyframe (the
// first audio packet for a broadcast without video).
type Recording struct {
	rec   *Recorder
	info  Info
	log   *slog.Logger
	begun time.Time

	tracks          []*trackState
	requestKeyframe func()
	docType, ext    string
	video           *trackState // the first video track, if any

	origin   time.Time // arrival of the first packet: the zero of media time
	zero     int64     // media time (ns) of the file's first frame
	started  bool
	waitKey  bool // a video frame was lost: skip to the next keyframe
	sps, pps []byte

	name, path string
	mux        fileWriter
	pending    [][]timedFrame // per file track, frames waiting to be interleaved
	newest     int64          // ns, newest frame handed to the interleaver
	writeErr   error

	mu       sync.Mutex
	closed   bool
	result   Result
	recorded bool
}

// trackState is one published track as the recording follows it.
type trackState struct {
	index   int
	video   bool
	mime    string
	clock   uint32
	number  int // in the file, 1-based; 0 if not in it
	reorder *reorderBuffer
	asm     *assembler

	based    bool
	base     int64 // ns from origin to the first packet's arrival
	ts0      int64 // the first packet's unwrapped timestamp
	lastTS   uint32
	extTS    int64
	lastT    int64 // ns, newest frame written
	frameDur int64 // ns, between the last two frames written
	frames   int
}

// timedFrame is a frame with its time from the start of the file.
type timedFrame struct {
	t     *trackState
	ns    int64
	frame frame
}

// Result describes a finalized recording.
type Result struct {
	Name     string
	Path     string
	Bytes    int64
	Duration time.Duration
	Codecs   []string // MIME types, e.g. video/VP8, audio/opus
}

// Start checks that every track can be stored and picks the container:
// MP4 for H.264, VP9 and AV1 with Opus, WebM for VP8 and for audio alone.
func (r *Recording) Start(tracks []media.Track, requestKeyframe func()) error {
	r.requestKeyframe = requestKeyframe
	if r.requestKeyframe == nil {
		r.requestKeyframe = func() {}
	}
	r.docType, r.ext = "webm", ".webm"
	for i, t := range tracks {
		if _, ok := matroskaCodec(t.MimeType); !ok {
			err := fmt.Errorf("%w: %s (%s track)", ErrUnsupportedCodec, t.MimeType, t.Kind)
			r.log.Warn("broadcast not recorded", "reason", err.Error())
			return err
		}
		ts := &trackState{index: i, video: t.Kind == "video", mime: t.MimeType, clock: t.ClockRate}
		if ts.clock == 0 {
			ts.clock = 90000
			if !ts.video {
				ts.clock = 48000
			}
		}
		if ts.video {
			ts.reorder = newReorderBuffer(videoReorderSize, videoReorderDelay)
			ts.asm = &assembler{mime: t.MimeType}
			if r.video == nil {
				r.video = ts
			}
		} else {
			ts.reorder = newReorderBuffer(audioReorderSize, audioReorderDelay)
		}
		r.tracks = append(r.tracks, ts)
	}
	if len(r.tracks) == 0 {
		err := fmt.Errorf("%w: the broadcast has no track", ErrUnsupportedCodec)
		r.log.Warn("broadcast not recorded", "reason", err.Error())
		return err
	}
	if r.video != nil && !strings.EqualFold(r.video.mime, codec.VP8) {
		r.docType, r.ext = "mp4", ".mp4"
	}
	return nil
}

// WritePacket takes one RTP packet of a track. The payloads come from the
// presenter and are parsed here: should a parser fail on one, the recording
// stops (the file keeps what was written) and the server goes on.
func (r *Recording) WritePacket(p media.Packet) {
	if p.Track < 0 || p.Track >= len(r.tracks) || r.writeErr != nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			r.fail(fmt.Errorf("record: cannot parse the %s stream: %v", r.tracks[p.Track].mime, v))
		}
	}()
	if r.origin.IsZero() {
		r.origin = p.Arrival
	}
	t := r.tracks[p.Track]
	t.reorder.push(p, func(p media.Packet, lost int) { r.inOrder(t, p, lost) })
}

// inOrder handles a track's packets in sequence order.
func (r *Recording) inOrder(t *trackState, p media.Packet, lost int) {
	ns := t.mediaTime(p, r.origin)
	if !t.video {
		if len(p.Payload) > 0 {
			r.addFrame(t, ns, frame{data: p.Payload, ts: p.Timestamp, key: true})
		}
		return
	}
	if lost > 0 && r.started && !r.waitKey {
		r.waitKey = true
		r.requestKeyframe()
	}
	dropped := t.asm.dropped
	f, ok := t.asm.push(p, lost)
	if t.asm.dropped != dropped && !r.waitKey {
		r.waitKey = true
		r.requestKeyframe()
	}
	if !ok {
		return
	}
	if strings.EqualFold(t.mime, codec.H264) {
		eachNAL(f.data, func(nal []byte) {
			switch nal[0] & 0x1f {
			case 7:
				r.sps = append(r.sps[:0], nal...)
			case 8:
				r.pps = append(r.pps[:0], nal...)
			}
		})
	}
	if r.waitKey {
		if !f.key {
			return
		}
		r.waitKey = false
	}
	r.addFrame(t, ns, f)
}

// mediaTime is when a packet was captured, in ns from the origin: its
// track's first arrival plus the RTP time since. Tracks are aligned by the
// arrival of their first packets.
func (t *trackState) mediaTime(p media.Packet, origin time.Time) int64 {
	if !t.based {
		t.based = true
		t.base = p.Arrival.Sub(origin).Nanoseconds()
		t.lastTS, t.extTS = p.Timestamp, int64(p.Timestamp)
		t.ts0 = t.extTS
	}
	t.extTS += int64(int32(p.Timestamp - t.lastTS))
	t.lastTS = p.Timestamp
	return t.base + (t.extTS-t.ts0)*int64(time.Second)/int64(t.clock)
}

// addFrame starts the file at the first keyframe, then queues frames for
// writing in time order.
func (r *Recording) addFrame(t *trackState, ns int64, f frame) {
	if !r.started {
		if r.video != nil && (t != r.video || !f.key) {
			if t == r.video {
				r.requestKeyframe()
			}
			return
		}
		if err := r.create(f); err != nil {
			if errors.Is(err, errNoConfig) {
				r.log.Debug("keyframe without decoder configuration, waiting for another", "err", err)
				r.requestKeyframe()
				return
			}
			r.fail(err)
			return
		}
		r.started, r.zero = true, ns
	}
	if t.number == 0 {
		return
	}
	ns -= r.zero
	if ns < 0 {
		return // before the first keyframe
	}
	if t.frames > 0 {
		if ns < t.lastT {
			ns = t.lastT // keep each track's time monotonic
		}
		if d := ns - t.lastT; d > 0 {
			t.frameDur = d
		}
	}
	t.lastT = ns
	t.frames++
	r.pending[t.number-1] = append(r.pending[t.number-1], timedFrame{t: t, ns: ns, frame: f})
	r.newest = max(r.newest, ns)
	r.interleave(false)
}

// interleave writes queued frames in time order: the earliest head of a
// track's queue, once every track has a frame queued, or once it is
// interleaveDelay behind the newest frame (a track fell silent).
func (r *Recording) interleave(all bool) {
	for {
		best, empty := -1, false
		for i, q := range r.pending {
			if len(q) == 0 {
				empty = true
				continue
			}
			if best < 0 || q[0].ns < r.pending[best][0].ns {
				best = i
			}
		}
		if best < 0 {
			return
		}
		tf := r.pending[best][0]
		if empty && !all && r.newest-tf.ns < int64(interleaveDelay) {
			return
		}
		r.pending[best] = r.pending[best][1:]
		if r.writeErr != nil {
			continue
		}
		if err := r.mux.writeFrame(tf.t.number, tf.t.video, tf.frame.key, tf.ns, tf.frame.data); err != nil {
			r.fail(err)
		}
	}
}

// fail stops writing after an error; the file keeps what was written.
func (r *Recording) fail(err error) {
	if r.writeErr == nil {
		r.writeErr = err
		r.log.Error("recording failed, stopped writing", "file", r.path, "err", err)
	}
}

// Close writes what is still held, then finalizes the file (cues, duration,
// sizes) and posts the upload hook.
func (r *Recording) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	for _, t := range r.tracks {
		t.reorder.flush(func(p media.Packet, lost int) { r.inOrder(t, p, lost) })
	}
	if r.mux == nil {
		if r.tracks != nil {
			r.log.Info("nothing recorded: no keyframe arrived")
		}
		return nil
	}
	r.interleave(true)
	var end int64
	var codecs []string
	for _, t := range r.tracks {
		if t.number == 0 {
			continue
		}
		codecs = append(codecs, t.mime)
		if t.frames > 0 {
			d := t.frameDur
			if d == 0 {
				d = int64(20 * time.Millisecond)
			}
			end = max(end, t.lastT+d)
		}
	}
	if r.writeErr != nil {
		r.mux.abort()
	} else if err := r.mux.end(end); err != nil {
		r.fail(err)
	}
	r.rec.setActive(r.name, false)
	res := Result{Name: r.name, Path: r.path, Duration: time.Duration(end), Codecs: codecs}
	if fi, err := os.Stat(r.path); err == nil {
		res.Bytes = fi.Size()
	}
	r.mu.Lock()
	r.result, r.recorded = res, r.writeErr == nil
	r.mu.Unlock()
	if r.writeErr != nil {
		r.rec.cfg.OnOutcome(OutcomeFailed)
		return r.writeErr
	}
	r.log.Info("recording finished", "file", res.Path, "bytes", res.Bytes,
		"duration", res.Duration.Round(time.Millisecond).String(), "codecs", strings.Join(codecs, ","),
		"droppedFrames", r.droppedFrames())
	r.rec.announce(r.info, res)
	return nil
}

func (r *Recording) droppedFrames() int {
	n := 0
	for _, t := range r.tracks {
		if t.asm != nil {
			n += t.asm.dropped
		}
	}
	return n
}

// Result describes the finalized file; ok is false until Close has
// finalized one (and when nothing was recorded).
func (r *Recording) Result() (Result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.result, r.recorded
}
