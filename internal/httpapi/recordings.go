package httpapi

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/onair-live/onair/internal/live"
)

// Recordings is what the admin API needs of the recorder.
type Recordings interface {
	List() ([]Recording, error)
	// Open opens a recording by its listed name: fs.ErrInvalid for a name
	// that is not one (or would leave the directory), fs.ErrNotExist for
	// none.
	Open(name string) (RecordingFile, error)
}

// RecordingFile is an open recording.
type RecordingFile interface {
	io.ReadSeekCloser
	Stat() (fs.FileInfo, error)
}

// Recording is one listed recording.
type Recording struct {
	Name     string
	RoomID   string
	Size     int64
	Start    time.Time
	Duration time.Duration // 0: unknown (being written, or not finalized)
	Active   bool          // being written
}

type recordingBody struct {
	Name      string   `json:"name"`
	RoomID    string   `json:"roomId"`
	Size      int64    `json:"size"`
	Start     string   `json:"start"`
	Duration  *float64 `json:"duration,omitempty"` // seconds
	Recording bool     `json:"recording"`
}

// listRecordings serves GET /media/recordings.
func (a *api) listRecordings(w http.ResponseWriter, r *http.Request) {
	list, err := a.cfg.Recordings.List()
	if err != nil {
		writeError(w, r, a.log, live.ErrInternal.Wrap(err))
		return
	}
	out := make([]recordingBody, len(list))
	for i, rec := range list {
		out[i] = recordingBody{Name: rec.Name, RoomID: rec.RoomID, Size: rec.Size,
			Start: rec.Start.UTC().Format(time.RFC3339Nano), Recording: rec.Active}
		if rec.Duration > 0 {
			d := rec.Duration.Seconds()
			out[i].Duration = &d
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// getRecording serves GET /media/recordings/{name}, with range requests.
func (a *api) getRecording(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	f, err := a.cfg.Recordings.Open(name)
	switch {
	case errors.Is(err, fs.ErrInvalid):
		writeError(w, r, a.log, live.ErrBadRequest.With("%q is not a recording name", name))
		return
	case errors.Is(err, fs.ErrNotExist):
		writeJSON(w, http.StatusNotFound, errorBody{Name: "NOT_FOUND", Code: 4040, Message: "No such recording: " + name})
		return
	case err != nil:
		writeError(w, r, a.log, live.ErrInternal.Wrap(err))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		writeError(w, r, a.log, live.ErrInternal.Wrap(err))
		return
	}
	switch {
	case strings.HasSuffix(name, ".mp4"):
		w.Header().Set("Content-Type", "video/mp4")
	case len(name) > 5 && name[len(name)-5:] == ".webm":
		w.Header().Set("Content-Type", "video/webm")
	default:
		w.Header().Set("Content-Type", "video/x-matroska")
	}
	http.ServeContent(w, r, name, fi.ModTime(), f)
}
