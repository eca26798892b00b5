// Package record writes broadcasts to files and announces them. It owns the
// recording of one broadcast from the RTP packets the media engine hands it
// (as a media.Sink): putting them back in order, assembling whole frames
// from the first keyframe, dropping incomplete ones, and muxing them into an
// MP4 (H.264, VP9, AV1 with Opus; written with mediacommon) or WebM (VP8
// with Opus, or audio alone) file that it finalizes when the broadcast ends. It also lists and opens the recordings
// of its directory, and posts the upload hook for each finished file.
//
// It knows nothing of rooms' lifecycle, HTTP routes or pion's peer
// connections: the domain decides when to record, the engine feeds it.
package record

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Errors of the package.
var (
	// ErrUnsupportedCodec: a track's codec has no place in the containers.
	ErrUnsupportedCodec = errors.New("record: codec cannot be recorded")
	// ErrBadName: not the name of a recording (or an attempt to leave the
	// directory).
	ErrBadName = errors.New("record: not a recording name")
)

// Config configures a Recorder.
type Config struct {
	// Dir is where recordings are written; it is created if missing.
	Dir string
	// HookURL, if set, is posted a JSON description of each finished file.
	HookURL string
	// HookAttempts bounds the posts of one hook (default 8), HookBackoff is
	// the wait after the first failure, doubled after each (default 1 s, at
	// most a minute), HookTimeout the time one post may take (default 10 s).
	HookAttempts int
	HookBackoff  time.Duration
	HookTimeout  time.Duration
	HTTPClient   *http.Client
	Logger       *slog.Logger
	// OnOutcome, if set, hears what became of each recording (Outcome*),
	// for metrics; it must not block.
	OnOutcome func(outcome string)
}

// Outcomes of a recording, reported to Config.OnOutcome.
const (
	OutcomeFinished     = "finished"      // the file was finalized
	OutcomeFailed       = "failed"        // writing failed: the file is cut short
	OutcomeUploaded     = "uploaded"      // the upload hook took it
	OutcomeUploadFailed = "upload_failed" // the upload hook refused it, or gave up
)

// Info is what a recording is told of its broadcast.
type Info struct {
	RoomID     string
	Title      string
	ProfileURL string
	Presenter  string
	// SessionID is the presenter's signalling session: the hook's
	// liveSessionId.
	SessionID string
}

// Recorder makes recordings in one directory.
type Recorder struct {
	cfg  Config
	log  *slog.Logger
	hook *uploader // nil without HookURL

	mu     sync.Mutex
	active map[string]bool // files being written, by name
}

// New makes a recorder, creating its directory.
func New(cfg Config) (*Recorder, error) {
	if cfg.Dir == "" {
		return nil, errors.New("record: no directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	if cfg.OnOutcome == nil {
		cfg.OnOutcome = func(string) {}
	}
	r := &Recorder{cfg: cfg, log: cfg.Logger.With("component", "record"), active: map[string]bool{}}
	if cfg.HookURL != "" {
		r.hook = newUploader(cfg, r.log)
	}
	return r, nil
}

// Start begins the recording of a broadcast. Nothing is written until the
// media engine starts it (media.Sink.Start) and its first keyframe arrives.
func (r *Recorder) Start(info Info) *Recording {
	return &Recording{rec: r, info: info, begun: time.Now(),
		log: r.log.With("room", info.RoomID)}
}

// Close waits for the upload hooks in flight, until ctx ends; those still
// retrying are then abandoned.
func (r *Recorder) Close(ctx context.Context) {
	if r.hook != nil {
		r.hook.close(ctx.Done())
	}
}

// announce posts the upload hook for a finished file.
func (r *Recorder) announce(info Info, res Result) {
	r.cfg.OnOutcome(OutcomeFinished)
	if r.hook != nil {
		r.hook.post(info, res)
	}
}

// File names are <room>-<UTC start>.<mp4|webm|mkv> (.mkv: H.264 recorded
// by earlier versions, still listed and served), the room reduced to safe
// characters.
const nameTime = "20060102T150405.000Z"

func safeRoom(room string) string {
	var b strings.Builder
	for _, c := range room {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 64 {
			break
		}
	}
	if b.Len() == 0 {
		return "room"
	}
	return b.String()
}

// createFile creates a new recording file, never overwriting one.
func (r *Recorder) createFile(room string, start time.Time, ext string) (*os.File, string, error) {
	for i := 0; ; i++ {
		name := safeRoom(room) + "-" + start.Add(time.Duration(i)*time.Millisecond).UTC().Format(nameTime) + ext
		f, err := os.OpenFile(filepath.Join(r.cfg.Dir, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) && i < 100 {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("record: %w", err)
		}
		return f, name, nil
	}
}

func (r *Recorder) setActive(name string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if on {
		r.active[name] = true
	} else {
		delete(r.active, name)
	}
}

// parseName reads the room and start time of a recording's file name.
func parseName(name string) (room string, start time.Time, ok bool) {
	ext := filepath.Ext(name)
	if ext != ".webm" && ext != ".mkv" && ext != ".mp4" || name != filepath.Base(name) || strings.ContainsAny(name, `/\`) {
		return "", time.Time{}, false
	}
	base := strings.TrimSuffix(name, ext)
	i := strings.LastIndexByte(base, '-')
	if i <= 0 {
		return "", time.Time{}, false
	}
	start, err := time.Parse(nameTime, base[i+1:])
	if err != nil {
		return "", time.Time{}, false
	}
	return base[:i], start, true
}

// Entry is one recording in the directory.
type Entry struct {
	Name   string
	RoomID string // as it appears in the file name
	Size   int64
	Start  time.Time
	// Duration is read from the file; 0 while it is being written or if
	// the file was not finalized.
	Duration  time.Duration
	Recording bool // still being written
}

// List lists the recordings, oldest first.
func (r *Recorder) List() ([]Entry, error) {
	des, err := os.ReadDir(r.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	r.mu.Lock()
	active := make(map[string]bool, len(r.active))
	for n := range r.active {
		active[n] = true
	}
	r.mu.Unlock()
	out := []Entry{}
	for _, de := range des {
		room, start, ok := parseName(de.Name())
		if !ok || !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		e := Entry{Name: de.Name(), RoomID: room, Size: fi.Size(), Start: start, Recording: active[de.Name()]}
		if !e.Recording {
			e.Duration = fileDuration(filepath.Join(r.cfg.Dir, de.Name()))
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}

// fileDuration reads the Duration of a Matroska file's Info, or of an MP4
// file's movie header.
func fileDuration(path string) time.Duration {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, _ := io.ReadFull(f, buf)
	if filepath.Ext(path) == ".mp4" {
		return mp4Duration(buf[:n])
	}
	h, err := readHeader(buf[:n])
	if err != nil {
		return 0
	}
	return time.Duration(h.duration * float64(h.scale))
}

// Open opens a recording by name for reading. Names that are not those of
// recordings, or would leave the directory, are refused with ErrBadName.
func (r *Recorder) Open(name string) (*os.File, error) {
	if _, _, ok := parseName(name); !ok || strings.HasPrefix(name, ".") {
		return nil, ErrBadName
	}
	f, err := os.OpenInRoot(r.cfg.Dir, name)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, fs.ErrNotExist
	}
	return f, nil
}
