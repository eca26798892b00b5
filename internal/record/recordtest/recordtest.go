// Package recordtest helps tests of recordings: it makes short clips of real
// encoded media with ffmpeg, reads them back as samples ready to send, and
// inspects recordings with ffprobe. It is used by tests only.
package recordtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// FrameRate is the clips' video frame rate.
const FrameRate = 30

// NeedFFmpeg skips the test when ffmpeg or ffprobe is missing, or fails it
// when the CI variable is set (CI must run these tests).
func NeedFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("%s not found: install it with `apt-get install ffmpeg` (scripts/test.sh does)", tool)
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// Clip is a short piece of real encoded media: a video file and an Opus
// file of the same length.
type Clip struct {
	Video     string // IVF (VP8, VP9, AV1) or Annex-B H.264
	VideoMime string // webrtc.MimeTypeVP8, …
	Audio     string // Ogg Opus, one 20 ms packet per page
	Length    time.Duration
}

// MakeClip encodes a test pattern and a tone with ffmpeg into dir. codec is
// "vp8", "vp9", "av1" or "h264".
func MakeClip(t testing.TB, dir, codec string, length time.Duration) Clip {
	t.Helper()
	NeedFFmpeg(t)
	secs := fmt.Sprintf("%.3f", length.Seconds())
	src := []string{"-v", "error", "-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=320x240:rate=%d", FrameRate), "-t", secs}
	c := Clip{Length: length, Audio: filepath.Join(dir, "audio.ogg")}
	var args []string
	switch codec {
	case "vp8":
		c.Video, c.VideoMime = filepath.Join(dir, "video-vp8.ivf"), webrtc.MimeTypeVP8
		args = []string{"-c:v", "libvpx", "-b:v", "500k", "-g", "60", "-deadline", "realtime", "-cpu-used", "8",
			"-auto-alt-ref", "0", "-lag-in-frames", "0", "-f", "ivf"}
	case "vp9":
		c.Video, c.VideoMime = filepath.Join(dir, "video-vp9.ivf"), webrtc.MimeTypeVP9
		args = []string{"-c:v", "libvpx-vp9", "-b:v", "500k", "-g", "60", "-deadline", "realtime", "-cpu-used", "8",
			"-lag-in-frames", "0", "-row-mt", "1", "-f", "ivf"}
	case "av1":
		c.Video, c.VideoMime = filepath.Join(dir, "video-av1.ivf"), webrtc.MimeTypeAV1
		args = []string{"-c:v", "libaom-av1", "-b:v", "300k", "-g", "60", "-usage", "realtime", "-cpu-used", "8",
			"-lag-in-frames", "0", "-f", "ivf"}
	case "h264":
		c.Video, c.VideoMime = filepath.Join(dir, "video.h264"), webrtc.MimeTypeH264
		args = []string{"-c:v", "libx264", "-profile:v", "baseline", "-preset", "ultrafast", "-tune", "zerolatency",
			"-pix_fmt", "yuv420p", "-g", "60", "-bsf:v", "h264_mp4toannexb", "-f", "h264"}
	default:
		t.Fatalf("MakeClip: unknown codec %q", codec)
	}
	run(t, append(append(src, args...), "-y", c.Video)...)
	run(t, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", secs,
		"-ac", "2", "-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-page_duration", "20000",
		"-y", c.Audio)
	return c
}

func run(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ffmpeg", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

// Sample is one frame to send, and how long it lasts.
type Sample struct {
	Data     []byte
	Duration time.Duration
}

// VideoSamples reads a clip's video frames (H.264: access units in Annex B).
func VideoSamples(t testing.TB, c Clip) []Sample {
	t.Helper()
	f, err := os.Open(c.Video)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	frame := time.Second / FrameRate
	var out []Sample
	if c.VideoMime == webrtc.MimeTypeH264 {
		r, err := h264reader.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		// An access unit (a picture) ends before a NAL unit that is not a
		// slice, or before a slice whose first_mb_in_slice is 0 (a picture
		// may have several slices: -tune zerolatency makes them).
		var au []byte
		hasSlice := false
		for {
			nal, err := r.NextNAL()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", c.Video, err)
			}
			isSlice := nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr
			firstMB0 := isSlice && len(nal.Data) > 1 && nal.Data[1]&0x80 != 0
			if hasSlice && (!isSlice || firstMB0) {
				out = append(out, Sample{Data: au, Duration: frame})
				au, hasSlice = nil, false
			}
			au = append(au, 0, 0, 0, 1)
			au = append(au, nal.Data...)
			hasSlice = hasSlice || isSlice
		}
		if hasSlice {
			out = append(out, Sample{Data: au, Duration: frame})
		}
		return out
	}
	r, _, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", c.Video, err)
		}
		out = append(out, Sample{Data: b, Duration: frame})
	}
	return out
}

// AudioSamples reads a clip's Opus packets (20 ms each).
func AudioSamples(t testing.TB, c Clip) []Sample {
	t.Helper()
	f, err := os.Open(c.Audio)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []Sample
	for {
		b, h, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", c.Audio, err)
		}
		if _, isHeader := h.HeaderType(b); isHeader || len(b) == 0 {
			continue
		}
		out = append(out, Sample{Data: b, Duration: 20 * time.Millisecond})
	}
	return out
}

// Probed is what ffprobe tells of a file.
type Probed struct {
	Duration float64 // seconds
	Streams  []Stream
}

// Stream is one stream of a probed file.
type Stream struct {
	CodecType string `json:"codec_type"`
	CodecName string `json:"codec_name"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
}

// Probe runs ffprobe on a file.
func Probe(t testing.TB, path string) Probed {
	t.Helper()
	NeedFFmpeg(t)
	cmd := exec.Command("ffprobe", "-v", "error", "-show_entries",
		"format=duration:stream=codec_type,codec_name,width,height", "-of", "json", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, stderr.String())
	}
	var res struct {
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
		Streams []Stream `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	p := Probed{Streams: res.Streams}
	if _, err := fmt.Sscan(res.Format.Duration, &p.Duration); err != nil {
		t.Fatalf("ffprobe %s: no duration: %s", path, out)
	}
	if stderr.Len() > 0 {
		t.Logf("ffprobe %s: %s", path, stderr.String())
	}
	return p
}

// Decode decodes the whole file with ffmpeg and returns what it reported
// as errors (empty for a clean file).
func Decode(t testing.TB, path string) string {
	t.Helper()
	NeedFFmpeg(t)
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg decode %s: %v\n%s", path, err, out)
	}
	return string(out)
}

// Codecs returns the codec names of the probed streams, by type.
func (p Probed) Codecs() map[string]string {
	m := map[string]string{}
	for _, s := range p.Streams {
		m[s.CodecType] = s.CodecName
	}
	return m
}
