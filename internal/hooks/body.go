package hooks

import (
	"time"

	"github.com/onair-live/onair/internal/live"
	"github.com/onair-live/onair/internal/randid"
)

// Body is a delivery's JSON body. Fields that do not apply to an event are
// left out.
type Body struct {
	// ID is unique per event, and the same on every attempt to deliver it.
	ID string `json:"id"`
	// Type is the event: room.started, room.finished, viewer.joined,
	// viewer.left or recording.finished.
	Type live.EventType `json:"type"`
	// Time is when the event happened, RFC 3339 in UTC.
	Time time.Time `json:"time"`

	RoomID     string `json:"roomId"`
	Title      string `json:"title,omitempty"`
	ProfileURL string `json:"profileUrl,omitempty"`
	Presenter  string `json:"presenter,omitempty"`
	// Viewer is the viewer's email, on viewer events.
	Viewer string `json:"viewer,omitempty"`
	// Reason is why a viewer left (leave, dropped, ended, failed, reclaimed)
	// or a room finished (ended, dropped, shutdown, failed, reclaimed).
	Reason string `json:"reason,omitempty"`
	// Viewers is the room's viewer count after the event, on viewer events.
	Viewers *int `json:"viewers,omitempty"`

	Recording *Recording `json:"recording,omitempty"`
}

// Recording describes a finished recording, on recording.finished.
type Recording struct {
	Path       string   `json:"path"`
	Bytes      int64    `json:"bytes"`
	DurationMS int64    `json:"durationMs"`
	Codecs     []string `json:"codecs,omitempty"`
}

// bodyOf makes the body of an event, with a new id.
func bodyOf(e live.Event) Body {
	b := Body{ID: randid.New(), Type: e.Type, Time: e.Time.UTC(), RoomID: e.RoomID, Title: e.Title,
		ProfileURL: e.ProfileURL, Presenter: e.Presenter, Viewer: e.User, Reason: e.Reason}
	if b.Time.IsZero() {
		b.Time = time.Now().UTC()
	}
	if e.Type == live.EventViewerJoined || e.Type == live.EventViewerLeft {
		n := e.Viewers
		b.Viewers = &n
	}
	if r := e.Recording; r != nil {
		b.Recording = &Recording{Path: r.Path, Bytes: r.Bytes, DurationMS: r.Duration.Milliseconds(), Codecs: r.Codecs}
	}
	return b
}
