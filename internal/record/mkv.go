package record

import (
	"bufio"
	"encoding/binary"
	"math"
	"os"
	"time"
)

// The Matroska/WebM writer. A file is laid out as
//
//	EBML header
//	Segment (size patched on close)
//	  Void      room for the SeekHead, written on close
//	  Info      Duration patched on close
//	  Tracks
//	  Cluster…  each written whole, with its size, when the next one starts
//	  Cues      written on close: one entry per cluster that starts with a
//	            video keyframe (per cluster, for audio alone)
//
// so that a finalized file is seekable and has its duration, and a file cut
// short by a crash is still playable up to its last cluster. Timestamps are
// in milliseconds (TimestampScale 1,000,000 ns).

const (
	// maxClusterMS starts a new cluster after this long without a keyframe;
	// well inside the ±32.767 s a block's relative timestamp can express.
	maxClusterMS = 5000
	// seekHeadRoom is the space reserved for the SeekHead (three entries).
	seekHeadRoom = 96
)

// mkvTrack is one track of the file.
type mkvTrack struct {
	number      int // 1-based
	video       bool
	codecID     string
	private     []byte
	width       int
	height      int
	channels    int
	rate        float64
	codecDelay  uint64 // ns
	seekPreRoll uint64 // ns
}

type cuePoint struct {
	timeMS uint64
	track  int
	pos    uint64 // of the cluster, from the start of the Segment's data
}

// mkvWriter writes one file. It is used from one goroutine.
type mkvWriter struct {
	f   *os.File
	w   *bufio.Writer
	off int64 // bytes written so far

	segSizeOff  int64 // the Segment's 8-byte size
	segDataOff  int64 // the Segment's first byte of data
	seekHeadOff int64
	infoOff     int64
	tracksOff   int64
	durationOff int64 // Duration's 8-byte float

	hasVideo    bool
	cluster     []byte
	clusterOpen bool
	clusterMS   int64
	cues        []cuePoint
	err         error
}

// newMKV writes the file's header and tracks.
func newMKV(f *os.File, docType string, tracks []mkvTrack, title string, start time.Time) (*mkvWriter, error) {
	m := &mkvWriter{f: f, w: bufio.NewWriterSize(f, 256<<10)}
	for _, t := range tracks {
		m.hasVideo = m.hasVideo || t.video
	}
	var hdr []byte
	hdr = appendUint(hdr, idEBMLVersion, 1)
	hdr = appendUint(hdr, idEBMLReadVersion, 1)
	hdr = appendUint(hdr, idEBMLMaxIDLength, 4)
	hdr = appendUint(hdr, idEBMLMaxSizeLength, 8)
	hdr = appendString(hdr, idDocType, docType)
	hdr = appendUint(hdr, idDocTypeVersion, 4)
	hdr = appendUint(hdr, idDocTypeReadVersion, 2)
	b := appendElement(nil, idEBML, hdr)

	b = appendID(b, idSegment)
	m.segSizeOff = int64(len(b))
	b = append(b, unknownSize...)
	m.segDataOff = int64(len(b))

	m.seekHeadOff = int64(len(b))
	b = appendVoid(b, seekHeadRoom)

	m.infoOff = int64(len(b))
	var info []byte
	info = appendUint(info, idTimestampScale, 1_000_000)
	info = appendString(info, idMuxingApp, "onair")
	info = appendString(info, idWritingApp, "onair")
	info = appendInt8(info, idDateUTC, start.Sub(matroskaEpoch).Nanoseconds())
	if title != "" {
		info = appendString(info, idTitle, title)
	}
	b = appendID(b, idInfo)
	b = appendSize(b, uint64(len(info)+11)) // + Duration: id 2, size 1, float 8
	b = append(b, info...)
	b = appendID(b, idDuration)
	b = appendSize(b, 8)
	m.durationOff = int64(len(b))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(0))

	m.tracksOff = int64(len(b))
	var tr []byte
	for _, t := range tracks {
		tr = appendElement(tr, idTrackEntry, trackEntry(t))
	}
	b = appendElement(b, idTracks, tr)
	if err := m.write(b); err != nil {
		return nil, err
	}
	return m, nil
}

var matroskaEpoch = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

func trackEntry(t mkvTrack) []byte {
	var e []byte
	e = appendUint(e, idTrackNumber, uint64(t.number))
	e = appendUint(e, idTrackUID, uint64(t.number))
	if t.video {
		e = appendUint(e, idTrackType, 1)
	} else {
		e = appendUint(e, idTrackType, 2)
	}
	e = appendUint(e, idFlagLacing, 0)
	e = appendString(e, idLanguage, "und")
	e = appendString(e, idCodecID, t.codecID)
	if len(t.private) > 0 {
		e = appendElement(e, idCodecPrivate, t.private)
	}
	if t.codecDelay > 0 {
		e = appendUint(e, idCodecDelay, t.codecDelay)
	}
	if t.seekPreRoll > 0 {
		e = appendUint(e, idSeekPreRoll, t.seekPreRoll)
	}
	if t.video {
		var v []byte
		v = appendUint(v, idPixelWidth, uint64(t.width))
		v = appendUint(v, idPixelHeight, uint64(t.height))
		e = appendElement(e, idVideo, v)
	} else {
		var a []byte
		a = appendFloat(a, idSamplingFrequency, t.rate)
		a = appendUint(a, idChannels, uint64(t.channels))
		e = appendElement(e, idAudio, a)
	}
	return e
}

