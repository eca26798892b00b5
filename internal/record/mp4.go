package record

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"github.com/onair-live/onair/internal/codec"
)

// The MP4 container (H.264, VP9 and AV1 with Opus) is written with
// mediacommon's fMP4 writer: a header (ftyp, moov) and then one fragment
// (moof, mdat) about every second, starting at a video keyframe. Each
// fragment is on disk as soon as it is written, so a file cut short by a
// crash still plays up to its last fragment; when the broadcast ends, the
// durations of the header are filled in.

// fragmentLength is the least media time in one fragment; a fragment
// begins with a video keyframe.
const fragmentLength = time.Second

// mp4Track is one track of an MP4 file.
type mp4Track struct {
	id        int // 1-based, as numbered in the file
	video     bool
	timescale int64

	samples []*fmp4.Sample // whole, waiting for the next fragment
	base    int64          // ticks of samples[0]
	last    *fmp4.Sample   // the newest frame: its duration is not known yet
	lastAt  int64          // its ticks
	lastDur uint32         // the duration of the frame before it
	first   int64          // ticks of the first frame, -1 before it
	endAt   int64          // ticks at the end of the last frame queued
}

// mp4Writer writes a fragmented MP4 file.
type mp4Writer struct {
	f        *os.File
	w        *bufio.Writer
	tracks   []*mp4Track
	hasVideo bool
	seq      uint32
	fragAt   int64 // ns, start of the fragment being gathered
	header   []byte
	err      error
}

// mp4Codec describes a track to mediacommon from the first keyframe (and,
// for H.264, the newest SPS and PPS).
func mp4Codec(mime string, key, sps, pps []byte) (fmp4.Codec, error) {
	switch {
	case strings.EqualFold(mime, codec.H264):
		if sps == nil || pps == nil {
			return nil, errNoConfig
		}
		return &fmp4.CodecH264{SPS: bytes.Clone(sps), PPS: bytes.Clone(pps)}, nil
	case strings.EqualFold(mime, codec.VP9):
		var h vp9.Header
		if err := h.Unmarshal(key); err != nil || h.NonKeyFrame || h.ColorConfig == nil || h.FrameSize == nil {
			return nil, errNoConfig
		}
		return &fmp4.CodecVP9{Width: h.Width(), Height: h.Height(), Profile: h.Profile,
			BitDepth: h.ColorConfig.BitDepth, ChromaSubsampling: h.ChromaSubsampling(),
			ColorRange: h.ColorConfig.ColorRange}, nil
	case strings.EqualFold(mime, codec.AV1):
		seq := av1SequenceHeader(key)
		if seq == nil {
			return nil, errNoConfig
		}
		return &fmp4.CodecAV1{SequenceHeader: bytes.Clone(seq)}, nil
	case strings.EqualFold(mime, codec.Opus):
		return &fmp4.CodecOpus{ChannelCount: 2}, nil
	}
	return nil, fmt.Errorf("%w: %s in MP4", ErrUnsupportedCodec, mime)
}

// newMP4 writes the file's header for tracks, numbered from 1 in order.
func newMP4(f *os.File, codecs []fmp4.Codec) (*mp4Writer, error) {
	m := &mp4Writer{f: f, w: bufio.NewWriterSize(f, 256<<10), seq: 1}
	var init fmp4.Init
	for i, c := range codecs {
		t := &mp4Track{id: i + 1, video: c.IsVideo(), timescale: 90000, first: -1}
		if !t.video {
			t.timescale = 48000
		}
		m.hasVideo = m.hasVideo || t.video
		m.tracks = append(m.tracks, t)
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: t.id, TimeScale: uint32(t.timescale), Codec: c})
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("record: MP4 header: %w", err)
	}
	m.header = bytes.Clone(buf.Bytes())
	if _, err := m.w.Write(m.header); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	return m, nil
}

// writeFrame adds a frame of track (1-based) at ns since the start of the
// file. A video keyframe a fragment's length after the last one starts a
// new fragment.
func (m *mp4Writer) writeFrame(track int, video, key bool, ns int64, data []byte) error {
	if m.err != nil || track < 1 || track > len(m.tracks) {
		return m.err
	}
	t := m.tracks[track-1]
	at := ns * t.timescale / int64(time.Second)
	if !t.video && t.first < 0 && t.last == nil {
		t.padSilence(at)
	}
	t.close(at)
	if ns-m.fragAt >= int64(fragmentLength) && (key && video || !m.hasVideo) {
		m.flush()
		m.fragAt = ns
	}
	t.last, t.lastAt = &fmp4.Sample{Payload: data, IsNonSyncSample: video && !key}, at
	return m.err
}

// close gives the track's newest frame its duration, now that the next
// begins at ticks at, and queues it for the next fragment.
func (t *mp4Track) close(at int64) {
	if t.last == nil {
		return
	}
	d := max(at-t.lastAt, 0)
	t.last.Duration = uint32(d)
	t.lastDur = t.last.Duration
	if len(t.samples) == 0 {
		t.base = t.lastAt
	}
	if t.first < 0 {
		t.first = t.lastAt
	}
	t.endAt = t.lastAt + d
	t.samples = append(t.samples, t.last)
	t.last = nil
}

