package hls

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"

	"github.com/onair-live/onair/internal/codec"
	"github.com/onair-live/onair/internal/media"
	"github.com/onair-live/onair/internal/record"
)

// errEnded: the broadcast ended before its tracks were known.
var errEnded = errors.New("the broadcast has ended")

// stream is one room's muxer. It is a media.Sink: the engine calls Start,
// WritePacket and Close from the stream's endpoint goroutine, and the HTTP
// handlers read the muxer (which has its own lock) once started is closed.
type stream struct {
	srv  *Server
	room string
	log  *slog.Logger

	started  chan struct{} // closed once Start has run (or Close before it)
	startErr error         // why the room cannot be served; set before started closes
	muxer    *gohlslib.Muxer
	tracks   []*trackIn // by published track; nil where not muxed

	poller      *poller        // set before started closes, with the muxer
	closed      chan struct{}  // closed by Close
	endpoint    media.Endpoint // set once attached, under srv.mu
	lastRequest atomic.Int64   // ns since the epoch
	stopOnce    sync.Once

	// Engine goroutine only.
	requestKeyframe func()
	origin          int64 // arrival of the first packet (ns since the epoch)
	waitKey         bool
	keyAt, askedAt  int64 // arrival of the last keyframe, and of our last ask for one

	mu      sync.Mutex
	clients map[string]int64 // viewer key to its last playlist request (ns)
}

// trackIn is one published track as the muxer follows it.
type trackIn struct {
	mime  string
	video bool
	out   *gohlslib.Track
	depak *record.Depacketizer
	clock int64

	based  bool
	base   int64 // ticks from the origin to the first frame's arrival
	ts0    int64
	lastTS uint32
	extTS  int64
}

func newStream(srv *Server, room string) *stream {
	st := &stream{srv: srv, room: room, log: srv.log.With("room", room), started: make(chan struct{}),
		closed: make(chan struct{}), clients: map[string]int64{}}
	st.lastRequest.Store(time.Now().UnixNano())
	return st
}

// Supported reports whether a room whose video is mime can be served, and
// why not.
func Supported(mime string) error {
	switch {
	case strings.EqualFold(mime, codec.H264), strings.EqualFold(mime, codec.VP9), strings.EqualFold(mime, codec.AV1):
		return nil
	case strings.EqualFold(mime, codec.VP8):
		return errors.New("this room's video is VP8, which HLS cannot carry; the presenter must send H.264 (or VP9, AV1) for HLS")
	}
	return fmt.Errorf("this room's video is %s, which HLS cannot carry", mime)
}

// Start picks the first video and the first Opus track and starts the
// muxer; a room whose video cannot be packaged is refused.
func (st *stream) Start(tracks []media.Track, requestKeyframe func()) error {
	defer close(st.started)
	st.requestKeyframe = requestKeyframe
	st.tracks = make([]*trackIn, len(tracks))
	var out []*gohlslib.Track
	haveVideo, haveAudio := false, false
	for i, t := range tracks {
		in := &trackIn{mime: t.MimeType, video: t.Kind == "video", depak: record.NewDepacketizer(t)}
		switch {
		case in.video && !haveVideo:
			if err := Supported(t.MimeType); err != nil {
				st.startErr = err
				st.log.Info("room not served over HLS", "reason", err.Error())
				return err
			}
			haveVideo, in.clock = true, 90000
			in.out = &gohlslib.Track{Codec: videoCodec(t.MimeType), ClockRate: 90000}

		case !in.video && !haveAudio && strings.EqualFold(t.MimeType, codec.Opus):
			haveAudio, in.clock = true, 48000
			in.out = &gohlslib.Track{Codec: &codecs.Opus{ChannelCount: 2}, ClockRate: 48000}
		default:
			continue
		}
		st.tracks[i] = in
		if in.video {
			// The video first: gohlslib's multivariant playlist waits for
			// its first track's content, and names it video1.
			out = append([]*gohlslib.Track{in.out}, out...)
		} else {
			out = append(out, in.out)
		}
	}
	if len(out) == 0 {
		st.startErr = errors.New("this room has no track that HLS can carry")
		return st.startErr
	}
	m := &gohlslib.Muxer{
		Variant:      gohlslib.MuxerVariantLowLatency,
		SegmentCount: 7,
		// A keyframe a little early (encoders' timing jitters) still
		// closes a segment: with a GOP of the segment's length, segments
		// keep that length instead of doubling.
		SegmentMinDuration: st.srv.cfg.Segment - st.srv.cfg.Segment/10,
		PartMinDuration:    st.srv.cfg.Part,
		Tracks:             out,
		OnEncodeError: func(err error) {
			st.log.Debug("HLS muxer", "err", err)
		},
	}
	if err := m.Start(); err != nil {
		st.startErr = fmt.Errorf("the HLS muxer did not start: %w", err)
		st.log.Warn("room not served over HLS", "err", err)
		return st.startErr
	}
	st.muxer = m
	leading := "video1_stream.m3u8" // gohlslib's names
	if !haveVideo {
		leading = "audio1_stream.m3u8"
	}
	st.poller = newPoller(st, leading)
	go st.poller.run(st.closed)
	st.waitKey = haveVideo
	st.requestKeyframe()
	st.log.Info("HLS muxer started")
	return nil
}

