package live

import (
	"errors"
	"time"

	"github.com/onair-live/onair/internal/media"
)

// EventType names a change in a broadcast's life.
type EventType string

// The lifecycle events. Webhooks, metrics and recording hooks observe them.
const (
	EventRoomStarted       EventType = "room.started"
	EventRoomFinished      EventType = "room.finished"
	EventViewerJoined      EventType = "viewer.joined"
	EventViewerLeft        EventType = "viewer.left"
	EventRecordingFinished EventType = "recording.finished"
)

// Reasons carried by EventViewerLeft and EventRoomFinished.
const (
	ReasonLeave     = "leave"     // the viewer left (DELETE /room/view, WHEP DELETE)
	ReasonDropped   = "dropped"   // the client vanished: WebSocket closed or media lost
	ReasonEnded     = "ended"     // the presenter ended the room (DELETE /room/live, WHIP DELETE)
	ReasonShutdown  = "shutdown"  // the server shut down
	ReasonReclaimed = "reclaimed" // the room's record vanished, or a restart found it orphaned
	ReasonFailed    = "failed"    // negotiation failed right after creation
)

// Event is one lifecycle change. Fields that do not apply are empty.
type Event struct {
	Type       EventType
	Time       time.Time
	RoomID     string
	Title      string
	ProfileURL string
	Presenter  string
	User       string // the viewer, for viewer events
	Reason     string
	Viewers    int // the room's viewer count after the change
	// Recording is set on EventRecordingFinished.
	Recording *Recording
}

// Recording describes a finished recording file.
type Recording struct {
	Path     string
	Bytes    int64
	Duration time.Duration
	Codecs   []string
}

// emit hands an event to the observer. Events of one room are emitted in
// order: callers hold the room's lock or act after its last change. The
// observer must not block (queue and return).
func (s *Service) emit(e Event) {
	if s.opts.OnEvent == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	s.opts.OnEvent(e)
}

// admit asks Options.Admit whether a broadcast may start now.
func (s *Service) admit() error {
	if s.opts.Admit == nil {
		return nil
	}
	if err := s.opts.Admit(); err != nil {
		s.log.Warn("broadcast refused", "why", err)
		return ErrUnavailable.With("%v", err)
	}
	return nil
}

// mediaFailure logs the media engine's failure err (msg and attrs), reports
// it (what), and returns the domain's failure e caused by it.
func (s *Service) mediaFailure(e *Error, err error, what, msg string, attrs ...any) error {
	s.log.Error(msg, append(attrs, "err", err)...)
	s.mediaError(what, err)
	return e.Wrap(err)
}

// mediaError tells Options.OnMediaError what the media engine failed to do.
// A released pipeline is a room ending meanwhile, not a failure.
func (s *Service) mediaError(what string, err error) {
	if s.opts.OnMediaError != nil && !errors.Is(err, media.ErrReleased) {
		s.opts.OnMediaError(what, err)
	}
}