func (m *mkvWriter) write(b []byte) error {
	if m.err != nil {
		return m.err
	}
	n, err := m.w.Write(b)
	m.off += int64(n)
	if err != nil {
		m.err = err
	}
	return err
}

// writeBlock adds a frame of track at ms since the start of the file. A
// video keyframe starts a new cluster (and a cue point).
func (m *mkvWriter) writeBlock(track int, video, key bool, ms int64, frame []byte) error {
	if m.clusterOpen && (ms-m.clusterMS > maxClusterMS || (video && key && len(m.cluster) > 0)) {
		if err := m.flushCluster(); err != nil {
			return err
		}
	}
	if !m.clusterOpen {
		m.clusterOpen = true
		m.clusterMS = max(ms, 0)
		m.cluster = appendUint(m.cluster[:0], idTimestamp, uint64(m.clusterMS))
		if (video && key) || !m.hasVideo {
			m.cues = append(m.cues, cuePoint{timeMS: uint64(m.clusterMS), track: track,
				pos: uint64(m.off - m.segDataOff)})
		}
	}
	rel := max(ms-m.clusterMS, 0)
	flags := byte(0)
	if key || !video {
		flags = 0x80
	}
	m.cluster = appendID(m.cluster, idSimpleBlock)
	m.cluster = appendSize(m.cluster, uint64(4+len(frame)))
	m.cluster = append(m.cluster, 0x80|byte(track), byte(rel>>8), byte(rel), flags)
	m.cluster = append(m.cluster, frame...)
	return m.err
}

func (m *mkvWriter) flushCluster() error {
	if !m.clusterOpen {
		return m.err
	}
	m.clusterOpen = false
	var h []byte
	h = appendID(h, idCluster)
	h = appendSize(h, uint64(len(m.cluster)))
	if err := m.write(h); err != nil {
		return err
	}
	return m.write(m.cluster)
}

// finish writes the last cluster and the cues, then the Segment's size,
// the duration (ms) and the SeekHead in the places kept for them, and
// closes the file.
func (m *mkvWriter) finish(durationMS float64) error {
	_ = m.flushCluster()
	cuesOff := m.off
	if len(m.cues) > 0 {
		var cues []byte
		for _, c := range m.cues {
			var pos []byte
			pos = appendUint(pos, idCueTrack, uint64(c.track))
			pos = appendUint(pos, idCueClusterPosition, c.pos)
			var pt []byte
			pt = appendUint(pt, idCueTime, c.timeMS)
			pt = appendElement(pt, idCueTrackPositions, pos)
			cues = appendElement(cues, idCuePoint, pt)
		}
		_ = m.write(appendElement(nil, idCues, cues))
	}
	if err := m.w.Flush(); err != nil && m.err == nil {
		m.err = err
	}
	if m.err != nil {
		_ = m.f.Close()
		return m.err
	}
	patch := func(off int64, b []byte) {
		if _, err := m.f.WriteAt(b, off); err != nil && m.err == nil {
			m.err = err
		}
	}
	patch(m.segSizeOff, appendSizeLen(nil, uint64(m.off-m.segDataOff), 8))
	patch(m.durationOff, binary.BigEndian.AppendUint64(nil, math.Float64bits(durationMS)))
	seek := func(b []byte, id uint32, off int64) []byte {
		var s []byte
		s = appendElement(s, idSeekID, appendID(nil, id))
		s = appendUint8(s, idSeekPosition, uint64(off-m.segDataOff))
		return appendElement(b, idSeek, s)
	}
	var sh []byte
	sh = seek(sh, idInfo, m.infoOff)
	sh = seek(sh, idTracks, m.tracksOff)
	if len(m.cues) > 0 {
		sh = seek(sh, idCues, cuesOff)
	}
	head := appendElement(nil, idSeekHead, sh)
	head = appendVoid(head, seekHeadRoom-len(head))
	patch(m.seekHeadOff, head)
	if err := m.f.Sync(); err != nil && m.err == nil {
		m.err = err
	}
	if err := m.f.Close(); err != nil && m.err == nil {
		m.err = err
	}
	return m.err
}

// abort closes the file as it is (a crash-like end: playable up to its last
// whole cluster).
func (m *mkvWriter) abort() {
	_ = m.w.Flush()
	_ = m.f.Close()
}

// writeFrame adds a frame at ns since the start of the file (fileWriter).
func (m *mkvWriter) writeFrame(track int, video, key bool, ns int64, data []byte) error {
	return m.writeBlock(track, video, key, ns/int64(time.Millisecond), data)
}

// end finalizes the file (fileWriter).
func (m *mkvWriter) end(durationNS int64) error {
	return m.finish(float64(durationNS) / float64(time.Millisecond))
}