func videoCodec(mime string) codecs.Codec {
	switch {
	case strings.EqualFold(mime, codec.VP9):
		return &codecs.VP9{}
	case strings.EqualFold(mime, codec.AV1):
		return &codecs.AV1{}
	}
	return &codecs.H264{}
}

// WritePacket depacketizes one RTP packet and hands whole frames to the
// muxer. The payload is the presenter's: a parser that panics on it stops
// this muxer, not the server.
func (st *stream) WritePacket(p media.Packet) {
	if st.muxer == nil || p.Track < 0 || p.Track >= len(st.tracks) || st.tracks[p.Track] == nil {
		return
	}
	in := st.tracks[p.Track]
	defer func() {
		if v := recover(); v != nil {
			st.log.Warn("HLS: cannot parse the stream, muxer stopped", "codec", in.mime, "panic", fmt.Sprint(v))
			st.tracks = make([]*trackIn, len(st.tracks))
		}
	}()
	if st.origin == 0 {
		st.origin = p.Arrival.UnixNano()
	}
	in.depak.Push(p, func(f record.Frame, lost bool) { st.frame(in, f, lost) })
}

// frame writes one whole frame at its presentation time: the track's
// first arrival (from the origin) plus the RTP time since.
func (st *stream) frame(in *trackIn, f record.Frame, lost bool) {
	if in.video {
		if lost && !st.waitKey {
			st.waitKey = true
			st.requestKeyframe()
		}
		if st.waitKey {
			if !f.Key {
				return
			}
			st.waitKey = false
		}
		st.keyframeDue(f)
	}
	if !in.based {
		in.based = true
		in.base = (f.Arrival - st.origin) * in.clock / int64(time.Second)
		in.lastTS, in.extTS = f.Timestamp, int64(f.Timestamp)
		in.ts0 = in.extTS
	}
	in.extTS += int64(int32(f.Timestamp - in.lastTS))
	in.lastTS = f.Timestamp
	pts := in.base + in.extTS - in.ts0
	ntp := time.Unix(0, st.origin+pts*int64(time.Second)/in.clock)
	var err error
	switch c := in.out.Codec.(type) {
	case *codecs.Opus:
		err = st.muxer.WriteOpus(in.out, ntp, pts, [][]byte{f.Data})
	case *codecs.H264:
		var au [][]byte
		record.EachNAL(f.Data, func(nal []byte) { au = append(au, nal) })
		if len(au) > 0 {
			err = st.muxer.WriteH264(in.out, ntp, pts, au)
		}
	case *codecs.VP9:
		err = st.muxer.WriteVP9(in.out, ntp, pts, f.Data)
	case *codecs.AV1:
		var tu av1.Bitstream
		if err = tu.Unmarshal(f.Data); err == nil {
			err = st.muxer.WriteAV1(in.out, ntp, pts, tu)
		}
	default:
		err = fmt.Errorf("codec %T", c)
	}
	if err != nil {
		st.log.Debug("HLS muxer refused a frame", "codec", in.mime, "err", err)
	}
}

// keyframeDue asks the presenter for a keyframe once a segment's length
// has passed since the last: a segment starts at a keyframe, and browsers
// send one only when asked (then never, past the first). The engine
// throttles the asks; rooms without HLS viewers are not asked.
func (st *stream) keyframeDue(f record.Frame) {
	if f.Key {
		st.keyAt = f.Arrival
		return
	}
	seg := int64(st.srv.cfg.Segment)
	if f.Arrival-st.keyAt >= seg-seg/10 && f.Arrival-st.askedAt >= seg/2 {
		st.askedAt = f.Arrival
		st.requestKeyframe()
	}
}

// Close stops the muxer (waking the requests that wait on it) and forgets
// the stream: the next request starts another, if the room is still live.
func (st *stream) Close() error {
	select {
	case <-st.started:
	default:
		st.startErr = errEnded
		close(st.started)
	}
	close(st.closed)
	if st.muxer != nil {
		st.muxer.Close() // wakes the requests, and the poller, waiting in it
		<-st.poller.done
		st.log.Info("HLS muxer stopped")
	}
	st.srv.forget(st)
	return nil
}

// stop releases the stream's endpoint (the engine then calls Close).
func (st *stream) stop() {
	st.stopOnce.Do(func() {
		if st.endpoint != nil {
			st.endpoint.Release()
		}
	})
}

// seen records a playlist request of a viewer.
func (st *stream) seen(key string, now int64) {
	st.mu.Lock()
	st.clients[key] = now
	st.mu.Unlock()
}

// viewers counts the viewers seen since, forgetting the others.
func (st *stream) viewers(since int64) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	for k, t := range st.clients {
		if t < since {
			delete(st.clients, k)
		}
	}
	return len(st.clients)
}
