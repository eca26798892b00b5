package record

import (
	"os"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// fileWriter is a container being written: Matroska/WebM (mkvWriter) or
// MP4 (mp4Writer).
type fileWriter interface {
	// writeFrame adds a frame of track (numbered from 1) at ns since the
	// start of the file.
	writeFrame(track int, video, key bool, ns int64, data []byte) error
	// end finalizes the file, which lasts durationNS, and closes it.
	end(durationNS int64) error
	// abort closes the file as it is.
	abort()
}

// create makes the file and writes its header, from the first keyframe:
// one video track (the first) and one audio track are recorded.
func (r *Recording) create(key frame) error {
	var open func(f *os.File, start time.Time) (fileWriter, error)
	var n int
	var err error
	if r.docType == "mp4" {
		open, n, err = r.mp4Header(key)
	} else {
		open, n, err = r.mkvHeader(key)
	}
	if err != nil {
		return err
	}
	start := time.Now()
	f, name, err := r.rec.createFile(r.info.RoomID, start, r.ext)
	if err != nil {
		return err
	}
	m, err := open(f, start)
	if err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return err
	}
	r.mux, r.name, r.path = m, name, f.Name()
	r.pending = make([][]timedFrame, n)
	r.rec.setActive(name, true)
	r.log.Info("recording started", "file", r.path, "container", r.docType)
	return nil
}

// eachRecorded calls fn for the tracks that go into the file, numbering them.
func (r *Recording) eachRecorded(fn func(t *trackState) error) (int, error) {
	n, haveAudio := 0, false
	for _, t := range r.tracks {
		if t.video && t != r.video || !t.video && haveAudio {
			continue
		}
		haveAudio = haveAudio || !t.video
		if err := fn(t); err != nil {
			return 0, err
		}
		n++
		t.number = n
	}
	return n, nil
}

func (r *Recording) mkvHeader(key frame) (func(*os.File, time.Time) (fileWriter, error), int, error) {
	var mts []mkvTrack
	n, err := r.eachRecorded(func(t *trackState) error {
		id, _ := matroskaCodec(t.mime)
		mt := mkvTrack{number: len(mts) + 1, video: t.video, codecID: id}
		if t.video {
			w, h, private, err := videoConfig(t.mime, key.data, r.sps, r.pps)
			if err != nil {
				return err
			}
			mt.width, mt.height, mt.private = w, h, private
		} else {
			mt.channels, mt.rate = 2, 48000
			mt.private = opusHead(2)
			mt.seekPreRoll = uint64(80 * time.Millisecond)
		}
		mts = append(mts, mt)
		return nil
	})
	return func(f *os.File, start time.Time) (fileWriter, error) {
		return newMKV(f, r.docType, mts, r.info.Title, start)
	}, n, err
}

func (r *Recording) mp4Header(key frame) (func(*os.File, time.Time) (fileWriter, error), int, error) {
	var codecs []fmp4.Codec
	n, err := r.eachRecorded(func(t *trackState) error {
		c, err := mp4Codec(t.mime, key.data, r.sps, r.pps)
		if err != nil {
			return err
		}
		codecs = append(codecs, c)
		return nil
	})
	return func(f *os.File, _ time.Time) (fileWriter, error) {
		return newMP4(f, codecs)
	}, n, err
}