// opusSilence is a 20 ms Opus packet of silence (a CELT frame that
// signals no energy), as WebRTC stacks send during discontinuous
// transmission.
var opusSilence = []byte{0xf8, 0xff, 0xfe}

// padSilence starts an audio track that begins after the video with
// silence, so that it starts at 0 like the video: players (FFmpeg's, so
// Chrome's) otherwise count the gap twice in the file's duration.
func (t *mp4Track) padSilence(at int64) {
	step := t.timescale / 50
	for s := int64(0); s < at; s += step {
		t.last, t.lastAt = &fmp4.Sample{Payload: opusSilence}, s
		t.close(min(s+step, at))
	}
}

// flush writes the queued frames of every track as one fragment.
func (m *mp4Writer) flush() {
	part := fmp4.Part{SequenceNumber: m.seq}
	for _, t := range m.tracks {
		if len(t.samples) > 0 {
			part.Tracks = append(part.Tracks, &fmp4.PartTrack{ID: t.id, BaseTime: uint64(t.base), Samples: t.samples})
		}
	}
	if len(part.Tracks) == 0 || m.err != nil {
		return
	}
	var buf seekablebuffer.Buffer
	if err := part.Marshal(&buf); err != nil {
		m.err = fmt.Errorf("record: MP4 fragment: %w", err)
		return
	}
	if _, err := m.w.Write(buf.Bytes()); err != nil {
		m.err = fmt.Errorf("record: %w", err)
		return
	}
	if err := m.w.Flush(); err != nil { // each fragment on disk whole, for a crash
		m.err = fmt.Errorf("record: %w", err)
		return
	}
	m.seq++
	for _, t := range m.tracks {
		t.samples = nil
	}
}

// end writes the last fragment (each track's last frame lasting as long
// as the one before it), sets the duration in the header, and closes the
// file.
func (m *mp4Writer) end(durationNS int64) error {
	for _, t := range m.tracks {
		if t.last != nil {
			d := int64(t.lastDur)
			if d == 0 {
				d = t.timescale / 50
			}
			t.close(t.lastAt + d)
		}
	}
	m.flush()
	if err := m.w.Flush(); err != nil && m.err == nil {
		m.err = fmt.Errorf("record: %w", err)
	}
	if m.err == nil {
		m.patchDurations(durationNS)
	}
	if err := m.f.Sync(); err != nil && m.err == nil {
		m.err = err
	}
	if err := m.f.Close(); err != nil && m.err == nil {
		m.err = err
	}
	return m.err
}

// patchDurations writes the durations into the header's movie (mvhd),
// track (tkhd) and media (mdhd) boxes, all of version 0, so that players
// show them without reading every fragment: the movie lasts ns, a track
// from its first frame to the end of its last.
func (m *mp4Writer) patchDurations(ns int64) {
	put := func(off int, v int64) {
		if off+4 > len(m.header) || v < 0 || v > 0xffffffff {
			return
		}
		if _, err := m.f.WriteAt(binary.BigEndian.AppendUint32(nil, uint32(v)), int64(off)); err != nil && m.err == nil {
			m.err = err
		}
	}
	ms := ns / int64(time.Millisecond)
	if i := bytes.Index(m.header, []byte("mvhd")); i > 0 && m.header[i+4] == 0 {
		put(i+20, ms) // version, flags, creation, modification, timescale (1000)
	}
	rest, off := m.header, 0
	for _, t := range m.tracks {
		i := bytes.Index(rest, []byte("tkhd"))
		if i < 0 {
			return
		}
		d := max(t.endAt-t.first, 0)
		if t.first < 0 {
			d = 0
		}
		if rest[i+4] == 0 {
			put(off+i+24, d*1000/t.timescale) // version, flags, creation, modification, id, reserved
		}
		j := bytes.Index(rest[i:], []byte("mdhd"))
		if j < 0 {
			return
		}
		j += i
		if rest[j+4] == 0 {
			put(off+j+20, d)
		}
		rest, off = rest[j+4:], off+j+4
	}
}

// abort closes the file as it is: playable up to its last fragment.
func (m *mp4Writer) abort() {
	_ = m.w.Flush()
	_ = m.f.Close()
}

// mp4Duration reads the duration in the movie header (mvhd, version 0) at
// the start of an MP4 file; 0 if there is none.
func mp4Duration(head []byte) time.Duration {
	i := bytes.Index(head, []byte("mvhd"))
	if i < 4 || len(head) < i+24 || head[i+4] != 0 {
		return 0
	}
	scale := binary.BigEndian.Uint32(head[i+16:])
	d := binary.BigEndian.Uint32(head[i+20:])
	if scale == 0 {
		return 0
	}
	return time.Duration(int64(d) * int64(time.Second) / int64(scale))
}
